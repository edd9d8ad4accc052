import { listenForNotifications } from '@parley/db';
import type { Logger } from '@parley/platform';
import { DELIVERIES_CHANNEL } from './delivery.store.js';

/** DeliveryListener is a LISTEN connection that wakes a delivery worker when deliveries are queued. */
export interface DeliveryListener {
  close(): Promise<void>;
}

/**
 * listenForDeliveries keeps one connection LISTENing on DELIVERIES_CHANNEL (listenForNotifications:
 * reconnects, keepalive, a heartbeat) and calls `onQueued` for each notification, so a worker on
 * any replica starts an event's delivery within a round trip of its commit rather than at its next
 * poll. Polling stays as the fallback while the connection is down; once it is back, `onQueued`
 * runs at once (deliveries queued while nobody listened are due).
 */
export function listenForDeliveries(options: {
  connectionString: string;
  onQueued: () => void;
  logger?: Logger;
  heartbeatMs?: number;
}): DeliveryListener {
  return listenForNotifications({
    connectionString: options.connectionString,
    channel: DELIVERIES_CHANNEL,
    applicationName: 'parley-integrations-listen',
    onNotification: () => options.onQueued(),
    onListening: () => options.onQueued(),
    lostMessage: 'webhook delivery notifications lost; polling until the LISTEN connection is back',
    logger: options.logger,
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
  });
}
