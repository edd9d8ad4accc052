// A LISTEN connection that breaks silently (a NAT or firewall drops it, or a transaction-mode
// pooler never delivers notifications) must not leave a cache serving answers it can no longer
// hear the invalidations of: the listener notifies itself, and when its heartbeat does not come
// back it stops counting as listening (the cache is bypassed and emptied), reconnects, and the
// cache serves again once its own heartbeat is heard on the new connection. The gauge
// parley.db.listening (parley_db_listening, the ParleyListenDown alert) follows the same state.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { createNotifiedCache, HEARTBEAT_PREFIX, listenConfigFrom, listenForNotifications } from '@parley/db';
import { ConfigError } from '@parley/platform';
import { parse } from 'pg-protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { localMeterReader } from '../src/metric-reader.js';
import { adminPool, adminUrl } from '../src/pg.js';

/**
 * faultyProxy forwards TCP to Postgres. silenceExisting makes every open connection drop its bytes
 * both ways without closing (a NAT that forgot it); swallowNotifications makes every connection,
 * open or new, forward all of Postgres's messages but its NotificationResponses (as a
 * transaction-mode pooler does: LISTEN succeeds, queries answer, notifications never arrive).
 * Messages are cut with node-postgres's own parser (pg-protocol).
 */
async function faultyProxy(
  target: URL,
): Promise<{ url: string; silenceExisting(): void; swallowNotifications(on: boolean): void; close(): Promise<void> }> {
  const pairs = new Set<{ silent: boolean; client: net.Socket; upstream: net.Socket }>();
  let swallow = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { silent: false, client, upstream };
    pairs.add(pair);
    client.on('data', (b) => (pair.silent ? undefined : upstream.write(b)));
    // Server to client goes through the parser so that whole messages can be left out.
    const fromServer = new PassThrough();
    let pending = Buffer.alloc(0);
    upstream.on('data', (b: Buffer) => {
      if (pair.silent) return;
      pending = Buffer.concat([pending, b]);
      fromServer.write(b);
    });
    void parse(fromServer, (message) => {
      const bytes = pending.subarray(0, 1 + message.length);
      pending = pending.subarray(1 + message.length);
      if (!(swallow && message.name === 'notification')) client.write(bytes);
    });
    const end = () => {
      pairs.delete(pair);
      fromServer.end();
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    silenceExisting: () => pairs.forEach((p) => (p.silent = true)),
    swallowNotifications: (on) => (swallow = on),
    close: async () => {
      pairs.forEach((p) => {
        p.client.destroy();
        p.upstream.destroy();
      });
      await new Promise((r) => server.close(r));
    },
  };
}

async function until<T>(read: () => T, done: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = read();
    if (done(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const admin = adminPool(1);
// A meter provider of this file's own, handed to its listeners.
const meter = localMeterReader();
afterAll(async () => {
  await meter.stop();
  await admin.end();
});

/** listeningGauge reads parley.db.listening (parley_db_listening when scraped) for one channel. */
const listeningGauge = (channel: string) => meter.reader.point('parley.db.listening', 'parley.db.listen_channel', channel);

/** untilGauge polls listeningGauge until it reads `want` (or 20 s pass) and returns the last reading. */
async function untilGauge(channel: string, want: number): Promise<number | undefined> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await listeningGauge(channel);
    if (v === want || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a LISTEN connection with a self-notifying heartbeat', () => {
  it('bypasses and empties its cache when its own heartbeat stops coming back, then reconnects and caches again', async () => {
    const proxy = await faultyProxy(new URL(adminUrl()));
    const channel = `hb_test_${randomBytes(4).toString('hex')}`;
    const heard: string[] = [];
    const lost: string[] = [];
    let fetches = 0;
    const listener = listenForNotifications({
      connectionString: proxy.url,
      channel,
      applicationName: 'parley-test-listen',
      meterProvider: meter.provider,
      // A heartbeat every 2 s, lost after 2 s without it: a healthy connection's round trip on a
      // loaded machine stays well inside (at 200 ms it did not, and caching stopped mid-test).
      heartbeatMs: 2_000,
      heartbeatTimeoutMs: 2_000,
      onNotification: (payload) => {
        heard.push(payload);
        cache.delete(payload);
      },
      onListening: () => cache.clear(),
      onLost: (reason) => {
        lost.push(reason);
        cache.clear();
      },
      lostMessage: 'test notifications lost',
    });
    const cache = createNotifiedCache<number>({ ttlMs: 60_000, maxEntries: 10, listening: () => listener.listening });
    const read = () =>
      cache.get(
        'k',
        () => Promise.resolve((fetches += 1)),
        () => true,
      );
    try {
      expect(await until(() => listener.listening, Boolean)).toBe(true);
      expect(await untilGauge(channel, 1)).toBe(1);
      await read();
      await read();
      expect(fetches).toBe(1);
      // A real notification still drops the entry; heartbeats (this listener's own) are not passed on.
      await admin.query('select pg_notify($1, $2)', [channel, 'k']);
      await until(
        () => heard.length,
        (n) => n > 0,
      );
      await read();
      expect(fetches).toBe(2);
      await new Promise((r) => setTimeout(r, 500));
      expect(heard).toEqual(['k']);
      expect(heard.some((p) => p.startsWith(HEARTBEAT_PREFIX))).toBe(false);

      // The connection goes silent: no error, no close, nothing arrives.
      proxy.silenceExisting();
      expect(
        await until(
          () => listener.listening,
          (l) => !l,
          20_000,
        ),
      ).toBe(false);
      expect(lost.join('\n')).toMatch(/heartbeat/);
      expect(await untilGauge(channel, 0)).toBe(0);
      expect(cache.size).toBe(0);
      // Meanwhile every read asks the source, and nothing is kept.
      const before = fetches;
      await read();
      await read();
      expect(fetches).toBe(before + 2);

      // A new connection (through the same proxy, not silenced) hears its heartbeat: caching resumes.
      expect(await until(() => listener.listening, Boolean, 20_000)).toBe(true);
      expect(await untilGauge(channel, 1)).toBe(1);
      await read();
      const cached = fetches;
      await read();
      expect(fetches).toBe(cached);
    } finally {
      await listener.close();
      await proxy.close();
    }
  });

  it('never counts as listening where LISTEN succeeds but notifications do not arrive (a transaction-mode pooler), and recovers once they do', async () => {
    const proxy = await faultyProxy(new URL(adminUrl()));
    const channel = `hb_test_${randomBytes(4).toString('hex')}`;
    const lost: string[] = [];
    let listened = 0;
    const listener = listenForNotifications({
      connectionString: proxy.url,
      channel,
      applicationName: 'parley-test-listen',
      meterProvider: meter.provider,
      heartbeatMs: 2_000,
      onNotification: () => undefined,
      onListening: () => (listened += 1),
      onLost: (reason) => lost.push(reason),
      lostMessage: 'test notifications lost',
    });
    try {
      expect(await until(() => listener.listening, Boolean)).toBe(true);
      // From now on queries answer but notifications are swallowed: a `select 1` heartbeat would pass.
      proxy.swallowNotifications(true);
      expect(
        await until(
          () => listener.listening,
          (l) => !l,
          20_000,
        ),
      ).toBe(false);
      expect(lost.join('\n')).toMatch(/heartbeat notification was not heard/);
      expect(await untilGauge(channel, 0)).toBe(0);
      // Reconnected connections LISTEN fine, yet they are not trusted while their heartbeat is lost.
      await new Promise((r) => setTimeout(r, 4_500)); // two heartbeat periods: reconnects happen meanwhile
      expect(listener.listening).toBe(false);
      expect(await listeningGauge(channel)).toBe(0);
      expect(listened).toBe(1);
      proxy.swallowNotifications(false);
      expect(await until(() => listener.listening, Boolean, 20_000)).toBe(true);
      expect(await untilGauge(channel, 1)).toBe(1);
      expect(listened).toBe(2);
    } finally {
      await listener.close();
      await proxy.close();
    }
  });

  it('reads PARLEY_LISTEN_DATABASE_URL for the listener (a direct Postgres URL), else the service DATABASE_URL', () => {
    const pooled = 'postgres://parley_secrets:pw@pgbouncer:6432/parley';
    const direct = 'postgres://parley_secrets:pw@postgres:5432/parley';
    expect(listenConfigFrom({}, 'secrets', pooled)).toEqual({ connectionString: pooled, heartbeatMs: 10_000 });
    expect(listenConfigFrom({ PARLEY_LISTEN_DATABASE_URL: direct, PARLEY_LISTEN_HEARTBEAT_MS: '2000' }, 'secrets', pooled)).toEqual({
      connectionString: direct,
      heartbeatMs: 2_000,
    });
    expect(() => listenConfigFrom({ PARLEY_LISTEN_DATABASE_URL: 'mysql://x' }, 'secrets', pooled)).toThrow(ConfigError);
    expect(() => listenConfigFrom({ PARLEY_LISTEN_DATABASE_URL: 'mysql://x' }, 'secrets', pooled)).toThrow(/PARLEY_LISTEN_DATABASE_URL/);
  });
});
