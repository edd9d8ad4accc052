import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@parley/platform';
import { afterEach, describe, expect, it } from 'vitest';
import { CONSOLE_CSP, defaultConsoleDir, loadConsoleAssets } from './console-assets.js';

const lines: string[] = [];
const logger = createLogger({
  service: 'edge',
  version: 'test',
  level: 'info',
  destination: new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  }),
});
let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

/** serve answers with the console assets of `dir`, and 418 for anything they do not handle. */
async function serve(dir: string): Promise<string> {
  const assets = await loadConsoleAssets(dir, logger);
  server = createServer((req, res) => {
    if (!assets.handle(req, res)) res.writeHead(418).end();
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

async function built(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-console-assets-'));
  await mkdir(join(dir, 'assets'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><script type="module" src="/console/assets/index-abc.js"></script>');
  await writeFile(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
  await writeFile(join(dir, 'assets', 'index-abc.css'), 'body{}');
  await writeFile(join(dir, 'assets', 'notes.txt'), 'not a console file type');
  return dir;
}

describe('console assets', () => {
  it('serves the page for every app path (never cached) and hashed files with their type (cached for a year)', async () => {
    const url = await serve(await built());
    for (const path of ['/console', '/console/', '/console/agents/123?x=1']) {
      const page = await fetch(`${url}${path}`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(page.headers.get('cache-control')).toBe('no-cache');
      expect(page.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(await page.text()).toContain('index-abc.js');
    }
    const js = await fetch(`${url}/console/assets/index-abc.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(js.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await js.text()).toBe('console.log(1)');
    expect((await fetch(`${url}/console/assets/index-abc.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    const head = await fetch(`${url}/console/assets/index-abc.css`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('6');
    expect(await head.text()).toBe('');
    expect(CONSOLE_CSP).not.toContain('unsafe-inline');
  });

  it('answers 404 for a file it does not have, 405 for other methods, and leaves other paths alone', async () => {
    const url = await serve(await built());
    expect((await fetch(`${url}/console/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${url}/console/assets/notes.txt`)).status).toBe(404);
    // Only the files read at start-up exist: no path reaches the disk.
    expect((await fetch(`${url}/console/assets/..%2Findex.html`)).status).toBe(404);
    const post = await fetch(`${url}/console`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await fetch(`${url}/consoles`)).status).toBe(418);
    expect((await fetch(`${url}/parley.api.v1.AgentService/ListAgents`)).status).toBe(418);
  });

  it('answers 503 saying how to build it when the console is not built, and logs it once', async () => {
    lines.length = 0;
    const url = await serve(join(tmpdir(), 'parley-no-console-here'));
    const res = await fetch(`${url}/console/agents`);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('pnpm run build');
    expect(lines.filter((l) => l.includes('web console not built'))).toHaveLength(1);
  });

  it('finds the built console of the workspace package by default', () => {
    expect(defaultConsoleDir()).toMatch(/packages\/console\/dist$/);
  });
});
