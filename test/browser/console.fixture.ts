// A console under test: the dev OIDC provider (its own PKI), a conversation stack whose edge signs
// operators in through it, and a headless Chromium trusting exactly those two servers, with the
// page's errors and Content-Security-Policy violations collected. Shared by the console's browser
// test files; each starts its own.
import { readFile } from 'node:fs/promises';
import { expect } from 'vitest';
import { DEV_OIDC_USER, type DevOidcProvider } from '@parley/devstack';
import { startEdgeOidcProvider } from '../edge/signin-fixture.js';
import type { PublicStack } from '../edge/fixture.js';
import { startConversationStack, type ConversationStack } from '../orchestrator/fixture.js';
import { launchBrowser, type BrowserPage, type TestBrowser } from './harness.js';

// Functions passed to page.evaluate run in the page; the test program has no DOM library, so the
// little of the DOM they touch is declared here (module scope only).
interface PageElement {
  readonly textContent: string | null;
  readonly tagName: string;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  readonly activeElement: PageElement | null;
};

/** ConsoleUnderTest is a running stack with its console open in a browser tab. */
export interface ConsoleUnderTest {
  readonly live: ConversationStack;
  readonly stack: PublicStack;
  readonly provider: DevOidcProvider;
  readonly browser: TestBrowser;
  readonly tab: BrowserPage;
  /** edgeUrl is the edge's public https origin. */
  readonly edgeUrl: string;
  /** pageErrors are the page's uncaught errors and console errors so far. */
  readonly pageErrors: string[];
  /** cspViolations are the directives any document of the tab violated so far. */
  readonly cspViolations: string[];
  stop(): Promise<void>;
}

/** startConsole starts the provider, the stack (extra environment per service merged in) and the browser. */
export async function startConsole(env: Readonly<Record<string, Record<string, string>>> = {}): Promise<ConsoleUnderTest> {
  const { provider, providerCaFile, edgeUrl, edgeEnv } = await startEdgeOidcProvider([DEV_OIDC_USER], 'parley.localhost');
  const live = await startConversationStack(
    {},
    {
      edge: {
        ...edgeEnv,
        ...env['edge'],
      },
      ...Object.fromEntries(Object.entries(env).filter(([service]) => service !== 'edge')),
    },
  );
  const stack = live.stack;
  // The browser trusts exactly these two servers' keys (each checked against its CA first).
  const providerCa = await readFile(providerCaFile);
  const browser = await launchBrowser({ trust: [edgeUrl, provider.issuer], ca: `${stack.ca.toString()}\n${providerCa.toString()}` });
  const tab = await browser.newPage();
  await tab.page.setViewport({ width: 1280, height: 900 });
  const pageErrors: string[] = [];
  const cspViolations: string[] = [];
  // Any Content-Security-Policy violation (an inline script or style the console relied on) is
  // reported to the test, from every document the tab loads.
  await tab.page.exposeFunction('reportCspViolation', (directive: string) => void cspViolations.push(directive));
  await tab.page.evaluateOnNewDocument(() => {
    const w = globalThis as unknown as {
      reportCspViolation(d: string): void;
      addEventListener(t: string, f: (e: { violatedDirective: string }) => void): void;
    };
    w.addEventListener('securitypolicyviolation', (e) => w.reportCspViolation(e.violatedDirective));
  });
  tab.page.on('pageerror', (err) => pageErrors.push(String(err)));
  tab.page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  return {
    live,
    stack,
    provider,
    browser,
    tab,
    edgeUrl,
    pageErrors,
    cspViolations,
    async stop() {
      await browser.close();
      await live.stop();
      await provider.close();
    },
  };
}

/**
 * signIn opens the console for a workspace (`?workspace=`: other files' stacks share the database
 * and add the dev owner to their workspaces) and signs in as the dev user through the provider.
 */
export async function signIn(c: ConsoleUnderTest, workspaceId: string): Promise<void> {
  const { page } = c.tab;
  await page.goto(`${c.edgeUrl}/console?workspace=${workspaceId}`, { waitUntil: 'networkidle0' });
  await page.waitForSelector('#sign-in');
  await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
  await page.click(`button[value="${DEV_OIDC_USER.sub}"]`);
  await page.waitForSelector('#who', { timeout: 30_000 });
}

/** goTo follows a console navigation link by keyboard (focus, Enter) and waits for its page's heading. */
export async function goTo(c: ConsoleUnderTest, label: string, heading = label): Promise<void> {
  const { page } = c.tab;
  await page.focus(`nav a[href="/console/${label.toLowerCase().replace(/ /g, '-').replace('audit-log', 'audit')}"]`);
  await page.keyboard.press('Enter');
  try {
    await page.waitForFunction((h) => document.querySelector('main h1')?.textContent === h, { timeout: 30_000 }, heading);
  } catch (err) {
    await c.tab.screenshot(`console-failed-${label.replace(/ /g, '-')}`);
    throw new Error(`${label} did not open (page errors: ${c.pageErrors.join(' | ') || 'none'})`, { cause: err });
  }
  // The page's heading takes focus (announced by screen readers).
  expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('H1');
}

/** settledWithoutError waits until the page has loaded its data and shows no error. */
export async function settledWithoutError(c: ConsoleUnderTest): Promise<void> {
  const { page } = c.tab;
  await page.waitForFunction(() => !document.querySelector('main .notice')?.textContent?.startsWith('Loading'), { timeout: 30_000 });
  const alerts = await page.$$eval('main .error', (els) => els.map((e) => e.textContent));
  expect(alerts).toEqual([]);
}
