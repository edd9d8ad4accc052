import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createParleyNodeClient } from '@parley/client/node';
import type { DemoConfig } from './config.js';

const publicDir = fileURLToPath(new URL('../public/', import.meta.url));
/**
 * sdkDir holds the browser SDK's built ESM (@parley/client-web's dist), served as-is under /sdk/.
 * Found through its package.json: under the @parley/source condition (tests) the package's main
 * entry resolves to its TypeScript source, which a browser cannot load.
 */
const sdkDir = join(dirname(createRequire(import.meta.url).resolve('@parley/client-web/package.json')), 'dist');
/** SDK_FILE is what /sdk/ serves: the SDK's modules by name, nothing else of the file system. */
const SDK_FILE = /^\/sdk\/([a-z-]+\.js)$/;

/** STATIC_FILES are the page's files: no inline script anywhere, so the CSP can forbid it. */
const STATIC_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

/** DemoServer is the running demo backend. */
export interface DemoServer {
  readonly server: Server;
  /** url is where the page is (the origin session tokens are bound to). */
  readonly url: string;
  close(): Promise<void>;
}

/** contentSecurityPolicy allows the page's own files and the session port, and no inline script. */
export function contentSecurityPolicy(sessionUrl: string): string {
  const session = new URL(sessionUrl);
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self' ${session.protocol}//${session.host}`,
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

/**
 * startDemoServer serves the page and POST /session, which mints a single-use, short-lived
 * session token for the visitor through the public API (SessionService.CreateSession). The
 * API key stays in this process: the page receives the token, the session URL and the agent id.
 * A real backend would first check its own user's sign-in; the demo checks only that the call
 * comes from its own page (Origin), so other sites cannot mint tokens with it.
 */
export async function startDemoServer(config: DemoConfig, log: (line: string) => void = () => {}): Promise<DemoServer> {
  const api = createParleyNodeClient({
    baseUrl: config.apiUrl,
    apiKey: config.apiKey,
    ...(config.ca === undefined ? {} : { ca: config.ca }),
    timeoutMs: 10_000,
    userAgent: 'parley-example-web-voice/0.1.0',
  });
  let origin = config.origin ?? '';
  const csp = contentSecurityPolicy(config.sessionUrl);
  const common = {
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  };

  async function mintSession(req: IncomingMessage, res: ServerResponse) {
    if (req.headers.origin !== origin) {
      send(
        res,
        403,
        'application/json',
        JSON.stringify({ error: `session tokens are minted only for this demo's page (${origin})` }),
        common,
      );
      return;
    }
    try {
      const created = await api.sessions.createSession({ agentId: config.agentId, origin, ttlSeconds: config.ttlSeconds });
      log(`minted session ${created.sessionId} for a visitor`);
      const body = JSON.stringify({ token: created.token, sessionUrl: config.sessionUrl, agentId: config.agentId });
      send(res, 200, 'application/json', body, common);
    } catch (err) {
      // The visitor learns only that it failed; the reason (which may name the key's problem) stays in the backend's log.
      log(`CreateSession failed: ${(err as Error).message}`);
      send(res, 502, 'application/json', JSON.stringify({ error: 'could not start a session; see the demo backend log' }), common);
    }
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://demo').pathname;
    if (path === '/session') {
      if (req.method !== 'POST') {
        send(res, 405, 'text/plain; charset=utf-8', 'use POST\n', { ...common, allow: 'POST' });
        return;
      }
      req.resume();
      void mintSession(req, res);
      return;
    }
    const sdk = SDK_FILE.exec(path);
    const page = STATIC_FILES[path];
    const file =
      sdk?.[1] !== undefined
        ? { path: `${sdkDir}/${sdk[1]}`, type: 'text/javascript; charset=utf-8' }
        : page && { path: `${publicDir}${page.file}`, type: page.type };
    if (file === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
      send(res, 404, 'text/plain; charset=utf-8', 'not found\n', common);
      return;
    }
    readFile(file.path).then(
      (bytes) => send(res, 200, file.type, bytes, common),
      (err: Error) => {
        // Any lower-case name matches /sdk/; only the SDK's own modules exist.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && sdk !== null) {
          send(res, 404, 'text/plain; charset=utf-8', 'not found\n', common);
          return;
        }
        log(`cannot read ${file.path}: ${err.message}`);
        send(res, 500, 'text/plain; charset=utf-8', 'internal error\n', common);
      },
    );
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(config.port, 'localhost', () => resolveListen());
  });
  const port = (server.address() as AddressInfo).port;
  if (origin === '') origin = `http://localhost:${port}`;
  return {
    server,
    url: `http://localhost:${port}/`,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}
