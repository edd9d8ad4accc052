// The console's operations flows in real headless Chromium against a real stack, each checked
// through the public API too: a member added, their role changed and then removed (and the last
// owner's demotion refused with the API's message); a webhook endpoint created with its signing
// secret shown once, a delivery received and replayed from the delivery log; privacy export and
// forget jobs started from the console with their state followed until done; the deployment
// a secret deleted after a confirmation; an API key created with an expiry that the list shows; the deployment
// administrators' workspaces page (create, add an owner, suspend) and the workspace switcher.
// Screenshots go to .parley/test-output/screenshots.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { DEV_OIDC_USER } from '@parley/devstack';
import { pollUntil } from '../edge/fixture.js';
import { startWebhookReceiver, type WebhookReceiver } from '../integrations/receiver.js';
import { scripted } from '../orchestrator/fixture.js';
import { rules, startSession } from '../orchestrator/live-conversation.fixture.js';
import { goTo, settledWithoutError, signIn, startConsole, type ConsoleUnderTest } from './console.fixture.js';

interface PageElement {
  readonly textContent: string | null;
}
declare const document: { querySelector(selector: string): PageElement | null };
type Valued = { value: string };

let c: ConsoleUnderTest;
let receiver: WebhookReceiver;
let agentId: string;
const dialogs: string[] = [];
const run = randomBytes(4).toString('hex');

/** api calls the public API with the workspace's bootstrap key (the test's view, past the console). */
const api = (path: string, body: unknown) => c.stack.call(`/parley.api.v1.${path}`, body, c.stack.bootstrap.apiKey);

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  // The dev user is in the provider's parley-admins group: a deployment administrator here.
  c = await startConsole({
    integrations: receiver.env,
    edge: { PARLEY_OIDC_SCOPES: 'openid email profile groups', PARLEY_OIDC_ADMIN_GROUPS: 'parley-admins' },
  });
  agentId = await c.live.createAgent({ name: `Scripted ${run}`, providerSettings: scripted(rules) });
  // Confirmation dialogs (remove a member, forget a person, delete a secret) are accepted as a person would.
  c.tab.page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.accept();
  });
  await signIn(c, c.stack.bootstrap.tenantId);
}, 240_000);

afterAll(async () => {
  await c?.stop();
  await receiver?.close();
});

// Each test is many page loads and API round trips: a loaded machine can take minutes where a quiet one takes seconds.
describe('console operations in a browser', { timeout: 180_000 }, () => {
  it('adds a member, changes their role, refuses to demote the last owner, and removes the member', async () => {
    const { page } = c.tab;
    await goTo(c, 'Members');
    await settledWithoutError(c);
    const email = `new-${run}@parley.localhost`;
    await page.type('form[aria-labelledby="add-member"] input[type="email"]', email);
    await page.type('form[aria-labelledby="add-member"] label:nth-of-type(2) input', 'New Person');
    await page.select('form[aria-labelledby="add-member"] select', 'viewer');
    await page.click('form[aria-labelledby="add-member"] button[type="submit"]');
    await page.waitForFunction((e) => document.querySelector('#members')?.textContent?.includes(e), { timeout: 30_000 }, email);
    const memberOf = async () =>
      ((await api('MemberService/ListMembers', {})).body.members as { id: string; email: string; role: string }[]).find(
        (m) => m.email === email,
      );
    expect(await memberOf()).toMatchObject({ role: 'viewer' });

    // The role select of that row (labelled "Role of <e-mail>" for screen readers).
    const row = await page.$$eval('#members tbody tr', (rows, e) => rows.findIndex((r) => r.textContent?.includes(e as string)), email);
    expect(row).toBeGreaterThanOrEqual(0);
    const rowSelect = `#members tbody tr:nth-child(${row + 1}) select`;
    await page.select(rowSelect, 'developer');
    await pollUntil(async () => (await memberOf())?.role === 'developer', 30_000);
    // The list is read again and shows the new role.
    await page.waitForFunction(
      (sel) => (document.querySelector(sel) as unknown as Valued | null)?.value === 'developer',
      { timeout: 30_000 },
      rowSelect,
    );
    await c.tab.screenshot('console-members-role-changed');

    // The signed-in owner is the workspace's only owner: demoting them is refused, with the API's reason shown.
    const mine = await page.$$eval('#members tbody tr', (rows) => rows.findIndex((r) => r.textContent?.includes('(you)')));
    await page.select(`#members tbody tr:nth-child(${mine + 1}) select`, 'viewer');
    await page.waitForSelector('main .error', { timeout: 30_000 });
    expect(await page.$eval('main .error', (el) => el.textContent)).toMatch(/owner/);
    const me = ((await api('MemberService/ListMembers', {})).body.members as { email: string; role: string }[]).find(
      (m) => m.email === DEV_OIDC_USER.email,
    );
    expect(me?.role).toBe('owner');

    // Remove (after the confirmation dialog).
    const again = await page.$$eval('#members tbody tr', (rows, e) => rows.findIndex((r) => r.textContent?.includes(e as string)), email);
    await page.click(`#members tbody tr:nth-child(${again + 1}) button.danger`);
    await page.waitForFunction((e) => !document.querySelector('#members')?.textContent?.includes(e), { timeout: 30_000 }, email);
    expect(await memberOf()).toBeUndefined();
    await c.tab.screenshot('console-members-removed');
  });

  it('creates a webhook endpoint whose secret is shown once, and replays a delivery from its log', async () => {
    const { page } = c.tab;
    await goTo(c, 'Webhooks');
    await settledWithoutError(c);
    const url = receiver.url(`/console-${run}`);
    await page.type('form[aria-labelledby="create-endpoint"] input[type="url"]', url);
    await page.type('form[aria-labelledby="create-endpoint"] label:nth-of-type(2) input', 'conversation.started');
    await page.click('form[aria-labelledby="create-endpoint"] button[type="submit"]');
    await page.waitForSelector('#webhook-secret code', { timeout: 30_000 });
    const secret = await page.$eval('#webhook-secret code', (el) => el.textContent ?? '');
    expect(secret).toMatch(/^whsec_/);
    await page.waitForFunction((u) => document.querySelector('#endpoints')?.textContent?.includes(u), { timeout: 30_000 }, url);
    await c.tab.screenshot('console-webhook-created');
    // Shown once: dismissed, it is gone from the page, and the API never answers it again.
    await page.click('#webhook-secret button');
    expect((await page.content()).includes(secret)).toBe(false);
    const endpoints = (await api('WebhookService/ListWebhookEndpoints', {})).body;
    expect(JSON.stringify(endpoints)).not.toContain(secret);

    // A conversation emits conversation.started: delivered to the receiver, signed.
    const held = await startSession(c.live, agentId);
    held.client.send({ type: 'end' });
    await held.client.closed;
    const ours = () => receiver.received.filter((r) => r.path === `/console-${run}`);
    await pollUntil(async () => ours().length === 1, 20_000);

    // The delivery log shows it delivered; Replay sends it again.
    await page.click(`#endpoints a[href^="/console/webhooks/"]`);
    await page.waitForSelector('#deliveries tr[data-state="delivered"]', { timeout: 30_000 });
    await c.tab.screenshot('console-webhook-deliveries');
    await page.click('#deliveries tr[data-state="delivered"] button');
    await pollUntil(async () => ours().length === 2, 30_000);
    const [first, second] = ours();
    expect(JSON.parse(second!.body)).toEqual(JSON.parse(first!.body));
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    // The log follows: delivered again, with two attempts.
    await pollUntil(async () => {
      await page.reload({ waitUntil: 'networkidle0' });
      return (await page.$eval('#deliveries tbody tr td:nth-child(4)', (el) => el.textContent)) === '2';
    }, 30_000);
    await c.tab.screenshot('console-webhook-replayed');
  });

  it('starts an export and a forget job from the privacy page and shows each until done', async () => {
    const { page } = c.tab;
    // A person with a conversation, known by the customer's reference.
    const subjectRef = `crm-${run}`;
    const held = await startSession(c.live, agentId, { subjectRef });
    held.client.send({ type: 'user_text', text: 'hello' });
    await held.client.reply();
    held.client.send({ type: 'end' });
    await held.client.closed;

    await goTo(c, 'Privacy');
    await settledWithoutError(c);
    const start = async (kind: 'export' | 'forget') => {
      const before = await page.$$eval('#privacy-jobs tbody tr', (rows) => rows.length).catch(() => 0);
      await page.select('form[aria-labelledby="start-job"] label:nth-of-type(1) select', kind);
      await page.select('form[aria-labelledby="start-job"] label:nth-of-type(2) select', 'externalRef');
      await page.type('form[aria-labelledby="start-job"] input', subjectRef);
      await page.click('form[aria-labelledby="start-job"] button[type="submit"]');
      await page.waitForFunction(
        (n) =>
          (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll(
            '#privacy-jobs tbody tr',
          ).length > n,
        { timeout: 30_000 },
        before,
      );
      // The newest job is listed first; the page refreshes it until it is done.
      const id = await page.$eval('#privacy-jobs tbody tr', (el) => el.getAttribute('data-job') ?? '');
      await page.waitForSelector(`#privacy-jobs tr[data-job="${id}"][data-state="done"]`, { timeout: 60_000 });
      const job = (await api('PrivacyService/GetPrivacyJob', { jobId: id })).body.job as { kind: string; state: string };
      expect(job).toMatchObject({ kind, state: 'done' });
      return id;
    };
    await start('export');
    await c.tab.screenshot('console-privacy-export');
    await start('forget');
    expect(await page.$eval('#privacy-jobs tbody tr', (el) => el.textContent)).toMatch(/forget/);
    await c.tab.screenshot('console-privacy-forget');
    // Forgotten: the person's conversations are gone.
    const listed = (await api('ConversationService/ListConversations', { pageSize: 500 })).body.conversations as { id: string }[];
    expect(listed.some((x) => x.id === held.conversationId)).toBe(false);
  });

  it('deletes a secret after a confirmation, and creates an API key with an expiry the list shows', async () => {
    const { page } = c.tab;
    const name = `doomed-secret-${run}`;
    const secretId = await c.live.putSecret(name, `sk-${randomBytes(12).toString('hex')}`);
    await goTo(c, 'Secrets');
    await page.waitForFunction((n) => document.querySelector('#secrets')?.textContent?.includes(n), { timeout: 30_000 }, name);
    const row = await page.$$eval('#secrets tbody tr', (rows, n) => rows.findIndex((r) => r.textContent?.includes(n as string)), name);
    await page.click(`#secrets tbody tr:nth-child(${row + 1}) button.danger`);
    await page.waitForFunction((n) => document.querySelector('main .notice')?.textContent === `Deleted ${n}.`, { timeout: 30_000 }, name);
    expect(dialogs.at(-1)).toContain(`Delete the secret "${name}"`);
    // The list is read again without it.
    await pollUntil(
      async () => !(await page.$$eval('#secrets tbody tr td:first-child', (tds) => tds.map((t) => t.textContent))).includes(name),
      15_000,
    );
    expect((await api('SecretService/GetSecret', { secretId })).status).toBe(404);
    await c.tab.screenshot('console-secret-deleted');

    await goTo(c, 'API keys');
    await settledWithoutError(c);
    const keyName = `expiring key ${run}`;
    await page.type('#key-name', keyName);
    await page.select('#key-expiry', '7');
    await page.click('input[type="checkbox"][value="agents:read"]');
    const before = Date.now();
    await page.click('#key-create');
    await page.waitForSelector('#key-secret code', { timeout: 30_000 });
    const secret = await page.$eval('#key-secret code', (el) => el.textContent ?? '');
    const keys = (await api('ApiKeyService/ListApiKeys', {})).body.apiKeys as { id: string; name: string; expiresAt?: string }[];
    const key = keys.find((k) => k.name === keyName);
    const expires = Date.parse(key?.expiresAt ?? '');
    expect(expires - before).toBeGreaterThan(7 * 86_400_000 - 60_000);
    expect(expires - Date.now()).toBeLessThan(7 * 86_400_000 + 60_000);
    // The list shows it (to the second, UTC), and the key works until then.
    // The list reloads after the create: wait for the new row before reading it.
    await page.waitForSelector(`#api-keys tr[data-key="${key!.id}"] td.expires`, { timeout: 30_000 });
    const shown = await page.$eval(`#api-keys tr[data-key="${key!.id}"] td.expires`, (el) => el.textContent);
    expect(shown).toBe(`${new Date(expires).toISOString().slice(0, 19).replace('T', ' ')}Z`);
    expect((await c.stack.call('/parley.api.v1.AgentService/ListAgents', {}, secret)).status).toBe(200);
    await c.tab.screenshot('console-api-key-expiry');
  });

  it('lets a deployment administrator create a workspace, add an owner and suspend one, and switch to the new workspace', async () => {
    const { page } = c.tab;
    await goTo(c, 'Workspaces');
    await settledWithoutError(c);
    expect(await page.$eval(`#workspaces tr[data-workspace="${c.stack.bootstrap.tenantId}"]`, (el) => el.textContent)).toContain(
      '(this one)',
    );
    const create = async (name: string, owner: string) => {
      await page.type('#workspace-name', name);
      await page.type('#workspace-owner', owner);
      await page.click('#workspace-create');
      await page.waitForFunction(
        (n) => document.querySelector('main .notice')?.textContent?.startsWith(`Created ${n}`),
        { timeout: 30_000 },
        name,
      );
      const notice = await page.$eval('main .notice', (el) => el.textContent ?? '');
      return /\(([0-9a-f-]{36})\)/.exec(notice)?.[1] ?? '';
    };
    const mine = await create(`Console ws ${run}`, DEV_OIDC_USER.email);
    expect(mine).toMatch(/^[0-9a-f-]{36}$/);
    const doomed = await create(`Doomed ws ${run}`, `doomed-${run}@parley.localhost`);
    await page.waitForSelector(`#workspaces tr[data-workspace="${doomed}"]`);

    // A second owner for the new workspace.
    await page.select('#owner-workspace', mine);
    await page.type('#owner-email', `second-${run}@parley.localhost`);
    await page.click('#owner-add');
    await page.waitForFunction(() => document.querySelector('main .notice')?.textContent?.includes('is now an owner'), { timeout: 30_000 });

    // Suspend the other one (after the confirmation dialog).
    await page.click(`#workspaces tr[data-workspace="${doomed}"] button.danger`);
    await page.waitForFunction(
      (id) => document.querySelector(`#workspaces tr[data-workspace="${id}"]`)?.textContent?.includes('suspended'),
      { timeout: 30_000 },
      doomed,
    );
    await c.tab.screenshot('console-workspaces');

    // The switcher (the session is read again on a reload) offers the new workspace, not the suspended one.
    await page.reload({ waitUntil: 'networkidle0' });
    await page.waitForSelector('#workspace-switch');
    const options = await page.$$eval('#workspace-switch option', (els) => els.map((e) => (e as unknown as Valued).value));
    expect(options).toContain(mine);
    expect(options).toContain(c.stack.bootstrap.tenantId);
    expect(options).not.toContain(doomed);
    await page.select('#workspace-switch', mine);
    // Through the identity provider again (its page, or straight back when it remembers the person).
    // Pages change under these checks (a check can meet a page that is navigating away), so each
    // look is taken again until the console names the new workspace; the person is picked once.
    const deadline = Date.now() + 30_000;
    let picked = false;
    for (;;) {
      const at = await page
        .evaluate(
          (sub, id) =>
            document.querySelector(`button[value="${sub}"]`) !== null
              ? 'provider'
              : document.querySelector('#who')?.textContent?.includes(id) === true
                ? 'switched'
                : 'between',
          DEV_OIDC_USER.sub,
          mine,
        )
        .catch(() => 'between');
      if (at === 'switched') break;
      if (at === 'provider' && !picked)
        picked = await page.click(`button[value="${DEV_OIDC_USER.sub}"]`).then(
          () => true,
          () => false,
        );
      if (Date.now() > deadline) throw new Error(`the console did not come back on workspace ${mine} within 30 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.waitForFunction((id) => document.querySelector('#who')?.textContent?.includes(id), { timeout: 30_000 }, mine);
    expect(await page.$eval('#who', (el) => el.textContent)).toContain('owner');
    await c.tab.screenshot('console-workspace-switched');
    // The new workspace's members: the dev user and the owner added above.
    await goTo(c, 'Members');
    await page.waitForFunction(
      (e) => document.querySelector('#members')?.textContent?.includes(e),
      { timeout: 30_000 },
      `second-${run}@parley.localhost`,
    );
  });

  it('broke no Content-Security-Policy and raised no page error', () => {
    expect(c.cspViolations).toEqual([]);
    expect(c.pageErrors.filter((e) => !e.includes('401') && !e.includes('403') && !e.includes('400') && !e.includes('412'))).toEqual([]);
  });
});
