// The export file format (NDJSON, one JSON object per line), written by ExportEvents and read by
// the offline verifier. Line order: one header, then the checkpoints of the range, then the
// events in sequence order, then (unfiltered exports of a chain that verified) the seal: signed
// when the export was made, over its anchor and its last event.
import type { ChainCheckpoint, ChainEvent, ExportSeal } from './chain.js';

/** EXPORT_FORMAT names this file format and its version (v2: closed by a seal). */
export const EXPORT_FORMAT = 'parley.audit.export.v2';

/** ExportHeaderLine opens an export. */
export interface ExportHeaderLine {
  type: 'header';
  format: typeof EXPORT_FORMAT;
  tenantId: string;
  /** anchorSeq and anchorHash are the event before the first exported one (the chain's start: 0 and 64 zeros; or a purge anchor). */
  anchorSeq: number;
  anchorHash: string;
  /** headSeq is the last sequence number of the export's range; events missing before it fail verification. */
  headSeq: number;
  /** filtered exports hold matching events only and cannot be chain-verified. */
  filtered: boolean;
  exportedAt: string;
}

/** ExportLine is one line of an export file. */
export type ExportLine =
  ExportHeaderLine | ({ type: 'checkpoint' } & ChainCheckpoint) | ({ type: 'event' } & ChainEvent) | ({ type: 'seal' } & ExportSeal);

/** toNdjson renders one line (without the newline). */
export function toNdjson(line: ExportLine): string {
  return JSON.stringify(line);
}
