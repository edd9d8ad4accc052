import { create, type JsonObject as ProtoJsonObject } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { ACTOR_KINDS, AUDIT_ACTIONS, isAuditAction, OUTCOMES, type AuditAction } from '@parley/audit-outbox';
import { isUuid, liftDbTimeouts, nextPageToken, pageSizeOf } from '@parley/db';
import { createSlots, currentTraceId, InvalidArgumentError, principalOf, requestTenant } from '@parley/platform';
import {
  AuditEventSchema,
  CheckpointSchema,
  ExportHeaderSchema,
  StoredEventSchema,
  type AuditEvent,
  type AuditService,
  type EventFilter as WireFilter,
  type ExportEventsResponse,
} from '@parley/proto/parley/audit/v1/audit_pb.js';
import { requireScope } from '@parley/scopes';
import type { Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { resolveRange, verifyTenantRange } from './chain-range.js';
import {
  canonicalJson,
  ChainVerifier,
  exportSealStatement,
  type ChainCheckpoint,
  type ChainEvent,
  type ExportSeal,
  type JsonObject,
} from './chain.js';
import type { AuditDb } from './db/tables.js';
import { EXPORT_FORMAT, toNdjson } from './export-format.js';
import { streamFromProducer } from './export-queue.js';
import type { CheckpointSigner } from './signer.js';
import { publishToWitnesses, type CheckpointWitness } from './witness.js';
import { createChainAppender } from './chain-appender.js';
import {
  appendBatchToChain,
  appendIfHeadUnmoved,
  appendToChain,
  keysOf,
  purgeEvents,
  type AppendResult,
  type CheckpointPolicy,
  type NewEvent,
} from './chain.store.js';
import { anchorFor, chainHead, checkpointsInRange, eventsInRange, forTenant, listEvents, type EventFilter } from './event.store.js';

/** AuditServiceDeps are what the handlers need. */
export interface AuditServiceDeps {
  db: Kysely<AuditDb>;
  signer: CheckpointSigner;
  policy: CheckpointPolicy;
  /** witnesses receive every checkpoint an append signs (the timer publishes its own). */
  witnesses?: readonly CheckpointWitness[];
  /** longReadsMax is how many exports and verifications this replica runs at once; default LONG_READS_PER_REPLICA. */
  longReadsMax?: number;
  logger: {
    info(fields: object, message: string): void;
    warn(fields: object, message: string): void;
    error(fields: object, message: string): void;
  };
}

/**
 * LONG_READS_PER_REPLICA bounds the exports and verifications one audit replica runs at once: each
 * holds one of the pool's connections (PARLEY_DB_POOL_MAX, 10 by default) for as long as its reader
 * takes, up to the public call's 10 min, so a few slow readers must not take the pool the appends,
 * the checkpoint timer and readiness need. More callers are refused at once, not queued.
 */
export const LONG_READS_PER_REPLICA = 2;

/** longReadsFor is LONG_READS_PER_REPLICA, fewer for a pool so small that two would leave it less than two connections (at least one). */
export function longReadsFor(dbPoolMax: number): number {
  return Math.max(1, Math.min(LONG_READS_PER_REPLICA, dbPoolMax - 2));
}

/** MAX_APPEND_BATCH bounds one AppendEvents call. */
export const MAX_APPEND_BATCH = 1000;

function bad(index: number, message: string): InvalidArgumentError {
  return new InvalidArgumentError(`events[${index}]: ${message}`, { field: `events[${index}]` });
}

function within(value: string, max: number): boolean {
  return value.length >= 1 && value.length <= max;
}

// A NUL or a lone UTF-16 surrogate (possible in a string that came through JSON or from in-process
// code) is refused by Postgres text or changed by jsonb and UTF-8, so the stored event would no
// longer hash to what was linked: every free-text field is checked, not only the description.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function requireStorable(index: number, field: string, value: string): void {
  if (value.includes('\u0000') || LONE_SURROGATE.test(value))
    throw bad(index, `${field} must not contain NUL or lone UTF-16 surrogates (send well-formed UTF-8 text)`);
}

/** toNewEvent validates one wire event against the registry and the column limits. */
export function toNewEvent(e: AuditEvent, index: number): NewEvent {
  if (!isUuid(e.id)) throw bad(index, 'id must be a UUID (v7, chosen by the recording service)');
  if (!isUuid(e.tenantId)) throw bad(index, 'tenant_id must be a UUID');
  if (!(ACTOR_KINDS as readonly string[]).includes(e.actorKind)) throw bad(index, `actor_kind must be one of ${ACTOR_KINDS.join(', ')}`);
  if (!within(e.actorId, 200)) throw bad(index, 'actor_id must be 1-200 characters');
  if (!isAuditAction(e.action)) throw bad(index, `action "${e.action}" is not registered in AUDIT_ACTIONS (@parley/audit-outbox)`);
  const targetType = AUDIT_ACTIONS[e.action as AuditAction].targetType;
  if (e.targetType !== targetType) throw bad(index, `action ${e.action} targets a ${targetType}, got ${e.targetType}`);
  if (!within(e.targetId, 200)) throw bad(index, 'target_id must be 1-200 characters');
  if (!(OUTCOMES as readonly string[]).includes(e.outcome)) throw bad(index, `outcome must be one of ${OUTCOMES.join(', ')}`);
  if (e.occurredAt === undefined) throw bad(index, 'occurred_at is required');
  if (e.sourceAddress.length > 100) throw bad(index, 'source_address must be at most 100 characters');
  if (e.userAgent.length > 256) throw bad(index, 'user_agent must be at most 256 characters');
  if (!/^([0-9a-f]{32})?$/.test(e.traceId)) throw bad(index, 'trace_id must be 32 lower-case hex digits or empty');
  requireStorable(index, 'actor_id', e.actorId);
  requireStorable(index, 'target_id', e.targetId);
  requireStorable(index, 'source_address', e.sourceAddress);
  requireStorable(index, 'user_agent', e.userAgent);
  // The description goes through a JSON round trip so that what is hashed is exactly what jsonb
  // gives back (no NUL, no lone surrogates).
  const text = JSON.stringify(e.description ?? {});
  if (text.length > 16_384) throw bad(index, 'description must be at most 16 KiB of JSON');
  if (text.includes('\\u0000') || /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i.test(text))
    throw bad(index, 'description must not contain NUL or lone surrogates');
  return {
    ...sameNamedFields(e),
    occurredAt: new Date(timestampDate(e.occurredAt).getTime()).toISOString(),
    description: JSON.parse(text) as JsonObject,
  };
}

/** SameNamedField are the event fields that the wire event and the chain event both hold as strings. */
type SameNamedField =
  | 'tenantId'
  | 'id'
  | 'actorKind'
  | 'actorId'
  | 'action'
  | 'targetType'
  | 'targetId'
  | 'outcome'
  | 'sourceAddress'
  | 'userAgent'
  | 'traceId';

function sameNamedFields(e: Pick<AuditEvent | ChainEvent, SameNamedField>): Pick<ChainEvent, SameNamedField> {
  return {
    tenantId: e.tenantId,
    id: e.id,
    actorKind: e.actorKind,
    actorId: e.actorId,
    action: e.action,
    targetType: e.targetType,
    targetId: e.targetId,
    outcome: e.outcome,
    sourceAddress: e.sourceAddress,
    userAgent: e.userAgent,
    traceId: e.traceId,
  };
}

/**
 * readTenant decides which tenant a read is for (requestTenant's convention: a principal's own,
 * else the tenant_id a service names); an end principal also needs the audit:read scope.
 */
function readTenant(requested: string, ctx: HandlerContext): string {
  const principal = principalOf(ctx);
  if (principal !== undefined) requireScope(principal, 'audit:read');
  return requestTenant(ctx, requested);
}

function toFilter(f: WireFilter | undefined): EventFilter {
  if (f === undefined) return {};
  if (f.action !== '' && !isAuditAction(f.action))
    throw new InvalidArgumentError(`filter.action "${f.action}" is not a registered action`, { field: 'filter.action' });
  return {
    ...(f.actorKind ? { actorKind: f.actorKind } : {}),
    ...(f.actorId ? { actorId: f.actorId } : {}),
    ...(f.action ? { action: f.action } : {}),
    ...(f.targetType ? { targetType: f.targetType } : {}),
    ...(f.targetId ? { targetId: f.targetId } : {}),
    ...(f.since ? { since: timestampDate(f.since) } : {}),
    ...(f.until ? { until: timestampDate(f.until) } : {}),
  };
}

function isFiltered(f: EventFilter): boolean {
  return Object.keys(f).length > 0;
}

function matches(e: ChainEvent, f: EventFilter): boolean {
  return (
    (f.actorKind === undefined || e.actorKind === f.actorKind) &&
    (f.actorId === undefined || e.actorId === f.actorId) &&
    (f.action === undefined || e.action === f.action) &&
    (f.targetType === undefined || e.targetType === f.targetType) &&
    (f.targetId === undefined || e.targetId === f.targetId) &&
    (f.since === undefined || e.occurredAt >= f.since.toISOString()) &&
    (f.until === undefined || e.occurredAt < f.until.toISOString())
  );
}

const ts = (iso: string): Timestamp => timestampFromDate(new Date(iso));

/** toStoredEvent converts a chain event to its wire form. */
export function toStoredEvent(e: ChainEvent) {
  return create(StoredEventSchema, {
    event: create(AuditEventSchema, {
      ...sameNamedFields(e),
      description: e.description as ProtoJsonObject,
      occurredAt: ts(e.occurredAt),
    }),
    seq: BigInt(e.seq),
    prevHash: e.prevHash,
    hash: e.hash,
    recordedAt: ts(e.recordedAt),
  });
}

function toCheckpoint(c: ChainCheckpoint) {
  return create(CheckpointSchema, {
    tenantId: c.tenantId,
    seq: BigInt(c.seq),
    hash: c.hash,
    signedAt: ts(c.signedAt),
    keyId: c.keyId,
    signature: Buffer.from(c.signature, 'base64'),
  });
}

function seqArg(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError(`${field} is too large`, { field });
  return Number(value);
}

async function signSeal(signer: CheckpointSigner, statement: Omit<ExportSeal, 'keyId' | 'signature'>): Promise<ExportSeal> {
  const signature = Buffer.from(await signer.sign(exportSealStatement(statement))).toString('base64');
  return { ...statement, keyId: signer.keyId, signature };
}

/** MAX_PURGE_BATCH bounds one PurgeEvents call, so no call holds the chain's head lock for long. */
export const MAX_PURGE_BATCH = 10_000;

/** createAuditService builds the internal AuditService handlers. */
export function createAuditService(deps: AuditServiceDeps): ServiceImpl<typeof AuditService> {
  const { db, signer, policy, logger } = deps;
  const witnesses = deps.witnesses ?? [];
  const longReads = createSlots(
    deps.longReadsMax ?? LONG_READS_PER_REPLICA,
    (max) =>
      `this audit replica is already running ${max} exports or verifications at once; try again in a minute (or read a shorter range with from_seq/to_seq)`,
  );
  // After the append's transaction committed: publish what it signed, alert on what it refused.
  const afterAppend = async (tenantId: string, r: AppendResult): Promise<void> => {
    if (r.refused !== undefined)
      logger.error(
        { tenantId, alert: 'audit_chain_broken' },
        `the audit chain does not verify; refusing to sign a checkpoint: ${r.refused}`,
      );
    for (const checkpoint of r.checkpoints) await publishToWitnesses(witnesses, checkpoint, logger);
  };
  // Appends to one tenant chain are group-committed; the witnesses hear of a batch's checkpoints
  // (signed only on the locking path) before its callers are answered.
  const appender = createChainAppender(
    {
      appendIfHeadUnmoved: (tenantId, from, batch) => appendIfHeadUnmoved(db, tenantId, from, batch),
      async appendLocked(tenantId, appends) {
        const r = await forTenant(db, tenantId, (trx) => appendBatchToChain(trx, tenantId, appends, signer, policy));
        await afterAppend(tenantId, r);
        return r;
      },
    },
    policy,
    MAX_APPEND_BATCH,
  );
  return {
    async appendEvents(req, ctx) {
      if (req.events.length > MAX_APPEND_BATCH)
        throw new InvalidArgumentError(`at most ${MAX_APPEND_BATCH} events per call`, { field: 'events' });
      const byTenant = new Map<string, NewEvent[]>();
      req.events.forEach((e, i) => {
        const n = toNewEvent(e, i);
        const list = byTenant.get(n.tenantId) ?? [];
        list.push(n);
        byTenant.set(n.tenantId, list);
      });
      // Each tenant's chain is its own transaction; a relay's batch spans tenants, so they run side by side.
      const counts = await Promise.all([...byTenant].map(([tenantId, events]) => appender.append(tenantId, events, ctx.signal)));
      return { appended: counts.reduce((a, b) => a + b, 0) };
    },

    async listEvents(req, ctx) {
      const tenantId = readTenant(req.tenantId, ctx);
      const filter = toFilter(req.filter);
      const pageSize = pageSizeOf({ pageSize: req.pageSize });
      const page = await forTenant(db, tenantId, (trx) =>
        listEvents(trx, tenantId, filter, pageSize, req.pageToken === '' ? undefined : req.pageToken),
      );
      return { events: page.items.map(toStoredEvent), nextPageToken: nextPageToken(page) };
    },

    async *exportEvents(req, ctx) {
      const tenantId = readTenant(req.tenantId, ctx);
      const filter = toFilter(req.filter);
      const filtered = isFiltered(filter);
      const fromReq = seqArg(req.fromSeq, 'from_seq');
      const toReq = seqArg(req.toSeq, 'to_seq');
      const release = longReads.take();
      try {
        // The export reads in one transaction (one snapshot) and yields as it goes; the stream's
        // back-pressure keeps memory flat for a long chain. It waits on its reader between reads, as
        // long as the reader takes (the stream's own deadline bounds it), so the role's timeouts are
        // lifted; the caller's signal ends it (the statement running then is canceled on the server).
        yield* streamFromProducer<ExportEventsResponse>((push) =>
          forTenant(
            db,
            tenantId,
            async (trx) => {
              await liftDbTimeouts(trx);
              const head = await chainHead(trx, tenantId);
              const { from, to } = resolveRange(fromReq, toReq, head);
              const anchor = await anchorFor(trx, tenantId, from, head);
              const exportedAt = new Date().toISOString();
              await push({
                $typeName: 'parley.audit.v1.ExportEventsResponse',
                item: {
                  case: 'header',
                  value: create(ExportHeaderSchema, {
                    tenantId,
                    anchorSeq: BigInt(anchor.seq),
                    anchorHash: anchor.hash,
                    filtered,
                    exportedAt: ts(exportedAt),
                  }),
                },
                ndjson: toNdjson({
                  type: 'header',
                  format: EXPORT_FORMAT,
                  tenantId,
                  anchorSeq: anchor.seq,
                  anchorHash: anchor.hash,
                  headSeq: to,
                  filtered,
                  exportedAt,
                }),
              });
              // An unfiltered export is verified as it is read, and closed by a seal signed now over its
              // anchor and last event; a chain that does not verify is exported without one.
              const verifier = filtered ? undefined : new ChainVerifier(tenantId, anchor, await keysOf(signer));
              if (verifier !== undefined && head.anchorSeq > 0 && anchor.seq === head.anchorSeq) verifier.checkAnchor(head.anchor);
              if (!filtered) {
                for (const cp of await checkpointsInRange(trx, tenantId, anchor.seq, to)) {
                  verifier?.addCheckpoint(cp);
                  await push({
                    $typeName: 'parley.audit.v1.ExportEventsResponse',
                    item: { case: 'checkpoint', value: toCheckpoint(cp) },
                    ndjson: toNdjson({ type: 'checkpoint', ...cp }),
                  });
                }
              }
              for await (const e of eventsInRange(trx, tenantId, from, to)) {
                verifier?.addEvent(e);
                if (filtered && !matches(e, filter)) continue;
                await push({
                  $typeName: 'parley.audit.v1.ExportEventsResponse',
                  item: { case: 'event', value: toStoredEvent(e) },
                  ndjson: toNdjson({ type: 'event', ...e }),
                });
              }
              if (verifier === undefined) return;
              const verdict = verifier.finish(to);
              if (!verdict.ok) {
                logger.error(
                  { tenantId, seq: verdict.firstFailedSeq, alert: 'audit_chain_broken' },
                  `the audit chain does not verify; exporting it without a seal: ${verdict.reason}`,
                );
                return;
              }
              const seal = await signSeal(signer, {
                tenantId,
                anchorSeq: anchor.seq,
                anchorHash: anchor.hash,
                seq: verifier.lastSeq,
                hash: verifier.lastHash,
                signedAt: new Date().toISOString(),
              });
              // The seal has no protobuf item of its own: it is a line of the file format.
              await push({
                $typeName: 'parley.audit.v1.ExportEventsResponse',
                item: { case: undefined },
                ndjson: toNdjson({ type: 'seal', ...seal }),
              });
            },
            ctx.signal,
          ),
        );
        const principal = principalOf(ctx);
        if (principal !== undefined && principal.kind !== 'session') {
          // Reading the whole log is itself recorded, straight into the chain (this is the log).
          const event: NewEvent = {
            tenantId,
            id: uuidv7(),
            occurredAt: new Date().toISOString(),
            actorKind: principal.kind,
            actorId: principal.id,
            action: 'audit.export',
            targetType: 'audit_log',
            targetId: tenantId,
            outcome: 'success',
            description: { fromSeq: fromReq, toSeq: toReq, filtered },
            sourceAddress: principal.source.slice(0, 100),
            userAgent: principal.userAgent.slice(0, 256),
            traceId: currentTraceId(),
          };
          await afterAppend(tenantId, await forTenant(db, tenantId, (trx) => appendToChain(trx, tenantId, [event], signer, policy)));
        }
      } finally {
        release();
      }
    },

    async verifyLog(req, ctx) {
      const tenantId = readTenant(req.tenantId, ctx);
      const fromSeq = seqArg(req.fromSeq, 'from_seq');
      const toSeq = seqArg(req.toSeq, 'to_seq');
      const release = longReads.take();
      let r;
      try {
        r = await verifyTenantRange(db, signer, tenantId, fromSeq, toSeq, ctx.signal);
      } finally {
        release();
      }
      return {
        ok: r.ok,
        firstFailedSeq: BigInt(r.firstFailedSeq),
        reason: r.reason,
        verifiedFromSeq: BigInt(r.verifiedFromSeq),
        verifiedToSeq: BigInt(r.verifiedToSeq),
        checkpointsVerified: r.checkpointsVerified,
        lastCheckpointSeq: BigInt(r.lastCheckpointSeq),
      };
    },

    async purgeEvents(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      if (req.before === undefined) throw new InvalidArgumentError('before is required', { field: 'before' });
      if (req.limit > MAX_PURGE_BATCH)
        throw new InvalidArgumentError(`limit must be at most ${MAX_PURGE_BATCH} (0: the whole stretch)`, { field: 'limit' });
      const before = timestampDate(req.before);
      const purged = await forTenant(db, tenantId, (trx) => purgeEvents(trx, tenantId, before, signer, req.limit));
      if (purged > 0) {
        // The purge is itself recorded in the chain it cut, after the signed anchor.
        const event: NewEvent = {
          tenantId,
          id: uuidv7(),
          occurredAt: new Date().toISOString(),
          actorKind: 'service',
          actorId: 'lifecycle',
          action: 'audit.purge',
          targetType: 'audit_log',
          targetId: tenantId,
          outcome: 'success',
          description: { before: before.toISOString(), purged },
          sourceAddress: '',
          userAgent: '',
          traceId: '',
        };
        await afterAppend(tenantId, await forTenant(db, tenantId, (trx) => appendToChain(trx, tenantId, [event], signer, policy)));
      }
      return { purged: BigInt(purged) };
    },

    async signStatement(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      if (req.kind !== 'dsar-export' && req.kind !== 'deletion-receipt')
        throw new InvalidArgumentError('kind must be "dsar-export" or "deletion-receipt"', { field: 'kind' });
      if (!/^[0-9a-f]{64}$/.test(req.sha256))
        throw new InvalidArgumentError('sha256 must be 64 lower-case hex digits', { field: 'sha256' });
      const signedAt = new Date();
      // Its own type, so a statement can pass neither as a checkpoint nor as a purge anchor.
      const statement = canonicalJson({
        type: 'parley.lifecycle.statement',
        kind: req.kind,
        tenantId,
        sha256: req.sha256,
        signedAt: signedAt.toISOString(),
      });
      const signature = await signer.sign(Buffer.from(statement, 'utf8'));
      return { keyId: signer.keyId, signature, signedAt: timestampFromDate(signedAt), statement };
    },

    async getPublicKeys() {
      const keys = await signer.publicKeys();
      return {
        keys: keys.map((k) => ({
          keyId: k.keyId,
          algorithm: 'Ed25519',
          publicKeyPem: k.publicKeyPem,
          createdAt: timestampFromDate(k.createdAt),
        })),
      };
    },
  };
}
