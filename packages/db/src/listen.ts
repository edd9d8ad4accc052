import type { Logger } from '@parley/platform';
import pg from 'pg';

/** NotificationListener is a LISTEN connection on one channel. */
export interface NotificationListener {
  /** listening says whether the connection is up and LISTENing now (notifications may be missed while it is not). */
  readonly listening: boolean;
  close(): Promise<void>;
}

/** ListenOptions say where to listen and what to do with what is heard. */
export interface ListenOptions {
  readonly connectionString: string;
  /** channel is a plain identifier (it is spelled into the LISTEN statement). */
  readonly channel: string;
  /** applicationName shows the connection in pg_stat_activity. */
  readonly applicationName: string;
  /** onNotification gets each notification's payload. */
  readonly onNotification: (payload: string) => void;
  /** onListening runs each time the connection is LISTENing again (what was sent meanwhile was missed). */
  readonly onListening?: () => void;
  /** onLost runs as soon as the connection is known to be gone, before the reconnect is scheduled. */
  readonly onLost?: (reason: string) => void;
  /** lostMessage is the warning logged when the connection is lost (what the service does meanwhile). */
  readonly lostMessage: string;
  readonly logger?: Logger | undefined;
  readonly heartbeatMs?: number;
}

/**
 * listenForNotifications keeps one connection LISTENing on a channel. While the connection is
 * down it reconnects with a growing pause (at most 30 s); onLost and onListening let the caller
 * fall back (poll, drop a cache) meanwhile. The connection may be idle for hours, so TCP
 * keepalive is on and every heartbeatMs it runs `select 1`: a firewall or NAT that silently
 * dropped it shows as a heartbeat that fails or does not answer within heartbeatMs, and the
 * connection is replaced. The connection string is never logged.
 */
export function listenForNotifications(options: ListenOptions): NotificationListener {
  if (!/^[a-z_][a-z0-9_]*$/.test(options.channel)) throw new Error(`channel ${JSON.stringify(options.channel)} is not a plain identifier`);
  const heartbeatMs = options.heartbeatMs ?? 30_000;
  let client: pg.Client | undefined;
  let listening = false;
  let closed = false;
  let pauseMs = 500;
  let timer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  const stopHeartbeat = () => {
    if (heartbeat !== undefined) clearInterval(heartbeat);
    heartbeat = undefined;
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

  async function connect(): Promise<void> {
    if (closed) return;
    const c = new pg.Client({
      connectionString: options.connectionString,
      application_name: options.applicationName,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client = c;
    c.on('notification', (n) => options.onNotification(n.payload ?? ''));
    c.on('error', (err) => replace(c, err.message));
    c.on('end', () => replace(c, 'connection ended'));
    try {
      await c.connect();
      await c.query(`LISTEN ${options.channel}`);
      if (client !== c) return;
      pauseMs = 500;
      listening = true;
      stopHeartbeat();
      let pending = false;
      heartbeat = setInterval(() => {
        if (pending) return replace(c, `no answer to the heartbeat within ${heartbeatMs} ms`);
        pending = true;
        c.query('select 1').then(
          () => {
            pending = false;
          },
          (err: unknown) => replace(c, err instanceof Error ? err.message : String(err)),
        );
      }, heartbeatMs);
      heartbeat.unref();
      options.onListening?.();
    } catch (err) {
      if (client === c) client = undefined;
      listening = false;
      void c.end().catch(() => undefined);
      reconnectLater(err instanceof Error ? err.message : String(err));
    }
  }

  void connect();
  return {
    get listening() {
      return listening;
    },
    async close() {
      closed = true;
      listening = false;
      stopHeartbeat();
      if (timer !== undefined) clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
