import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { KeyObject } from 'node:crypto';
import { ChainVerifier, type ChainCheckpoint, type ChainEvent, type VerifyResult } from './chain.js';
import { EXPORT_FORMAT, type ExportHeaderLine, type ExportLine } from './export-format.js';

/** ExportVerification is the verdict on an export file. */
export interface ExportVerification extends VerifyResult {
  tenantId: string;
  /** line is the file line of the first failure (0 when ok or when the failure is at the end). */
  line: number;
}

/**
 * verifyExport checks an export file (NDJSON lines) with the public keys alone: the header's
 * anchor, every checkpoint's signature and hash, every event's link and hash, and that no event
 * up to the header's headSeq is missing. A filtered export is refused: it has gaps by design.
 */
export async function verifyExport(input: Readable, keys: ReadonlyMap<string, KeyObject>): Promise<ExportVerification> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let header: ExportHeaderLine | undefined;
  let verifier: ChainVerifier | undefined;
  let lineNo = 0;
  let failedLine = 0;
  let sawEvent = false;
  const fail = (reason: string): ExportVerification => ({
    ok: false,
    firstFailedSeq: 0,
    reason,
    verifiedFromSeq: 0,
    verifiedToSeq: 0,
    eventsVerified: 0,
    checkpointsVerified: 0,
    lastCheckpointSeq: 0,
    tenantId: header?.tenantId ?? '',
    line: lineNo,
  });
  for await (const text of lines) {
    lineNo += 1;
    if (text.trim() === '') continue;
    let line: ExportLine;
    try {
      line = JSON.parse(text) as ExportLine;
    } catch {
      return fail(`line ${lineNo} is not JSON`);
    }
    if (header === undefined) {
      if (line.type !== 'header' || line.format !== EXPORT_FORMAT) return fail(`line 1 must be a ${EXPORT_FORMAT} header`);
      if (line.filtered) return fail('a filtered export lists matching events only and cannot be chain-verified; export without a filter');
      header = line;
      verifier = new ChainVerifier(line.tenantId, { seq: line.anchorSeq, hash: line.anchorHash }, keys);
      continue;
    }
    if (verifier === undefined) break;
    const wasBroken = verifier.broken;
    if (line.type === 'checkpoint') {
      if (sawEvent) return fail(`line ${lineNo}: checkpoints must come before the events`);
      const { type: _t, ...cp } = line;
      verifier.addCheckpoint(cp as ChainCheckpoint);
    } else if (line.type === 'event') {
      sawEvent = true;
      const { type: _t, ...e } = line;
      verifier.addEvent(e as ChainEvent);
    } else {
      return fail(`line ${lineNo}: a second header`);
    }
    if (!wasBroken && verifier.broken && failedLine === 0) failedLine = lineNo;
  }
  if (header === undefined || verifier === undefined) return fail('the file is empty');
  const result = verifier.finish(header.headSeq);
  return { ...result, tenantId: header.tenantId, line: result.ok ? 0 : failedLine };
}
