import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import type { Logger } from '@parley/platform';

// The web console (packages/console) is a single-page app bundled by Vite into index.html and
// hashed files under assets/. The edge serves it under /console on the public port, from memory:
// the files are read once at start-up (a few hundred KiB), so a request never touches the disk.

/** CONSOLE_PATH is where the console is served. */
export const CONSOLE_PATH = '/console';

/**
 * CONSOLE_CSP is the console's Content-Security-Policy: scripts, styles and API calls from the
 * edge's own origin only, no inline script or style, no plugins, no framing, no <base> tricks.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** TYPES are the content types of the files Vite writes. */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.map': 'application/json',
};

/** SECURITY_HEADERS go with every console answer. */
const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000',
} as const;

interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** ConsoleAssets serves the console's files. */
export interface ConsoleAssets {
  /** handle answers a request under /console and returns true; false for any other path. */
  handle(req: Req, res: Res): boolean;
}

/** defaultConsoleDir is the built console of the @parley/console package next to the edge. */
export function defaultConsoleDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@parley/console/package.json')), 'dist');
  } catch {
    // An image built without the console: loadConsoleAssets reports it and /console says so.
    return join(dirname(new URL(import.meta.url).pathname), 'console-not-installed');
  }
}

/**
 * loadConsoleAssets reads the built console from `dir`. When it is not built, the edge still
 * starts (the console is optional for the API) and /console says how to build it.
 */
export async function loadConsoleAssets(dir: string, logger: Logger): Promise<ConsoleAssets> {
  const assets = new Map<string, Asset>();
  let index: Buffer | undefined;
  try {
    index = await readFile(join(dir, 'index.html'));
    for (const name of await readdir(join(dir, 'assets'))) {
      const type = TYPES[extname(name)];
      if (type !== undefined) assets.set(name, { body: await readFile(join(dir, 'assets', name)), type });
    }
  } catch (err) {
    logger.warn({ dir, err: err instanceof Error ? err.message : String(err) }, 'web console not built: /console is unavailable');
    index = undefined;
  }
  const answer = (res: Res, status: number, headers: Record<string, string>, body: Buffer | string, head: boolean) => {
    (res as ServerResponse).writeHead(status, { ...SECURITY_HEADERS, 'content-length': String(Buffer.byteLength(body)), ...headers });
    if (head) res.end();
    else res.end(body);
  };
  return {
    handle(req, res) {
      const path = (req.url ?? '').split('?', 1)[0] ?? '';
      if (path !== CONSOLE_PATH && !path.startsWith(`${CONSOLE_PATH}/`)) return false;
      const head = req.method === 'HEAD';
      if (req.method !== 'GET' && !head) {
        answer(res, 405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }, 'the console is read with GET\n', false);
        return true;
      }
      if (index === undefined) {
        answer(
          res,
          503,
          { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
          'the web console is not built: run `pnpm run build` (or set PARLEY_CONSOLE_DIR)\n',
          head,
        );
        return true;
      }
      const assetPrefix = `${CONSOLE_PATH}/assets/`;
      if (path.startsWith(assetPrefix)) {
        const asset = assets.get(path.slice(assetPrefix.length));
        if (asset === undefined) {
          answer(res, 404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, 'no such console file\n', head);
          return true;
        }
        // File names carry a hash of their content: a new build has new names, so these never change.
        answer(res, 200, { 'content-type': asset.type, 'cache-control': 'public, max-age=31536000, immutable' }, asset.body, head);
        return true;
      }
      // Every other path is a page of the app (its router reads the path); the page itself is
      // never cached, so a new deployment's asset names are picked up at once.
      answer(res, 200, { 'content-type': TYPES['.html']!, 'cache-control': 'no-cache' }, index, head);
      return true;
    },
  };
}
