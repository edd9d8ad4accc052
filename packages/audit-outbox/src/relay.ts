import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import type { Logger } from '@parley/platform';
import { AuditEventSchema, type AuditEvent, type AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { sql, type Kysely } from 'kysely';
import { OUTBOX_TABLE, RELAY_SETTING } from './migration.js';

/** AuditRelayOptions configures startAuditRelay; every duration has a default fit for production. */
export interface AuditRelayOptions {
  /** db connects as the service's own role with its schema on the search path (createServiceDb). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the relay touches only its own table, through raw SQL.
  readonly db: Kysely<any>;
  /** client is the mTLS client for the audit service (ctx.clientFor('audit', AuditService)). */
  readonly client: Pick<Client<typeof AuditService>, 'appendEvents'>;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'debug'>;
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

interface OutboxRow {
  tenant_id: string;
  id: string;
  event: JsonValue;
  attempts: number;
}

interface BatchResult {
  claimed: number;
  delivered: number;
  failed: boolean;
}

/**
 * startAuditRelay delivers the service's outbox rows to the audit service. Each delivery is one
 * transaction: claim up to batchSize due rows with `FOR UPDATE SKIP LOCKED` (so replicas share
 * the work and never send a row twice at the same time), call AppendEvents, delete the rows on
 * success or push their next attempt back exponentially (with jitter) on failure. A crash
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
  const { db, client, logger } = options;
  const table = sql.table(OUTBOX_TABLE);

  let stopped = false;
  let wakeUp: (() => void) | undefined;
  let woken = false;

  const backoffMs = (failures: number): number => {
    const base = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(failures - 1, 30));
    return Math.round(base * (0.5 + Math.random() / 2));
  };

  async function deliverBatch(): Promise<BatchResult> {
    return db.transaction().execute(async (trx) => {
      await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
      const { rows } = await sql<OutboxRow>`
        select tenant_id, id, event, attempts from ${table}
         where next_attempt_at <= now()
         order by created_at
         limit ${batchSize}
         for update skip locked`.execute(trx);
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
        await postpone(trx, unreadable, 'event is not a readable parley.audit.v1.AuditEvent', maxBackoffMs);
        logger.warn({ ids: unreadable.map((r) => r.id) }, 'audit outbox rows are unreadable; postponed');
      }
      if (sent.length === 0) return { claimed: rows.length, delivered: 0, failed: true };

      try {
        await client.appendEvents({ events }, { timeoutMs: callTimeoutMs });
      } catch (err) {
        const code = ConnectError.from(err).code;
        const attempts = Math.max(...sent.map((r) => r.attempts)) + 1;
        await postpone(trx, sent, `AppendEvents failed: ${Code[code]}`, backoffMs(attempts));
        logger.warn({ code: Code[code], events: sent.length, attempts }, 'audit delivery failed; will retry');
        return { claimed: rows.length, delivered: 0, failed: true };
      }
      await sql`delete from ${table}
                 where (tenant_id, id) in (select * from unnest(${sent.map((r) => r.tenant_id)}::uuid[], ${sent.map((r) => r.id)}::uuid[]))`.execute(
        trx,
      );
      return { claimed: rows.length, delivered: sent.length, failed: false };
    });
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw SQL on our own table
  async function postpone(trx: Kysely<any>, rows: OutboxRow[], reason: string, delayMs: number): Promise<void> {
    await sql`update ${table}
                 set attempts = attempts + 1,
                     next_attempt_at = now() + make_interval(secs => ${delayMs / 1000}),
                     last_error = ${reason.slice(0, 500)}
               where (tenant_id, id) in (select * from unnest(${rows.map((r) => r.tenant_id)}::uuid[], ${rows.map((r) => r.id)}::uuid[]))`.execute(
      trx,
    );
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
