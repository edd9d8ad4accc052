// A STAND-IN for HashiCorp Vault, for tests only: no Vault binary can run where Parley's tests
// run, so this node:http server answers the part of Vault's HTTP API that Parley uses, in
// Vault's documented wire format, closely enough for the real node-vault client. It is not
// Vault and not a security boundary. See test/vault-standin/README.md. This file routes HTTP
// requests and holds the test controls; the transit engine, the tokens and auth methods, and
// the wire format live in ./vault-standin/.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { VaultStandin, VaultStandinMode, VaultStandinOptions } from './vault-standin/options.js';
import type { Route, TokenEntry } from './vault-standin/route.js';
import { authRoute, createTokenStore, loginPaths } from './vault-standin/tokens.js';
import { newTransitKey, transitRoute, type TransitKey } from './vault-standin/transit.js';
import { ACL_DENIED, healthBody, readBody, requireMethod, send, VaultHttpError } from './vault-standin/wire.js';

export type {
  VaultStandin,
  VaultStandinMode,
  VaultStandinOptions,
  VaultStandinPolicyRule,
  VaultStandinToken,
} from './vault-standin/options.js';

/** startVaultStandin starts a Vault stand-in on 127.0.0.1 with an OS-chosen port. */
export async function startVaultStandin(options: VaultStandinOptions = {}): Promise<VaultStandin> {
  const store = createTokenStore(options);
  const transitMount = (options.transitMount ?? 'transit').replace(/^\/+|\/+$/g, '');
  const keys = new Map<string, TransitKey>();
  const counts = new Map<string, number>();
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let mode: VaultStandinMode = 'up';
  for (const name of options.keys ?? ['parley-secrets']) keys.set(name, newTransitKey());

  function route(method: string, path: string): Route {
    if (path === 'sys/health') {
      requireMethod(method, 'read');
      return { capability: 'read', unauthenticated: true, handler: () => [200, healthBody(false)] };
    }
    const auth = authRoute(method, path, store, options);
    if (auth !== undefined) return auth;
    const prefix = `${transitMount}/`;
    if (!path.startsWith(prefix)) throw new VaultHttpError(404, [`no handler for route "${path}". route entry not found.`], true);
    return transitRoute(method, path.slice(prefix.length), keys);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://standin');
    const method = (req.method ?? 'GET').toUpperCase();
    const apiPath = url.pathname.startsWith('/v1/') ? url.pathname.slice(4).replace(/\/+$/, '') : undefined;
    counts.set(apiPath ?? url.pathname, (counts.get(apiPath ?? url.pathname) ?? 0) + 1);
    const raw = await readBody(req);

    if (mode === 'down') {
      req.socket.destroy();
      return;
    }
    if (mode === 'hang') {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    try {
      if (apiPath === undefined) throw new VaultHttpError(404, ['not found']);
      if (mode === 'sealed') {
        if (apiPath === 'sys/health') return send(res, 503, healthBody(true));
        throw new VaultHttpError(503, ['Vault is sealed']);
      }
      let body: Record<string, unknown> = {};
      if (raw.length > 0) {
        try {
          const parsed: unknown = JSON.parse(raw.toString('utf8'));
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
          body = parsed as Record<string, unknown>;
        } catch (err) {
          throw new VaultHttpError(400, [`failed to parse JSON input: ${(err as Error).message}`]);
        }
      }
      const token = (): [string, TokenEntry] => store.liveToken(req.headers['x-vault-token']);
      // Like Vault, a request without a valid token is refused before routing, except on login and health paths.
      const unauthenticatedPaths = ['sys/health', ...loginPaths(options)];
      if (!unauthenticatedPaths.includes(apiPath)) token();
      let found: ReturnType<typeof route>;
      try {
        found = route(method, apiPath);
      } catch (err) {
        // Vault checks the token's policies before it looks for a mount: only root learns there is none.
        if (err instanceof VaultHttpError && err.noRoute && !token()[1].policies.includes('root'))
          throw new VaultHttpError(403, [ACL_DENIED]);
        throw err;
      }
      if (found.unauthenticated !== true) store.authorize(token()[1], apiPath, found.capability);
      const [status, payload] = found.handler({ method, body, token, path: apiPath });
      send(res, status, payload);
    } catch (err) {
      if (err instanceof VaultHttpError) return send(res, err.status, { errors: err.errors });
      send(res, 500, { errors: ['internal error'] });
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  server.on('connection', (socket) => {
    if (mode === 'down') {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const dropConnections = (): void => {
    for (const res of hanging) res.destroy();
    hanging.clear();
    for (const socket of sockets) socket.destroy();
  };

  return {
    address: `http://127.0.0.1:${port}`,
    rootToken: store.rootToken,
    setMode(next) {
      // Going down drops every open connection; leaving hang releases the requests it held.
      if (next === 'down') dropConnections();
      if (mode === 'hang' && next !== 'hang') {
        for (const res of hanging) res.destroy();
        hanging.clear();
      }
      mode = next;
    },
    callCount: (path) => counts.get(path.replace(/^\/?(v1\/)?/, '')) ?? 0,
    callCounts: () => new Map(counts),
    resetCallCounts: () => counts.clear(),
    expireTokens() {
      for (const entry of store.tokens.values()) if (!entry.policies.includes('root')) entry.expiresAt = Date.now() - 1;
    },
    refuseRenewals(on) {
      store.renewalsRefused = on;
    },
    issueToken: (spec) =>
      store.issue(spec.policies, spec.ttlSeconds, 'auth/token/create', spec.renewable ?? true, {
        periodSeconds: spec.periodSeconds,
        maxTtlSeconds: spec.maxTtlSeconds,
      }),
    liveTokenCount: () => [...store.tokens.values()].filter((t) => t.expiresAt === undefined || t.expiresAt > Date.now()).length,
    keyVersions(name) {
      const key = keys.get(name);
      return key === undefined ? undefined : { latestVersion: key.latestVersion, minDecryptionVersion: key.minDecryptionVersion };
    },
    async close() {
      dropConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
