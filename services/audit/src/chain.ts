// The hash chain and its verification: pure functions shared by the service (append, VerifyLog),
// the offline verifier and the benchmark. Nothing here touches the database.
import { createHash, createPublicKey, hash, verify as verifySignature, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';

/** GENESIS_HASH is the prev_hash of a tenant's first event: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

/** CHAIN_VERSION is mixed into every hashed record so that a future encoding cannot be confused with this one. */
export const CHAIN_VERSION = 1;

/** JsonObject is a JSON object as the description column holds it. */
export type JsonObject = { [key: string]: JsonValue };
/** JsonValue is any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;

/** ChainEvent is an event as stored and exported: every field the hash covers, plus the hash. */
export interface ChainEvent {
  tenantId: string;
  seq: number;
  id: string;
  /** occurredAt and recordedAt are ISO 8601 UTC with milliseconds. */
  occurredAt: string;
  recordedAt: string;
  actorKind: string;
  actorId: string;
  action: string;
  targetType: string;
  targetId: string;
  outcome: string;
  description: JsonObject;
  sourceAddress: string;
  userAgent: string;
  traceId: string;
  prevHash: string;
  hash: string;
}

/** ChainCheckpoint is a signed statement of a tenant's head hash at a sequence number. */
export interface ChainCheckpoint {
  tenantId: string;
  seq: number;
  hash: string;
  signedAt: string;
  keyId: string;
  /** signature is Ed25519, base64. */
  signature: string;
}

/** SignedAnchor is a purge anchor as signed by the service: the last purged event's sequence number and hash. */
export interface SignedAnchor {
  tenantId: string;
  seq: number;
  hash: string;
  signedAt: string;
  keyId: string;
  /** signature is Ed25519, base64, over anchorStatement. */
  signature: string;
}

/**
 * ExportSeal closes an unfiltered export: signed when the export was made, over where the export
 * starts (its anchor) and its last event, so neither end can be moved without breaking it.
 */
export interface ExportSeal {
  tenantId: string;
  anchorSeq: number;
  anchorHash: string;
  seq: number;
  hash: string;
  signedAt: string;
  keyId: string;
  /** signature is Ed25519, base64, over exportSealStatement. */
  signature: string;
}

/** canonicalJson is RFC 8785 (JCS) canonical JSON: sorted keys, no whitespace, ECMAScript number form. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON form');
  return text;
}

/** HASHED_STRING_FIELDS are an event's hashed fields that are strings (all but seq and description). */
const HASHED_STRING_FIELDS = [
  'tenantId',
  'id',
  'occurredAt',
  'recordedAt',
  'actorKind',
  'actorId',
  'action',
  'targetType',
  'targetId',
  'outcome',
  'sourceAddress',
  'userAgent',
  'traceId',
  'prevHash',
] as const;

/** HASHED_KEYS are the keys of the hashed record (the event's fields but hash, plus v) in RFC 8785 order: by UTF-16 code unit, as Array.prototype.sort orders. */
const HASHED_KEYS = ['v', 'seq', 'description', ...HASHED_STRING_FIELDS].sort();

/** HASHED_FIELD_COUNT is how many own fields an event has besides `hash` when it has exactly the hashed ones. */
const HASHED_FIELD_COUNT = HASHED_KEYS.length - 1;

/** wellFormed tells a string without lone surrogates (String.prototype.isWellFormed, Node 20+; this tsconfig's lib predates it). */
function wellFormed(value: unknown): boolean {
  return typeof value === 'string' && (value as string & { isWellFormed(): boolean }).isWellFormed();
}

/**
 * eventCanonicalJson is canonicalJson({ v: CHAIN_VERSION, ...event without hash }) written out
 * field by field for an event of exactly the chain's fields (string fields well formed, seq a
 * safe integer, description a plain object); the generic canonicalisation of every key and value
 * was the larger part of hashing an event. Anything else (an extra or missing field, another
 * type: an export line a verifier reads) goes through canonicalJson, so it hashes as before.
 */
function eventCanonicalJson(event: Omit<ChainEvent, 'hash'> & { hash?: string }): string {
  const fields = Object.keys(event).length - (Object.hasOwn(event, 'hash') ? 1 : 0);
  const regular =
    fields === HASHED_FIELD_COUNT &&
    Number.isSafeInteger(event.seq) &&
    typeof event.description === 'object' &&
    event.description !== null &&
    Object.getPrototypeOf(event.description) === Object.prototype &&
    HASHED_STRING_FIELDS.every((k) => wellFormed(event[k]));
  if (!regular) {
    const { hash: _ignored, ...rest } = event;
    return canonicalJson({ v: CHAIN_VERSION, ...rest });
  }
  let text = '{';
  for (const key of HASHED_KEYS) {
    if (text.length > 1) text += ',';
    // Keys are plain ASCII identifiers: quoting is all JSON.stringify would do to them.
    text += `"${key}":`;
    if (key === 'v') text += String(CHAIN_VERSION);
    else if (key === 'seq') text += String(event.seq);
    else if (key === 'description') text += canonicalJson(event.description);
    // RFC 8785 serialises strings as ECMAScript's JSON.stringify does (well formed, checked above).
    else text += JSON.stringify(event[key as (typeof HASHED_STRING_FIELDS)[number]]);
  }
  return `${text}}`;
}

/**
 * eventHash is SHA-256 (hex) over the canonical JSON of every field of the event except `hash`
 * (prev_hash included, which is what links the chain), plus the chain version.
 */
export function eventHash(event: Omit<ChainEvent, 'hash'> & { hash?: string }): string {
  // The one-shot hash: no Hash object per event.
  return hash('sha256', eventCanonicalJson(event), 'hex');
}

/** checkpointStatement is the exact bytes a checkpoint signature covers. */
export function checkpointStatement(cp: Pick<ChainCheckpoint, 'tenantId' | 'seq' | 'hash' | 'signedAt'>): Buffer {
  return Buffer.from(
    canonicalJson({
      v: CHAIN_VERSION,
      type: 'parley.audit.checkpoint',
      tenantId: cp.tenantId,
      seq: cp.seq,
      hash: cp.hash,
      signedAt: cp.signedAt,
    }),
    'utf8',
  );
}

/** anchorStatement is the exact bytes a purge anchor's signature covers (its own type, so a checkpoint cannot pass as an anchor). */
export function anchorStatement(a: Pick<SignedAnchor, 'tenantId' | 'seq' | 'hash' | 'signedAt'>): Buffer {
  return Buffer.from(
    canonicalJson({
      v: CHAIN_VERSION,
      type: 'parley.audit.purge-anchor',
      tenantId: a.tenantId,
      seq: a.seq,
      hash: a.hash,
      signedAt: a.signedAt,
    }),
    'utf8',
  );
}

/** exportSealStatement is the exact bytes an export seal's signature covers. */
export function exportSealStatement(s: Omit<ExportSeal, 'keyId' | 'signature'>): Buffer {
  return Buffer.from(
    canonicalJson({
      v: CHAIN_VERSION,
      type: 'parley.audit.export-seal',
      tenantId: s.tenantId,
      anchorSeq: s.anchorSeq,
      anchorHash: s.anchorHash,
      seq: s.seq,
      hash: s.hash,
      signedAt: s.signedAt,
    }),
    'utf8',
  );
}

/** signatureValid checks an Ed25519 signature (base64) by the key named keyId among the trusted keys. */
export function signatureValid(keys: ReadonlyMap<string, KeyObject>, keyId: string, statement: Buffer, signature: string): boolean {
  const key = keys.get(keyId);
  return key !== undefined && verifySignature(null, statement, key, Buffer.from(signature, 'base64'));
}

/** keyIdOf names an Ed25519 public key: the first 16 hex digits of SHA-256 over its SubjectPublicKeyInfo DER. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

/** publicKeysFromPem parses Ed25519 public keys (PEM) into a key-id map for verification. */
export function publicKeysFromPem(pems: readonly string[]): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const pem of pems) {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new TypeError(`checkpoint keys are Ed25519, got ${key.asymmetricKeyType ?? 'unknown'}`);
    keys.set(keyIdOf(key), key);
  }
  return keys;
}

/** VerifyResult is the outcome of checking a stretch of chain. */
export interface VerifyResult {
  ok: boolean;
  /** firstFailedSeq is the lowest sequence number that fails (0 when ok). */
  firstFailedSeq: number;
  reason: string;
  verifiedFromSeq: number;
  verifiedToSeq: number;
  eventsVerified: number;
  checkpointsVerified: number;
  /** lastCheckpointSeq is the highest sequence number covered by a valid checkpoint that matched the chain. */
  lastCheckpointSeq: number;
}

/**
 * ChainVerifier checks a tenant's chain as it streams past, in sequence order, without holding
 * it in memory: give it the anchor (the event before the range, or the purge anchor, or
 * genesis), then every checkpoint of the range, then the events. Each event must sit at the next
 * sequence number, link to the previous hash, and hash to its stored hash; each checkpoint must
 * carry a valid signature by a known key and match the chain at its sequence number. The result
 * names the lowest failing sequence number.
 */
export class ChainVerifier {
  private expectedSeq: number;
  private prevHash: string;
  private failure: { seq: number; reason: string } | undefined;
  // Several checkpoints may claim one sequence number (a witness's copy and the stored one).
  private readonly pending = new Map<number, ChainCheckpoint[]>();
  private readonly witnessed = new Map<number, ChainCheckpoint[]>();
  private checkpointsVerified = 0;
  private lastCheckpointSeq = 0;
  private eventsVerified = 0;
  private readonly fromSeq: number;
  private readonly anchorHash: string;

  /** constructor takes the tenant, the anchor and the trusted public keys by key id. */
  constructor(
    private readonly tenantId: string,
    anchor: { seq: number; hash: string },
    private readonly keys: ReadonlyMap<string, KeyObject>,
  ) {
    this.anchorHash = anchor.hash;
    this.expectedSeq = anchor.seq + 1;
    this.prevHash = anchor.hash;
    this.fromSeq = anchor.seq + 1;
  }

  private fail(seq: number, reason: string): void {
    if (this.failure === undefined || seq < this.failure.seq) this.failure = { seq, reason };
  }

  /** failed tells whether the event chain already broke (later events cannot be checked). */
  get broken(): boolean {
    return this.failure !== undefined && this.failure.seq <= this.expectedSeq;
  }

  /** addCheckpoint checks a checkpoint's signature now and its hash when the chain reaches its sequence number. */
  addCheckpoint(cp: ChainCheckpoint): void {
    if (cp.tenantId !== this.tenantId) return this.fail(cp.seq, `checkpoint at ${cp.seq} is for another tenant`);
    const key = this.keys.get(cp.keyId);
    if (key === undefined) return this.fail(cp.seq, `checkpoint at ${cp.seq} is signed by unknown key ${cp.keyId}`);
    const ok = verifySignature(null, checkpointStatement(cp), key, Buffer.from(cp.signature, 'base64'));
    if (!ok) return this.fail(cp.seq, `checkpoint at ${cp.seq} has an invalid signature`);
    if (cp.seq < this.expectedSeq) {
      // A checkpoint at the anchor itself can be matched against the anchor hash.
      if (cp.seq === this.expectedSeq - 1) this.matchCheckpoint(cp, this.prevHash);
      return;
    }
    this.pending.set(cp.seq, [...(this.pending.get(cp.seq) ?? []), cp]);
  }

  /**
   * addWitnessedCheckpoint adds a checkpoint as an outside witness recorded it: when the chain
   * reaches its sequence number it must match; one beyond the chain's end is not a failure here
   * (it may have been signed after the chain was read) and is listed by witnessedBeyondEnd.
   * A witness line whose signature does not verify is not evidence and is ignored.
   */
  addWitnessedCheckpoint(cp: ChainCheckpoint): boolean {
    if (cp.tenantId !== this.tenantId || cp.seq < this.expectedSeq) return false;
    if (!signatureValid(this.keys, cp.keyId, checkpointStatement(cp), cp.signature)) return false;
    this.witnessed.set(cp.seq, [...(this.witnessed.get(cp.seq) ?? []), cp]);
    return true;
  }

  /** witnessedBeyondEnd lists the witnessed checkpoints the chain did not reach. */
  witnessedBeyondEnd(): ChainCheckpoint[] {
    return [...this.witnessed.values()].flat();
  }

  /**
   * checkAnchor requires the range's anchor to be a purge anchor the service signed (a forged
   * anchor would hide a deleted prefix); call it when the range starts at a purge anchor.
   */
  checkAnchor(signed: SignedAnchor | undefined): void {
    const seq = this.fromSeq - 1;
    if (signed === undefined) return this.fail(seq, `the purge anchor at ${seq} is not signed`);
    if (signed.tenantId !== this.tenantId || signed.seq !== seq)
      return this.fail(seq, `the purge anchor at ${seq} is signed for another place in the chain`);
    if (!signatureValid(this.keys, signed.keyId, anchorStatement(signed), signed.signature))
      return this.fail(seq, `the purge anchor at ${seq} has an invalid signature or an unknown key ${signed.keyId}`);
    if (signed.hash !== this.anchorHash) return this.fail(seq, `the purge anchor at ${seq} differs from its signed hash`);
  }

  /** lastSeq and lastHash are where the verified chain stands (the anchor before any event). */
  get lastSeq(): number {
    return this.expectedSeq - 1;
  }

  get lastHash(): string {
    return this.prevHash;
  }

  private matchCheckpoint(cp: ChainCheckpoint, hash: string): void {
    if (cp.hash !== hash) return this.fail(cp.seq, `chain hash at ${cp.seq} differs from the signed checkpoint`);
    this.checkpointsVerified += 1;
    this.lastCheckpointSeq = Math.max(this.lastCheckpointSeq, cp.seq);
  }

  /** addEvent checks the next event; after the first broken link it only counts. */
  addEvent(e: ChainEvent): void {
    if (this.broken) return;
    const seq = this.expectedSeq;
    if (e.tenantId !== this.tenantId) return this.fail(seq, `event at ${seq} belongs to another tenant`);
    if (e.seq > seq) return this.fail(seq, `event ${seq} is missing (next is ${e.seq})`);
    if (e.seq < seq) return this.fail(seq, `event ${e.seq} appears again or out of order where ${seq} was expected`);
    if (e.prevHash !== this.prevHash) return this.fail(seq, `event ${seq} does not link to event ${seq - 1} (prev_hash differs)`);
    if (eventHash(e) !== e.hash) return this.fail(seq, `event ${seq} does not match its hash (its content was changed)`);
    const cps = this.pending.get(seq);
    if (cps !== undefined) {
      this.pending.delete(seq);
      for (const cp of cps) this.matchCheckpoint(cp, e.hash);
      if (this.failure !== undefined && this.failure.seq === seq) return;
    }
    const seen = this.witnessed.get(seq);
    if (seen !== undefined) {
      this.witnessed.delete(seq);
      const differs = seen.find((cp) => cp.hash !== e.hash);
      if (differs !== undefined)
        return this.fail(seq, `chain hash at ${seq} differs from the signed checkpoint the witness holds (signed ${differs.signedAt})`);
    }
    this.prevHash = e.hash;
    this.expectedSeq = seq + 1;
    this.eventsVerified += 1;
  }

  /**
   * finish reports the result. `headSeq`, when known (the chain head the service holds), turns
   * missing trailing events into a failure; so does a checkpoint beyond the last event.
   */
  finish(headSeq?: number): VerifyResult {
    const last = this.expectedSeq - 1;
    if (!this.broken) {
      if (headSeq !== undefined && headSeq > last) this.fail(last + 1, `events ${last + 1}..${headSeq} are missing`);
      for (const [seq] of this.pending) this.fail(last + 1, `event ${last + 1} is missing (a checkpoint covers ${seq})`);
    }
    const f = this.failure;
    return {
      ok: f === undefined,
      firstFailedSeq: f?.seq ?? 0,
      reason: f?.reason ?? '',
      verifiedFromSeq: this.fromSeq,
      verifiedToSeq: f === undefined ? last : Math.min(last, f.seq - 1),
      eventsVerified: this.eventsVerified,
      checkpointsVerified: this.checkpointsVerified,
      lastCheckpointSeq: this.lastCheckpointSeq,
    };
  }
}
