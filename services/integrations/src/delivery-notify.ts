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
 * interval. The connection string is never logged.
 */
export function listenForDeliveries(options: { connectionString: string; onQueued: () => void; logger?: Logger }): DeliveryListener {
  let client: pg.Client | undefined;
  let closed = false;
  let pauseMs = 500;
  let timer: NodeJS.Timeout | undefined;

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
    const c = new pg.Client({ connectionString: options.connectionString, application_name: 'parley-integrations-listen' });
    client = c;
    c.on('notification', () => options.onQueued());
    c.on('error', (err) => reconnectLater(err.message));
    c.on('end', () => {
      if (client === c) reconnectLater('connection ended');
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${DELIVERIES_CHANNEL}`);
      pauseMs = 500;
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
      if (timer !== undefined) clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
