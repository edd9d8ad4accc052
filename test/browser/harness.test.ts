// The browser harness trusts exactly the servers a test names (pinned keys, each certificate
// first checked against the test CA), not every certificate, and writes screenshots.
import { readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../src/pki.js';
import { launchBrowser, SCREENSHOT_DIR, type TestBrowser } from './harness.js';

async function serve(files: { certFile: string; keyFile: string }, text: string): Promise<{ server: Server; url: string }> {
  const server = createServer({ cert: await readFile(files.certFile), key: await readFile(files.keyFile) }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<h1>${text}</h1>`);
  });
  await new Promise<void>((resolveListen) => server.listen(0, 'localhost', () => resolveListen()));
  return { server, url: `https://localhost:${(server.address() as AddressInfo).port}/` };
}

describe('browser harness', () => {
  let pki: TestPki;
  let trusted: { server: Server; url: string };
  let other: { server: Server; url: string };
  let browser: TestBrowser;

  beforeAll(async () => {
    pki = await createTestPki();
    trusted = await serve(pki.files('edge'), 'trusted');
    other = await serve(pki.files('identity'), 'other');
    browser = await launchBrowser({ trust: [trusted.url], ca: await readFile(pki.paths.caCert) });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    trusted?.server.close();
    other?.server.close();
  });

  it('opens a pinned server, refuses another one from the same CA, and writes a screenshot', async () => {
    const { page, responses, settled, screenshot } = await browser.newPage();
    expect((await page.goto(trusted.url))?.status()).toBe(200);
    expect(await page.$eval('h1', (el) => el.textContent)).toBe('trusted');
    await settled();
    expect(responses.find((r) => r.url === trusted.url)?.body).toContain('<h1>trusted</h1>');
    const path = await screenshot('harness-trusted');
    expect(path).toBe(`${SCREENSHOT_DIR}/harness-trusted.png`);
    expect((await stat(path)).size).toBeGreaterThan(0);
    await expect(page.goto(other.url)).rejects.toThrow(/ERR_CERT_AUTHORITY_INVALID/);
  });

  it('will not pin a server whose certificate is not from the CA', async () => {
    const foreign = await serve(await pki.foreign('edge'), 'foreign');
    try {
      await expect(launchBrowser({ trust: [foreign.url], ca: await readFile(pki.paths.caCert) })).rejects.toThrow(/certificate/i);
    } finally {
      foreign.server.close();
    }
  });
});
