// The web console (packages/console, served by the edge under /console) driven in real headless
// Chromium against a real stack: sign-in through the dev OIDC provider (oidc-provider) with the
// edge's HTTP-only session cookie, an agent created and its guardrail policy set in the form,
// a forbidden sentence refused in the "try it" pane (TestGuardrailPolicy), a secret stored whose
// value appears in no response and nowhere in the page, the audit log's verification badge and an
// event's detail, every other page loading without an error, a screenshot of each page, and a
// cookie-authenticated call without the CSRF header refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { DEV_OIDC_USER } from '@parley/devstack';
import type { Page } from 'puppeteer-core';
import { pollUntil, type PublicStack } from '../edge/fixture.js';
import { scripted, type ConversationStack } from '../orchestrator/fixture.js';
import { rules, startSession } from '../orchestrator/live-conversation.fixture.js';
import { goTo as goToPage, settledWithoutError as settled, startConsole, type ConsoleUnderTest } from './console.fixture.js';
import type { BrowserPage } from './harness.js';

// Functions passed to page.evaluate run in the page; the test program has no DOM library, so the
// little of the DOM they touch is declared here (module scope only).
interface PageElement {
  readonly textContent: string | null;
  readonly tagName: string;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  readonly activeElement: PageElement | null;
  readonly cookie: string;
};
type Valued = { value: string };

let console_: ConsoleUnderTest;
let live: ConversationStack;
let stack: PublicStack;
let conversationId: string;
let edgeUrl: string;
let tab: BrowserPage;
let pageErrors: string[];
let cspViolations: string[];
const run = randomBytes(4).toString('hex');

beforeAll(async () => {
  console_ = await startConsole();
  ({ live, stack, edgeUrl, tab, pageErrors, cspViolations } = console_);
  // One finished conversation with a scripted agent, for the conversations page and its transcript.
  const agent = await live.createAgent({ name: `Scripted ${run}`, providerSettings: scripted(rules) });
  const held = await startSession(live, agent);
  conversationId = held.conversationId;
  held.client.send({ type: 'user_text', text: 'hello' });
  await held.client.reply();
  held.client.send({ type: 'end' });
  await held.client.closed;
  // One whose reply a no-go zone replaces, for the guardrail-decisions chart.
  const guarded = await live.createAgent({
    name: `Guarded ${run}`,
    providerSettings: scripted(rules),
    guardrailPolicy: {
      version: 2,
      noGoZones: [{ id: 'greeting', phrases: ['help you today'], action: 'replace', response: 'Ask me anything.' }],
    },
  });
  const refused = await startSession(live, guarded);
  refused.client.send({ type: 'user_text', text: 'hello' });
  await refused.client.reply();
  refused.client.send({ type: 'end' });
  await refused.client.closed;
}, 240_000);

afterAll(async () => {
  await console_?.stop();
});

/** goTo follows a console navigation link by keyboard and waits for its page's heading (focused). */
const goTo = (_page: Page, label: string, heading = label) => goToPage(console_, label, heading);

/** settledWithoutError waits until the page has loaded its data and shows no error. */
const settledWithoutError = (_page: Page) => settled(console_);

// Each test is many page loads and API round trips: a loaded machine can take minutes where a quiet one takes seconds.
describe('web console in a browser', { timeout: 180_000 }, () => {
  it('is served with a strict CSP, typed and cached assets, and a sign-in page', async () => {
    const { page, responses, settled } = tab;
    // Other files' stacks share the database and add the dev owner to their workspaces: ask for this one.
    const document = await page.goto(`${edgeUrl}/console?workspace=${stack.bootstrap.tenantId}`, { waitUntil: 'networkidle0' });
    expect(document?.status()).toBe(200);
    const headers = document?.headers() ?? {};
    expect(headers['content-type']).toBe('text/html; charset=utf-8');
    expect(headers['cache-control']).toBe('no-cache');
    expect(headers['x-frame-options']).toBe('DENY');
    const csp = headers['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    // No inline script or style in the page itself.
    const html = await page.content();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style[\s>]/);

    await settled();
    const script = responses.find((r) => /\/console\/assets\/index-[\w-]+\.js$/.test(r.url));
    expect(script).toBeDefined();
    const asset = await fetchHead(script!.url);
    expect(asset.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(asset.get('x-content-type-options')).toBe('nosniff');
    const style = responses.find((r) => /\/console\/assets\/index-[\w-]+\.css$/.test(r.url));
    expect((await fetchHead(style!.url)).get('content-type')).toBe('text/css; charset=utf-8');

    await page.waitForSelector('#sign-in');
    expect(await page.$eval('h1', (el) => el.textContent)).toBe('Parley console');
    // The browser enforces it: an inline script injected into the page does not run, and is reported.
    const ran = await page.evaluate(async () => {
      const d = (
        globalThis as unknown as { document: { createElement(t: string): { textContent: string }; body: { append(n: unknown): void } } }
      ).document;
      const w = globalThis as unknown as { inlineRan?: boolean };
      const script = d.createElement('script');
      script.textContent = 'globalThis.inlineRan = true';
      d.body.append(script);
      await new Promise((r) => setTimeout(r, 100));
      return w.inlineRan === true;
    });
    expect(ran).toBe(false);
    await pollUntil(async () => cspViolations.includes('script-src-elem'), 30_000);
    cspViolations.length = 0;
    pageErrors.length = 0;
    await tab.screenshot('console-sign-in');
    expect(pageErrors.filter((e) => !e.includes('401'))).toEqual([]);
  });

  it('signs in through the identity provider; the session cookie is HTTP-only and never reaches page script', async () => {
    const { page } = tab;
    await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
    // The dev provider's own page (its origin), which says it is for development only.
    expect(new URL(page.url()).origin).toBe(console_.provider.issuer);
    expect(await page.content()).toContain('For development only');
    await page.click(`button[value="${DEV_OIDC_USER.sub}"]`);
    await page.waitForSelector('#who', { timeout: 30_000 });
    expect(new URL(page.url()).pathname).toBe('/console');
    expect(await page.$eval('#who', (el) => el.textContent)).toContain(stack.bootstrap.tenantId);
    expect(await page.$eval('#who', (el) => el.textContent)).toContain('owner');

    const session = (await page.cookies()).find((c) => c.name === '__Host-parley_session');
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/' });
    expect(await page.evaluate(() => document.cookie)).not.toContain('parley_session');
    // Nothing the page received, and nothing it stored, holds the session token.
    await tab.settled();
    for (const r of tab.responses) expect(r.body.includes(session!.value), `${r.url} carried the session token`).toBe(false);
    const stored = await page.evaluate(() => {
      const w = globalThis as unknown as { localStorage: { length: number }; sessionStorage: { length: number } };
      return w.localStorage.length + w.sessionStorage.length;
    });
    expect(stored).toBe(0);
    await settledWithoutError(page);
    expect(await page.$('#chart-conversations')).not.toBeNull();
    await tab.screenshot('console-overview');

    // Keyboard: from the page's heading, Tab reaches the decisions chart's per-day table; the skip
    // link comes before the header's first control.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Guardrail decisions per day');
    await page.focus('header.top select, header.top button');
    await page.keyboard.down('Shift');
    await page.keyboard.press('Tab');
    await page.keyboard.up('Shift');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
  });

  it('creates an agent, sets a guardrail policy in the form, and refuses a forbidden sentence in the try-it pane', async () => {
    const { page } = tab;
    await goTo(page, 'Agents');
    const name = `Console agent ${run}`;
    await page.type('#agent-name', name);
    await page.type('#agent-prompt', 'You are a pharmacy assistant.');
    await page.click('form[aria-labelledby="create-agent"] button[type="submit"]');
    await page.waitForFunction((n) => document.querySelector('main h1')?.textContent === n, { timeout: 30_000 }, name);
    const agentId = new URL(page.url()).pathname.split('/').pop()!;
    expect(agentId).toMatch(/^[0-9a-f-]{36}$/);

    await page.click('#add-zone');
    await page.type('.zone-id', 'medical');
    await page.type('.zone-phrases', 'medical advice, dosage');
    await page.type('.zone-response', 'I cannot give medical advice; please ask your pharmacist.');
    await page.click('#policy-save');
    await page.waitForFunction(() => document.querySelector('main .notice')?.textContent?.startsWith('Saved as policy version'), {
      timeout: 30_000,
    });
    // The raw editor shows the same document (reached from the Form tab with the arrow key).
    await page.focus('#tab-form');
    await page.keyboard.press('ArrowRight');
    await page.waitForSelector('#policy-raw');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Raw JSON');
    const raw = JSON.parse(await page.$eval('#policy-raw', (el) => (el as unknown as Valued).value)) as Record<string, unknown>;
    expect(raw).toMatchObject({ version: 2, noGoZones: [{ id: 'medical', phrases: ['medical advice', 'dosage'], action: 'replace' }] });
    await page.click('#tab-form');

    // Stored: the API answers the same policy to an API key.
    const stored = await stack.call('/parley.api.v1.AgentService/GetGuardrailPolicy', { agentId }, stack.bootstrap.apiKey);
    expect(stored.status).toBe(200);
    expect(stored.body['guardrailPolicy']).toMatchObject({ noGoZones: [{ id: 'medical' }] });

    await page.type('#try-text', 'Here is some medical advice: take two.');
    await page.click('#try-run');
    await page.waitForSelector('#try-result');
    expect(await page.$eval('#try-result', (el) => el.getAttribute('data-kind'))).toBe('replace');
    const refusal = await page.$eval('#try-result', (el) => el.textContent);
    expect(refusal).toContain('Refused');
    expect(refusal).toContain('no_go:medical');
    expect(refusal).toContain('I cannot give medical advice; please ask your pharmacist.');
    await tab.screenshot('console-agent-policy');

    await page.$eval('#try-text', (el) => ((el as unknown as Valued).value = ''));
    await page.type('#try-text', 'The shop opens at nine.');
    await page.click('#try-run');
    await page.waitForSelector('#try-result[data-kind="allow"]', { timeout: 30_000 });
    await goTo(page, 'Agents');
    await page.waitForFunction((n) => document.querySelector('main table')?.textContent?.includes(n), { timeout: 30_000 }, name);
    await tab.screenshot('console-agents');
  });

  it('stores a secret whose value is in no response and nowhere in the page', async () => {
    const { page, responses, settled } = tab;
    const value = `sk-console-${randomBytes(18).toString('hex')}`;
    const name = `console-llm-${run}`;
    await goTo(page, 'Secrets');
    await page.type('#secret-name', name);
    await page.type('#secret-value', value);
    await page.click('#secret-put');
    await page.waitForFunction((n) => document.querySelector('#secrets')?.textContent?.includes(n), { timeout: 30_000 }, name);
    // The field was emptied when the value was sent; the table shows metadata and the last four characters only.
    expect(await page.$eval('#secret-value', (el) => (el as unknown as Valued).value)).toBe('');
    expect(await page.$eval('#secrets', (el) => el.textContent)).toContain(`…${value.slice(-4)}`);
    await tab.screenshot('console-secrets');

    // Rotate it: the new value goes the same way, and the version moves on.
    const rotated = `sk-console-${randomBytes(18).toString('hex')}`;
    await page.type('#secrets input[type="password"]', rotated);
    await page.click('#secrets button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('#secrets tbody tr td:nth-child(4)')?.textContent === '2', { timeout: 30_000 });
    expect(await page.$eval('#secrets input[type="password"]', (el) => (el as unknown as Valued).value)).toBe('');

    await page.reload({ waitUntil: 'networkidle0' });
    await page.waitForFunction((n) => document.querySelector('#secrets')?.textContent?.includes(n), { timeout: 30_000 }, name);
    await settled();
    expect(responses.some((r) => r.url.endsWith('/parley.api.v1.SecretService/PutSecret') && r.status === 200)).toBe(true);
    expect(responses.some((r) => r.url.endsWith('/parley.api.v1.SecretService/RotateSecret') && r.status === 200)).toBe(true);
    const html = await page.content();
    const inputs = await page.$$eval('input', (els) => els.map((e) => (e as unknown as Valued).value));
    for (const v of [value, rotated]) {
      for (const r of responses) expect(r.body.includes(v), `${r.url} carried a secret's value`).toBe(false);
      expect(html.includes(v)).toBe(false);
      expect(inputs.some((i) => i.includes(v))).toBe(false);
    }
  });

  it('shows the audit log with a verified chain badge and an event in detail', async () => {
    const { page } = tab;
    await goTo(page, 'Audit log');
    await page.waitForSelector('#chain-badge[data-state="verified"]', { timeout: 30_000 });
    expect(await page.$eval('#chain-badge', (el) => el.textContent)).toMatch(/Chain verified: events \d+–\d+/);
    await page.waitForSelector('#audit-events');
    await page.click('#audit-events .event-detail');
    await page.waitForSelector('#event-detail');
    expect(await page.$eval('#event-detail', (el) => el.textContent)).toMatch(/Hash[0-9a-f]{64}/);
    await tab.screenshot('console-audit');
  });

  it('creates an API key whose secret is shown once', async () => {
    const { page } = tab;
    await goTo(page, 'API keys');
    await settledWithoutError(page);
    await page.type('#key-name', `console key ${run}`);
    await page.click('input[type="checkbox"][value="agents:read"]');
    await page.click('#key-create');
    await page.waitForSelector('#key-secret code', { timeout: 30_000 });
    const secret = await page.$eval('#key-secret code', (el) => el.textContent ?? '');
    expect(secret).toMatch(/^pk_/);
    await tab.screenshot('console-api-keys');
    // The new key works, with the scope it was given.
    expect((await stack.call('/parley.api.v1.AgentService/ListAgents', {}, secret)).status).toBe(200);
    await page.click('#key-secret button');
    expect((await page.content()).includes(secret)).toBe(false);
  });

  it.each([
    ['Members', 'members'],
    ['Webhooks', 'webhooks'],
    ['Privacy', 'privacy'],
    ['Overview', 'overview'],
  ])('opens %s without an error', async (label, shot) => {
    const { page } = tab;
    await goTo(page, label);
    await settledWithoutError(page);
    if (label === 'Members') expect(await page.$eval('#members', (el) => el.textContent)).toContain(DEV_OIDC_USER.email);
    await tab.screenshot(`console-${shot}`);
  });

  it('lists conversations and shows a transcript, and the read is audited under the operator', async () => {
    const { page } = tab;
    await goTo(page, 'Conversations');
    await page.waitForSelector(`a[href="/console/conversations/${conversationId}"]`, { timeout: 30_000 });
    await tab.screenshot('console-conversations');
    await page.click(`a[href="/console/conversations/${conversationId}"]`);
    await page.waitForSelector('#transcript li', { timeout: 30_000 });
    const lines = await page.$$eval('#transcript li', (els) =>
      els.map((e) => [e.querySelector('.role')?.textContent, e.querySelector('.text')?.textContent]),
    );
    expect(lines).toEqual([
      ['user', 'hello'],
      ['assistant', 'Hello there. How can I help you today?'],
    ]);
    await tab.screenshot('console-transcript');
    await pollUntil(async () => {
      const events = await stack.call(
        '/parley.api.v1.AuditService/ListEvents',
        { filter: { action: 'transcript.read', targetId: conversationId, actorKind: 'member' } },
        stack.bootstrap.apiKey,
      );
      return ((events.body['events'] as unknown[] | undefined) ?? []).length > 0;
    }, 30_000);
    // The overview counts it among today's conversations.
    await goTo(page, 'Overview');
    await page.waitForSelector('#chart-conversations svg');
    const label = await page.$eval('#chart-conversations svg', (el) => el.getAttribute('aria-label') ?? '');
    expect(label).toMatch(new RegExp(`${new Date().toISOString().slice(5, 10)} [1-9]`));
    // Guardrail decisions by rule: the no-go zone's replacement and the turn no rule acted on, as
    // an SVG with a label and the per-day table behind a disclosure.
    await page.waitForSelector('#chart-guardrail-decisions svg');
    const decisions = await page.$eval('#chart-guardrail-decisions svg', (el) => el.getAttribute('aria-label') ?? '');
    expect(decisions).toMatch(/^Guardrail decisions by rule \(last 14 days\): /);
    expect(decisions).toMatch(/no_go:greeting [1-9]/);
    expect(decisions).toMatch(/allowed \(no rule\) [1-9]/);
    await page.click('#decisions-by-day summary');
    const rows = await page.$$eval('#decisions-by-day tbody tr', (els) => els.map((e) => e.textContent));
    expect(rows).toContainEqual(expect.stringMatching(new RegExp(`^${new Date().toISOString().slice(0, 10)}no_go:greetingreplace[1-9]`)));
    await tab.screenshot('console-overview-decisions');
  });

  it('refuses a cookie-authenticated call without the CSRF header, and accepts it with the header', async () => {
    const { page } = tab;
    const call = (csrf: string | undefined) =>
      page.evaluate(async (token) => {
        const res = await fetch('/parley.api.v1.AgentService/ListAgents', {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { 'x-parley-csrf': token }) },
          body: '{}',
        });
        return { status: res.status, body: await res.text() };
      }, csrf);
    const refused = await call(undefined);
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('CSRF');
    expect((await call('A'.repeat(43))).status).toBe(403);
    const csrfToken = await page.evaluate(async () => ((await (await fetch('/auth/session')).json()) as { csrfToken: string }).csrfToken);
    expect((await call(csrfToken)).status).toBe(200);
  });

  it('signs out, and no page broke the Content-Security-Policy', async () => {
    const { page } = tab;
    expect(cspViolations).toEqual([]);
    await page.click('#sign-out');
    await page.waitForSelector('#sign-in');
    expect(await page.evaluate(async () => (await fetch('/auth/session')).status)).toBe(401);
    expect(pageErrors.filter((e) => !e.includes('401') && !e.includes('403'))).toEqual([]);
  });
});

/** fetchHead reads a console file's headers as a plain HTTPS client (trusting the stack's CA). */
async function fetchHead(url: string): Promise<Headers> {
  const { Agent, fetch } = await import('undici');
  const dispatcher = new Agent({ connect: { ca: stack.ca } });
  try {
    const res = await fetch(url, { method: 'HEAD', dispatcher });
    expect(res.status).toBe(200);
    return res.headers as unknown as Headers;
  } finally {
    await dispatcher.close();
  }
}
