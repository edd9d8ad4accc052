import { fromJson } from '@bufbuild/protobuf';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { observeGauge, type Logger, type RuntimeContext } from '@parley/platform';
import { AuditEventSchema, AuditService, type AuditEvent } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Link, type SpanContext } from '@opentelemetry/api';
import type { Kysely } from 'kysely';
import { ORIGIN_SPAN_KEY } from './event.js';
import {
  claimDueRows,
  deleteRows,
  outboxBacklog,
  postponeRows,
  setRowAside,
  withRelayMode,
  type OutboxRow,
  type RelayTransaction,
} from './outbox.store.js';

/** AuditRelayOptions configures startAuditRelay; every duration has a default fit for production. */
export interface AuditRelayOptions {
  /** db connects as the service's own role with its schema on the search path (createServiceDb). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the relay touches only its own table, through raw SQL.
  readonly db: Kysely<any>;
  /** client is the mTLS client for the audit service (ctx.clientFor('audit', AuditService)). */
  readonly client: Pick<Client<typeof AuditService>, 'appendEvents'>;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /** batchSize is the most rows one delivery sends; default 100. */
  readonly batchSize?: number;
  /** pollIntervalMs is how long the relay sleeps when the outbox is empty; default 1000. wake() cuts it short. */
  readonly pollIntervalMs?: number;
  /** minBackoffMs is the first retry delay after a failed delivery; it doubles per failure; default 500. */
  readonly minBackoffMs?: number;
  /** maxBackoffMs caps the retry delay; default 60000. */
  readonly maxBackoffMs?: number;
  /** callTimeoutMs bounds one AppendEvents call (rows stay locked meanwhile); default 5000. */
  readonly callTimeoutMs?: number;
  /**
   * setAsideMs is how long a row the audit service rejected (or this build cannot read) waits
   * before it is tried again; default 900000 (15 minutes). Such a row is never dropped: a
   * rolling upgrade (an action the audit service does not know yet) heals on a later try.
   */
  readonly setAsideMs?: number;
}

/** AuditRelay is a running relay. */
export interface AuditRelay {
  /** wake makes the relay look at the outbox now (call it after committing an event, to cut latency). */
  wake(): void;
  /** drain delivers due rows until none is left or a delivery fails; returns how many it delivered. */
  drain(): Promise<number>;
  /** stop ends the loop after the delivery in flight. */
  stop(): Promise<void>;
}

interface BatchResult {
  claimed: number;
  delivered: number;
  failed: boolean;
}

/**
 * REJECTING_CODES are the AppendEvents failures that blame the events rather than the call: the
 * relay then finds the rejected rows and sets them aside so the others get through. Everything
 * else (Unavailable, DeadlineExceeded, Internal, and PermissionDenied, which means a caller
 * policy or certificate is misconfigured, not that an event is bad) is retried for all rows.
 */
const REJECTING_CODES: ReadonlySet<Code> = new Set([Code.InvalidArgument, Code.FailedPrecondition]);

interface Delivery {
  /** delivered rows are stored by the audit service and may be deleted. */
  delivered: OutboxRow[];
  /** transient is set when a call failed for a reason that is not the events'; rows not yet delivered are retried later. */
  transient?: { code: Code; rows: OutboxRow[] };
}

/**
 * startAuditRelay delivers the service's outbox rows to the audit service. Each delivery is one
 * transaction: claim up to batchSize due rows with `FOR UPDATE SKIP LOCKED` (so replicas share
 * the work and never send a row twice at the same time), call AppendEvents, delete the rows on
 * success or push their next attempt back exponentially (with jitter per row, so rows that
 * failed together spread out) on failure. When the audit service rejects the events
 * (InvalidArgument, FailedPrecondition), the relay halves the batch until it has found the
 * rejected rows: the others are delivered, and each rejected row is set aside for setAsideMs
 * with `last_error` naming the event and the reason (and an error log). A crash
 * between the call and the commit re-sends the rows later; the audit service is idempotent on
 * event id, so that is harmless. Delivery order across rows is not guaranteed; each event
 * carries its own time.
 */
export function startAuditRelay(options: AuditRelayOptions): AuditRelay {
  const batchSize = options.batchSize ?? 100;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const minBackoffMs = options.minBackoffMs ?? 500;
  const maxBackoffMs = options.maxBackoffMs ?? 60_000;
  const callTimeoutMs = options.callTimeoutMs ?? 5000;
  const setAsideMs = options.setAsideMs ?? 900_000;
  const { db, client, logger } = options;

  let stopped = false;
  // The first failed delivery of a run of failures: its retries join its trace, one chain per outage.
  let failedChain: SpanContext | undefined;
  let wakeUp: (() => void) | undefined;
  let woken = false;

  const backoffMs = (failures: number): number => {
    const base = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(failures - 1, 30));
    return Math.round(base * (0.5 + Math.random() / 2));
  };

  async function deliverBatch(): Promise<BatchResult> {
    return withRelayMode(db, async (trx) => {
      const rows = await claimDueRows(trx, batchSize);
      if (rows.length === 0) return { claimed: 0, delivered: 0, failed: false };

      const events: AuditEvent[] = [];
      const sent: OutboxRow[] = [];
      const unreadable: OutboxRow[] = [];
      for (const row of rows) {
        try {
          events.push(fromJson(AuditEventSchema, row.event, { ignoreUnknownFields: true }));
          sent.push(row);
        } catch {
          unreadable.push(row);
        }
      }
      // A row this build cannot read waits for a build that can; it does not block the others.
      if (unreadable.length > 0) {
        for (const row of unreadable) await setAside(trx, row, `event ${row.id} is not a readable parley.audit.v1.AuditEvent`);
        logger.error({ ids: unreadable.map((r) => r.id) }, 'audit outbox rows are unreadable; set aside');
      }
      if (sent.length === 0) return { claimed: rows.length, delivered: 0, failed: false };

      // One span per delivery, linked to the request that recorded each event (the work left
      // that request's trace when it committed); a retry continues the failed delivery's trace.
      const span = trace.getTracer('@parley/audit-outbox').startSpan(
        'audit.relay deliver',
        {
          kind: SpanKind.PRODUCER,
          links: originLinks(sent, events),
          attributes: { 'parley.audit.events': sent.length, 'parley.audit.attempt': Math.max(...sent.map((r) => r.attempts)) + 1 },
        },
        failedChain === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, failedChain),
      );
      try {
        return await context.with(trace.setSpan(ROOT_CONTEXT, span), async () => {
          const result = await deliver(trx, sent, events);
          if (result.delivered.length > 0) await deleteRows(trx, result.delivered);
          if (result.transient !== undefined) {
            const { code, rows: waiting } = result.transient;
            await postponeRows(trx, waiting, `AppendEvents failed: ${Code[code]}`, { minMs: minBackoffMs, maxMs: maxBackoffMs });
            const attempts = Math.max(...waiting.map((r) => r.attempts)) + 1;
            logger.warn({ code: Code[code], events: waiting.length, attempts }, 'audit delivery failed; will retry');
            span.setStatus({ code: SpanStatusCode.ERROR });
            span.setAttribute('error.type', Code[code]);
            failedChain ??= span.spanContext();
            return { claimed: rows.length, delivered: result.delivered.length, failed: true };
          }
          failedChain = undefined;
          return { claimed: rows.length, delivered: result.delivered.length, failed: false };
        });
      } finally {
        span.end();
      }
    });
  }

  /**
   * deliver sends rows (events[i] is rows[i]'s event). On a rejection it halves the rows and
   * tries each half, down to single rows, which it sets aside: one bad event costs about
   * 2·log2(batchSize) extra calls instead of holding the batch back.
   */
  async function deliver(trx: RelayTransaction, rows: OutboxRow[], events: AuditEvent[]): Promise<Delivery> {
    try {
      await client.appendEvents({ events }, { timeoutMs: callTimeoutMs });
      return { delivered: rows };
    } catch (err) {
      const error = ConnectError.from(err);
      if (!REJECTING_CODES.has(error.code)) return { delivered: [], transient: { code: error.code, rows } };
      const [row] = rows;
      if (rows.length === 1 && row !== undefined) {
        const reason = `rejected by the audit service (${Code[error.code]}): ${error.rawMessage}`;
        await setAside(trx, row, `event ${row.id} ${reason}`);
        logger.error(
          { eventId: row.id, tenantId: row.tenant_id, action: events[0]?.action, code: Code[error.code], reason: error.rawMessage },
          'audit event rejected by the audit service; set aside, the others are delivered',
        );
        return { delivered: [] };
      }
      const half = Math.ceil(rows.length / 2);
      const first = await deliver(trx, rows.slice(0, half), events.slice(0, half));
      if (first.transient !== undefined)
        return {
          delivered: first.delivered,
          transient: { code: first.transient.code, rows: [...first.transient.rows, ...rows.slice(half)] },
        };
      const second = await deliver(trx, rows.slice(half), events.slice(half));
      return { delivered: [...first.delivered, ...second.delivered], ...(second.transient ? { transient: second.transient } : {}) };
    }
  }

  /** setAside parks one row the audit service will not take (or this build cannot read) for about setAsideMs. */
  function setAside(trx: RelayTransaction, row: OutboxRow, reason: string): Promise<void> {
    return setRowAside(trx, row, reason, setAsideMs);
  }

  async function attempt(): Promise<BatchResult> {
    try {
      return await deliverBatch();
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'audit outbox unreachable; will retry');
      return { claimed: 0, delivered: 0, failed: true };
    }
  }

  function sleep(ms: number): Promise<void> {
    if (woken) {
      woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });
  }

  async function loop(): Promise<void> {
    let failures = 0;
    while (!stopped) {
      const result = await attempt();
      if (stopped) break;
      if (result.failed) {
        failures += 1;
        woken = false;
        await sleep(backoffMs(failures));
        continue;
      }
      if (failures > 0) logger.info({ after: failures }, 'audit delivery recovered');
      failures = 0;
      if (result.claimed < batchSize) await sleep(pollIntervalMs);
    }
  }

  const running = loop();

  return {
    wake() {
      woken = true;
      wakeUp?.();
    },
    async drain() {
      let total = 0;
      for (;;) {
        const result = await attempt();
        total += result.delivered;
        if (result.failed || result.claimed === 0) return total;
      }
    },
    async stop() {
      stopped = true;
      wakeUp?.();
      await running;
    },
  };
}

/**
 * observeOutbox reports the outbox's depth (rows waiting) and age (seconds since the oldest was
 * recorded) at each metrics collection: a growing age means audit events are not reaching the
 * audit service, which the OutboxAgeHigh alert watches.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the relay touches only its own table, through raw SQL.
function observeOutbox(db: Kysely<any>): () => void {
  let last: Promise<{ depth: number; age: number }> | undefined;
  // Both gauges are read in one collection: one query serves them.
  const read = () =>
    (last ??= outboxBacklog(db).finally(() => {
      setTimeout(() => (last = undefined), 1_000).unref();
    }));
  const stopDepth = observeGauge(
    'parley.audit.outbox.depth',
    { description: 'Audit events waiting in the outbox.', unit: '{event}' },
    async () => [{ value: (await read()).depth }],
  );
  const stopAge = observeGauge(
    'parley.audit.outbox.age',
    { description: 'Age of the oldest audit event waiting in the outbox.', unit: 's' },
    async () => [{ value: (await read()).age }],
  );
  return () => {
    stopDepth();
    stopAge();
  };
}

/** MAX_LINKS bounds the links of one delivery span (the SDK's default link limit). */
const MAX_LINKS = 128;

/** originLinks are span links to the spans that recorded the events (one per distinct origin). */
function originLinks(rows: readonly OutboxRow[], events: readonly AuditEvent[]): Link[] {
  const links = new Map<string, Link>();
  rows.forEach((row, i) => {
    const traceId = events[i]?.traceId ?? '';
    const stored =
      typeof row.event === 'object' && row.event !== null && !Array.isArray(row.event) ? row.event[ORIGIN_SPAN_KEY] : undefined;
    const spanId = typeof stored === 'string' ? stored : '';
    const origin: SpanContext = { traceId, spanId, traceFlags: 1, isRemote: true };
    if (links.size < MAX_LINKS && trace.isSpanContextValid(origin)) {
      links.set(`${traceId}/${spanId}`, { context: origin, attributes: { 'parley.audit.event_id': row.id } });
    }
  });
  return [...links.values()];
}

/**
 * relayAuditOutbox is a service's whole audit wiring: when an audit service is configured
 * (PARLEY_AUDIT_URL) it starts the relay and stops it at shutdown; without one (a bare test
 * process) events wait in the outbox and nothing is lost. Call the returned wake() after a
 * commit that recorded an event, to deliver it at once.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the relay touches only its own table, through raw SQL.
export function relayAuditOutbox(ctx: RuntimeContext, db: Kysely<any>): { wake(): void } {
  if (ctx.config.peers.audit === undefined) return { wake: () => undefined };
  const relay = startAuditRelay({ db, client: ctx.clientFor('audit', AuditService), logger: ctx.logger });
  const stopObserving = observeOutbox(db);
  ctx.onClose(() => {
    stopObserving();
    return relay.stop();
  });
  return { wake: () => relay.wake() };
}
