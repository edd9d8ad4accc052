// The browser demo (examples/web-voice) end to end in real headless Chromium: the demo backend
// holds the workspace API key and mints one session token per visitor through the public API;
// the page connects to the session port with it and shows the agent's reply. Nothing the page
// receives (HTML, JS, API responses, WebSocket frames) ever contains the API key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoServer, type DemoServer } from '@parley/example-web-voice';
import { scripted, startConversationStack, type ConversationStack } from '../orchestrator/fixture.js';
import { launchBrowser, type TestBrowser } from './harness.js';

const REPLY = 'We are open from nine to five.';

describe('web-voice demo in a browser', () => {
  let s: ConversationStack;
  let demo: DemoServer;
  let browser: TestBrowser;
  let agentId: string;

  beforeAll(async () => {
    s = await startConversationStack();
    agentId = await s.createAgent({ prompt: 'You are a shop assistant.', providerSettings: scripted([{ match: 'hours', reply: REPLY }]) });
    demo = await startDemoServer({
      port: 0,
      origin: undefined,
      apiUrl: s.stack.publicUrl,
      sessionUrl: s.sessionUrl,
      apiKey: s.stack.bootstrap.apiKey,
      agentId,
      ca: s.stack.ca,
      ttlSeconds: 60,
    });
    // The browser trusts the session port's certificate (checked against the test CA first), nothing else.
    browser = await launchBrowser({ trust: [s.sessionUrl], ca: s.stack.ca });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
    await s?.stop();
  });

  it('holds a text conversation with a token minted by the backend, and the page never sees the API key', async () => {
    const apiKey = s.stack.bootstrap.apiKey;
    const { page, responses, settled, screenshot } = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });

    const document = await page.goto(demo.url, { waitUntil: 'load' });
    expect(document?.status()).toBe(200);
    const csp = document?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');

    await page.click('#connect');
    await page.waitForSelector('#composer:not([hidden])', { timeout: 15_000 });
    expect(await page.$eval('#status', (el) => el.textContent)).toMatch(/^Connected: conversation /);

    await page.type('#message', 'What are your opening hours?');
    await page.click('#composer button[type="submit"]');
    await page.waitForSelector('#transcript li.agent[data-final="true"]', { timeout: 15_000 });
    expect(await page.$eval('#transcript li.agent', (el) => el.textContent)).toBe(REPLY);
    expect(await page.$eval('#transcript li.user', (el) => el.textContent)).toBe('What are your opening hours?');
    await screenshot('web-voice-demo');

    await settled();
    const html = await page.content();
    const seen = responses.map((r) => r.url);
    // The page loaded its script as a file, got a token from its backend and talked over the session port.
    expect(seen).toContain(`${demo.url}app.js`);
    expect(seen).toContain(`${demo.url}session`);
    expect(seen).toContain(s.sessionUrl);
    expect(responses.some((r) => r.url === s.sessionUrl && r.body.includes('"type":"ready"'))).toBe(true);
    for (const r of responses) expect(r.body.includes(apiKey), `${r.url} carried the API key`).toBe(false);
    expect(html.includes(apiKey)).toBe(false);
    expect(pageErrors).toEqual([]);

    // The token the page received was spent by its connection: reusing it is refused.
    const session = responses.find((r) => r.url === `${demo.url}session`);
    const { token } = JSON.parse(session?.body ?? '{}') as { token: string };
    expect(token.split('.')).toHaveLength(3);
    const replay = await s.connect({ origin: new URL(demo.url).origin });
    replay.send({ type: 'start', token });
    expect((await replay.closed).code).toBe(4401);
  });

  it('mints tokens only for its own page', async () => {
    const res = await fetch(`${demo.url}session`, { method: 'POST', headers: { origin: 'https://evil.example' }, body: '{}' });
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain(s.stack.bootstrap.apiKey);
  });
});
