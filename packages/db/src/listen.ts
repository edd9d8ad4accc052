import { randomUUID } from 'node:crypto';
import type { MeterProvider } from '@opentelemetry/api';
import { observeListening, type Logger } from '@parley/platform';
import type pg from 'pg';
import { DatabaseClient } from './db-telemetry.js';

/** NotificationListener is a LISTEN connection on one channel. */
export interface NotificationListener {
  /** listening says whether notifications arrive now: the connection is up and its last heartbeat came back in time (they may be missed while it is not). */
  readonly listening: boolean;
  close(): Promise<void>;
}

/** HEARTBEAT_PREFIX starts every heartbeat payload: listeners on a channel ignore each other's heartbeats. */
export const HEARTBEAT_PREFIX = 'parley-heartbeat:';

/** DEFAULT_HEARTBEAT_MS is how often a listener notifies itself when its options name no interval. */
export const DEFAULT_HEARTBEAT_MS = 10_000;

/** ListenOptions say where to listen and what to do with what is heard. */
export interface ListenOptions {
  /** connectionString should reach Postgres itself: a transaction-mode pooler (PgBouncer) does not deliver notifications. */
  readonly connectionString: string;
  /** channel is a plain identifier (it is spelled into the LISTEN statement). */
  readonly channel: string;
  /** applicationName shows the connection in pg_stat_activity. */
  readonly applicationName: string;
  /** onNotification gets each notification's payload (heartbeats are not passed on). */
  readonly onNotification: (payload: string) => void;
  /** onListening runs each time the connection is LISTENing again (what was sent meanwhile was missed). */
  readonly onListening?: () => void;
  /** onLost runs as soon as the connection is known to be gone, before the reconnect is scheduled. */
  readonly onLost?: (reason: string) => void;
  /** lostMessage is the warning logged when the connection is lost (what the service does meanwhile). */
  readonly lostMessage: string;
  readonly logger?: Logger | undefined;
  /** heartbeatMs is how often the listener notifies itself (DEFAULT_HEARTBEAT_MS when absent). */
  readonly heartbeatMs?: number;
  /** heartbeatTimeoutMs bounds how long its own heartbeat may take to come back (5 s, at most heartbeatMs). */
  readonly heartbeatTimeoutMs?: number;
  /** meterProvider receives parley.db.listening and the connection's timeouts instead of the global provider (a test's own). */
  readonly meterProvider?: MeterProvider;
}

/**
 * listenForNotifications keeps one connection LISTENing on a channel. While the connection is
 * down it reconnects with a growing pause (at most 30 s); onLost and onListening let the caller
 * fall back (poll, drop a cache) meanwhile. A LISTEN that succeeds does not prove that
 * notifications arrive: behind a transaction-mode pooler they never do, and a firewall or NAT
 * may drop an idle connection silently. So the listener NOTIFYs its own channel right after
 * LISTEN and then every heartbeatMs, and counts as listening only from the moment it hears its
 * own heartbeat: one not heard within heartbeatTimeoutMs replaces the connection (onLost, then a
 * reconnect). TCP keepalive is on too. The connection string is never logged. Its state is the
 * gauge parley.db.listening (the ParleyListenDown alert).
 */
export function listenForNotifications(options: ListenOptions): NotificationListener {
  if (!/^[a-z_][a-z0-9_]*$/.test(options.channel)) throw new Error(`channel ${JSON.stringify(options.channel)} is not a plain identifier`);
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const timeoutMs = Math.min(options.heartbeatTimeoutMs ?? 5_000, heartbeatMs);
  const self = `${HEARTBEAT_PREFIX}${randomUUID()}:`;
  let beats = 0;
  let client: pg.Client | undefined;
  let listening = false;
  let closed = false;
  let pauseMs = 500;
  let timer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  // The heartbeat sent and not heard yet, and when it is overdue.
  let awaiting: string | undefined;
  let overdue: NodeJS.Timeout | undefined;

  const stopHeartbeat = () => {
    if (heartbeat !== undefined) clearInterval(heartbeat);
    if (overdue !== undefined) clearTimeout(overdue);
    heartbeat = undefined;
    overdue = undefined;
    awaiting = undefined;
  };

  // Drops c (if it is still the current connection) and reconnects.
  const replace = (c: pg.Client, reason: string) => {
    if (client !== c) return;
    client = undefined;
    listening = false;
    stopHeartbeat();
    void c.end().catch(() => undefined);
    options.onLost?.(reason);
    reconnectLater(reason);
  };

  const reconnectLater = (reason: string) => {
    if (closed || timer !== undefined) return;
    options.logger?.warn({ channel: options.channel, reason, retry_ms: pauseMs }, options.lostMessage);
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, pauseMs);
    timer.unref();
    pauseMs = Math.min(pauseMs * 2, 30_000);
  };

  // Sends the next heartbeat on c; it must come back within timeoutMs.
  const beat = (c: pg.Client) => {
    if (client !== c) return;
    // The last one never came back (its deadline may be due in this same tick): no new one resets it.
    if (awaiting !== undefined) return replace(c, `its own heartbeat notification was not heard within ${heartbeatMs} ms`);
    beats += 1;
    const payload = `${self}${beats}`;
    awaiting = payload;
    if (overdue !== undefined) clearTimeout(overdue);
    overdue = setTimeout(() => replace(c, `its own heartbeat notification was not heard within ${timeoutMs} ms`), timeoutMs);
    overdue.unref();
    c.query('select pg_notify($1, $2)', [options.channel, payload]).catch((err: unknown) =>
      replace(c, err instanceof Error ? err.message : String(err)),
    );
  };

  // c's heartbeat came back: notifications arrive on it.
  const heard = (c: pg.Client, payload: string) => {
    if (client !== c || payload !== awaiting) return;
    awaiting = undefined;
    if (overdue !== undefined) clearTimeout(overdue);
    overdue = undefined;
    if (listening) return;
    listening = true;
    pauseMs = 500;
    options.onListening?.();
  };

  async function connect(): Promise<void> {
    if (closed) return;
    const c = new DatabaseClient({
      connectionString: options.connectionString,
      application_name: options.applicationName,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // A connection that hangs while connecting or LISTENing is replaced, like a silent heartbeat.
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      meterProvider: options.meterProvider,
    });
    client = c;
    c.on('notification', (n) => {
      const payload = n.payload ?? '';
      if (payload.startsWith(HEARTBEAT_PREFIX)) heard(c, payload);
      else options.onNotification(payload);
    });
    c.on('error', (err) => replace(c, err.message));
    c.on('end', () => replace(c, 'connection ended'));
    try {
      await c.connect();
      await c.query(`LISTEN ${options.channel}`);
      if (client !== c) return;
      stopHeartbeat();
      heartbeat = setInterval(() => beat(c), heartbeatMs);
      heartbeat.unref();
      beat(c);
    } catch (err) {
      if (client === c) client = undefined;
      listening = false;
      void c.end().catch(() => undefined);
      reconnectLater(err instanceof Error ? err.message : String(err));
    }
  }

  void connect();
  const stopObserving = observeListening(options.channel, () => listening, options.meterProvider);
  return {
    get listening() {
      return listening;
    },
    async close() {
      closed = true;
      listening = false;
      stopObserving();
      stopHeartbeat();
      if (timer !== undefined) clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
