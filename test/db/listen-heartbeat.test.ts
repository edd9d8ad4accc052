// A LISTEN connection that breaks silently (a NAT or firewall drops it, or a transaction-mode
// pooler never delivers notifications) must not leave a cache serving answers it can no longer
// hear the invalidations of: the listener notifies itself, and when its heartbeat does not come
// back it stops counting as listening (the cache is bypassed and emptied), reconnects, and the
// cache serves again once its own heartbeat is heard on the new connection.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { createNotifiedCache, HEARTBEAT_PREFIX, listenConfigFrom, listenForNotifications } from '@parley/db';
import { ConfigError } from '@parley/platform';
import { afterAll, describe, expect, it } from 'vitest';
import { adminPool, adminUrl } from '../src/pg.js';

/** silencingProxy forwards TCP to Postgres; silenceExisting makes every open connection drop its bytes both ways, without closing. */
async function silencingProxy(target: URL): Promise<{ url: string; silenceExisting(): void; close(): Promise<void> }> {
  const pairs = new Set<{ silent: boolean; client: net.Socket; upstream: net.Socket }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { silent: false, client, upstream };
    pairs.add(pair);
    client.on('data', (b) => (pair.silent ? undefined : upstream.write(b)));
    upstream.on('data', (b) => (pair.silent ? undefined : client.write(b)));
    const end = () => {
      pairs.delete(pair);
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
    close: async () => {
      pairs.forEach((p) => {
        p.client.destroy();
        p.upstream.destroy();
      });
      await new Promise((r) => server.close(r));
    },
  };
}

async function until<T>(read: () => T, done: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = read();
    if (done(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const admin = adminPool(1);
afterAll(() => admin.end());

describe('a LISTEN connection with a self-notifying heartbeat', () => {
  it('bypasses and empties its cache when its own heartbeat stops coming back, then reconnects and caches again', async () => {
    const proxy = await silencingProxy(new URL(adminUrl()));
    const channel = `hb_test_${randomBytes(4).toString('hex')}`;
    const heard: string[] = [];
    const lost: string[] = [];
    let fetches = 0;
    const listener = listenForNotifications({
      connectionString: proxy.url,
      channel,
      applicationName: 'parley-test-listen',
      heartbeatMs: 200,
      heartbeatTimeoutMs: 200,
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
          5_000,
        ),
      ).toBe(false);
      expect(lost.join('\n')).toMatch(/heartbeat/);
      expect(cache.size).toBe(0);
      // Meanwhile every read asks the source, and nothing is kept.
      const before = fetches;
      await read();
      await read();
      expect(fetches).toBe(before + 2);

      // A new connection (through the same proxy, not silenced) hears its heartbeat: caching resumes.
      expect(await until(() => listener.listening, Boolean, 10_000)).toBe(true);
      await read();
      const cached = fetches;
      await read();
      expect(fetches).toBe(cached);
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
