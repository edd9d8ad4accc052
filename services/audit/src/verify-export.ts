import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { KeyObject } from 'node:crypto';
import {
  ChainVerifier,
  exportSealStatement,
  signatureValid,
  type ChainCheckpoint,
  type ChainEvent,
  type ExportSeal,
  type VerifyResult,
} from './chain.js';
import { EXPORT_FORMAT, type ExportHeaderLine, type ExportLine } from './export-format.js';

/** ExportVerification is the verdict on an export file. */
export interface ExportVerification extends VerifyResult {
  tenantId: string;
  /** line is the file line of the first failure (0 when ok or when the failure is at the end). */
  line: number;
  /** sealedAt is when the service sealed the export (empty when it is not sealed). */
  sealedAt: string;
  /** witnessCheckpoints is how many of the witness's checkpoints for this tenant were checked against the export. */
  witnessCheckpoints: number;
}

/** VerifyExportOptions add outside evidence to verifyExport. */
export interface VerifyExportOptions {
  /**
   * witness lists the tenant's checkpoints as a witness recorded them (readWitnessFile): each one
   * inside the export must match it, and one beyond its end signed before the seal shows that the
   * export lacks events that existed when it was made (a truncated tail).
   */
  witness?: readonly ChainCheckpoint[];
}

/**
 * verifyExport checks an export file (NDJSON lines) with the public keys alone: the header's
 * anchor, every checkpoint's signature and hash, every event's link and hash, that no event up to
 * the header's headSeq is missing, and that the file ends with the seal the service signed over
 * its anchor and last event (so neither end can be cut or moved). A filtered export is refused:
 * it has gaps by design. With a witness, the export must also agree with every witnessed
 * checkpoint signed before the seal.
 */
export async function verifyExport(
  input: Readable,
  keys: ReadonlyMap<string, KeyObject>,
  options: VerifyExportOptions = {},
): Promise<ExportVerification> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let header: ExportHeaderLine | undefined;
  let verifier: ChainVerifier | undefined;
  let seal: ExportSeal | undefined;
  let sealLine = 0;
  let lineNo = 0;
  let failedLine = 0;
  let sawEvent = false;
  const witness = options.witness ?? [];
  let witnessed = 0;
  const fail = (reason: string, seq = 0): ExportVerification => ({
    ok: false,
    firstFailedSeq: seq,
    reason,
    verifiedFromSeq: 0,
    verifiedToSeq: 0,
    eventsVerified: 0,
    checkpointsVerified: 0,
    lastCheckpointSeq: 0,
    tenantId: header?.tenantId ?? '',
    line: lineNo,
    sealedAt: '',
    witnessCheckpoints: 0,
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
      for (const cp of witness) if (verifier.addWitnessedCheckpoint(cp)) witnessed += 1;
      continue;
    }
    if (verifier === undefined) break;
    if (seal !== undefined) return fail(`line ${lineNo}: nothing may follow the seal`);
    const wasBroken = verifier.broken;
    if (line.type === 'checkpoint') {
      if (sawEvent) return fail(`line ${lineNo}: checkpoints must come before the events`);
      const { type: _t, ...cp } = line;
      verifier.addCheckpoint(cp as ChainCheckpoint);
    } else if (line.type === 'event') {
      sawEvent = true;
      const { type: _t, ...e } = line;
      verifier.addEvent(e as ChainEvent);
    } else if (line.type === 'seal') {
      const { type: _t, ...s } = line;
      seal = s as ExportSeal;
      sealLine = lineNo;
    } else {
      return fail(`line ${lineNo}: a second header`);
    }
    if (!wasBroken && verifier.broken && failedLine === 0) failedLine = lineNo;
  }
  if (header === undefined || verifier === undefined) return fail('the file is empty');
  const lastSeq = verifier.lastSeq;
  const result = verifier.finish(header.headSeq);
  const base = { tenantId: header.tenantId, sealedAt: seal?.signedAt ?? '', witnessCheckpoints: witnessed };
  const beyond = verifier.witnessedBeyondEnd();
  if (!result.ok) return { ...result, ...base, line: failedLine };
  const sealed = (reason: string): ExportVerification => ({
    ...result,
    ...base,
    ok: false,
    firstFailedSeq: lastSeq,
    reason,
    line: sealLine,
  });
  if (seal === undefined)
    return sealed(
      `the export does not end with a signed seal: its end (or the whole file) is not vouched for; export again (a chain that does not verify is exported without one)`,
    );
  if (
    seal.tenantId !== header.tenantId ||
    seal.anchorSeq !== header.anchorSeq ||
    seal.anchorHash !== header.anchorHash ||
    seal.seq !== lastSeq ||
    seal.hash !== verifier.lastHash ||
    header.headSeq !== lastSeq
  )
    return sealed(
      `the seal covers events ${seal.anchorSeq + 1}..${seal.seq}, not this file's ${header.anchorSeq + 1}..${lastSeq}: events were cut or the header was edited`,
    );
  if (!signatureValid(keys, seal.keyId, exportSealStatement(seal), seal.signature))
    return sealed(`the seal has an invalid signature or an unknown key ${seal.keyId}`);
  const cut = beyond.filter((cp) => cp.signedAt <= seal.signedAt).sort((a, b) => b.seq - a.seq)[0];
  if (cut !== undefined)
    return {
      ...result,
      ...base,
      ok: false,
      firstFailedSeq: lastSeq + 1,
      reason: `the witness holds a checkpoint at ${cut.seq} (signed ${cut.signedAt}) but this export, sealed ${seal.signedAt}, ends at ${lastSeq}: events were removed from the tail`,
      line: 0,
    };
  return { ...result, ...base, line: 0 };
}
