// The browser-test harness: a real headless Chromium (the build that @sparticuz/chromium ships,
// unpacked into /tmp on first use, so nothing beyond Node is needed) driven by puppeteer-core.
// Tests open pages, record every response the page received, and write screenshots to
// .parley/test-output/screenshots.
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import chromium from '@sparticuz/chromium';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** SCREENSHOT_DIR is where browser tests write their screenshots. */
export const SCREENSHOT_DIR = join(root, '.parley', 'test-output', 'screenshots');

/**
 * Flags of @sparticuz/chromium's serverless defaults that would make the browser laxer than a
 * person's (no same-origin policy, mixed content allowed): a test must see what a user's browser does.
 */
const LAX_FLAGS = new Set(['--disable-web-security', '--allow-running-insecure-content']);

/** BrowserOptions name the TLS servers whose certificates the browser trusts (each must chain to `ca`). */
export interface BrowserOptions {
  /** trust are https:// or wss:// URLs of servers with certificates from a private CA (the dev or test CA). */
  readonly trust?: readonly string[];
  /** ca is that private CA's PEM; each trusted server's certificate is verified against it first. */
  readonly ca?: Buffer | string;
  /** args are extra Chromium flags (e.g. the fake microphone's: see fakeMicrophoneArgs). */
  readonly args?: readonly string[];
}

/**
 * fakeMicrophoneArgs make Chromium grant getUserMedia without a prompt and capture from a WAV
 * file (16-bit PCM) instead of a device, played once (`%noloop`), then silence.
 */
export function fakeMicrophoneArgs(wavPath: string): string[] {
  return ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wavPath}%noloop`];
}

/** ResponseRecord is one response the page received: its URL and body (WebSocket frames included). */
export interface ResponseRecord {
  readonly url: string;
  readonly status: number;
  readonly body: string;
}

/** BrowserPage is a page with every response it received so far. */
export interface BrowserPage {
  readonly page: Page;
  readonly responses: ResponseRecord[];
  /** settled waits until every response body seen so far has been read. */
  settled(): Promise<void>;
  /** screenshot writes a full-page PNG to SCREENSHOT_DIR and returns its path. */
  screenshot(name: string): Promise<string>;
}

/** TestBrowser is a running headless Chromium. */
export interface TestBrowser {
  readonly browser: Browser;
  newPage(): Promise<BrowserPage>;
  close(): Promise<void>;
}

/**
 * spkiPin connects to a TLS server, verifies its certificate against the CA, and returns the
 * base64 SHA-256 of its public key: what Chromium's --ignore-certificate-errors-spki-list takes.
 * The browser then trusts exactly these servers' keys, not any certificate.
 */
async function spkiPin(url: string, ca: Buffer | string): Promise<string> {
  const { hostname, port } = new URL(url);
  const der = await new Promise<Buffer>((resolvePin, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ca, servername: hostname }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.destroy();
      resolvePin(raw);
    });
    socket.once('error', reject);
  });
  const spki = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** launchBrowser starts headless Chromium (about 1 s once unpacked; the first unpack takes ~10 s). */
export async function launchBrowser(options: BrowserOptions = {}): Promise<TestBrowser> {
  const pins = options.trust?.length
    ? await Promise.all(
        options.trust.map((url) => {
          if (options.ca === undefined) throw new Error('launchBrowser: trust needs the CA that signs those servers');
          return spkiPin(url, options.ca);
        }),
      )
    : [];
  const args = chromium.args.filter((a) => !LAX_FLAGS.has(a));
  if (pins.length > 0) args.push(`--ignore-certificate-errors-spki-list=${pins.join(',')}`);
  args.push(...(options.args ?? []));
  const browser = await puppeteer.launch({ executablePath: await chromium.executablePath(), args, headless: true });
  return {
    browser,
    async newPage() {
      const page = await browser.newPage();
      const responses: ResponseRecord[] = [];
      const pending: Promise<void>[] = [];
      page.on('response', (response) => {
        pending.push(
          response.text().then(
            (body) => void responses.push({ url: response.url(), status: response.status(), body }),
            // Redirects and preflights have no body.
            () => void responses.push({ url: response.url(), status: response.status(), body: '' }),
          ),
        );
      });
      // WebSocket frames are not responses in puppeteer: read them from the DevTools protocol.
      const cdp = await page.createCDPSession();
      await cdp.send('Network.enable');
      const sockets = new Map<string, string>();
      cdp.on('Network.webSocketCreated', (e) => void sockets.set(e.requestId, e.url));
      cdp.on('Network.webSocketFrameReceived', (e) => {
        responses.push({ url: sockets.get(e.requestId) ?? 'ws', status: 101, body: e.response.payloadData });
      });
      return {
        page,
        responses,
        settled: async () => {
          await Promise.all(pending);
        },
        async screenshot(name) {
          await mkdir(SCREENSHOT_DIR, { recursive: true });
          const path = join(SCREENSHOT_DIR, `${name}.png`);
          await page.screenshot({ path, fullPage: true });
          return path;
        },
      };
    },
    close: () => browser.close(),
  };
}
