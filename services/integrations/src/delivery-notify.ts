import type { Logger } from '@parley/platform';
import pg from 'pg';
import { DELIVERIES_CHANNEL } from './delivery.store.js';

/** DeliveryListener is a LISTEN connection that wakes a delivery worker when deliveries are queued. */
export interface DeliveryListener {
  close(): Promise<void>;
}

/**
 * listenForDeliveries keeps one connection LISTENing on DELIVERIES_CHANNEL and calls `onQueued` for
 * each notification, so a worker on any replica starts an event's delivery within a round trip of
 * its commit rather than at its next poll. Polling stays as the fallback: while the connection is
 * down (it reconnects with a growing pause, at most 30 s) deliveries still go out at the poll
 * interval. The connection is idle for hours, so TCP keepalive is on and every heartbeatMs it runs
 * `select 1`: a firewall or NAT that silently dropped it shows as a heartbeat that fails or does
 * not answer within heartbeatMs, and the connection is replaced. The connection string is never
 * logged.
 */
export function listenForDeliveries(options: {
  connectionString: string;
  onQueued: () => void;
  logger?: Logger;
  heartbeatMs?: number;
}): DeliveryListener {
  const heartbeatMs = options.heartbeatMs ?? 30_000;
  let client: pg.Client | undefined;
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
    stopHeartbeat();
    void c.end().catch(() => undefined);
    reconnectLater(reason);
  };

  const reconnectLater = (reason: string) => {
    if (closed || timer !== undefined) return;
    options.logger?.warn({ reason, retry_ms: pauseMs }, 'webhook delivery notifications lost; polling until the LISTEN connection is back');
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
      application_name: 'parley-integrations-listen',
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client = c;
    c.on('notification', () => options.onQueued());
    c.on('error', (err) => replace(c, err.message));
    c.on('end', () => replace(c, 'connection ended'));
    try {
      await c.connect();
      await c.query(`LISTEN ${DELIVERIES_CHANNEL}`);
      pauseMs = 500;
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
      // Deliveries queued while nobody listened are due now.
      options.onQueued();
    } catch (err) {
      client = undefined;
      void c.end().catch(() => undefined);
      reconnectLater(err instanceof Error ? err.message : String(err));
    }
  }

  void connect();
  return {
    async close() {
      closed = true;
      stopHeartbeat();
      if (timer !== undefined) clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
