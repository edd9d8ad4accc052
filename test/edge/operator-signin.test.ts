// Operator sign-in through OpenID Connect, driven over HTTP like a browser would (redirects
// followed with a cookie jar): the edge (openid-client, PKCE) against the dev stack's embedded
// provider (oidc-provider), identity holding the sessions. Console cookies and their CSRF token,
// the CLI's loopback-redirect flow with its own PKCE and refresh, and every refusal the issue lists.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { type Agent, fetch as undiciFetch } from 'undici';
import { DEV_OIDC_USER, type DevOidcUser } from '@parley/devstack';
import { adminPool } from '../src/pg.js';
import { type PublicStack } from './fixture.js';
import {
  browser as fixtureBrowser,
  confirmCli as fixtureConfirmCli,
  signIn as fixtureSignIn,
  startSignInStack,
  type Browser,
  type SignInStack,
} from './signin-fixture.js';

let stack: PublicStack;
let signInStack: SignInStack;
let edgeUrl: string;
let dispatcher: Agent;
const run = randomBytes(4).toString('hex');
const users = {
  owner: DEV_OIDC_USER,
  admin: { sub: `admin-${run}`, email: `admin-${run}@example.com`, emailVerified: true, name: 'Ada Admin' },
  unverified: { sub: `unverified-${run}`, email: `unverified-${run}@example.com`, emailVerified: false, name: 'Una Verified' },
  unknown: { sub: `unknown-${run}`, email: `nobody-${run}@example.com`, emailVerified: true, name: 'No Body' },
  otherDomain: { sub: `other-${run}`, email: `eve-${run}@elsewhere.test`, emailVerified: true, name: 'Eve Elsewhere' },
  // A deployment administrator by group claim, member of no workspace; and the owner they appoint.
  deployAdmin: { sub: `ops-${run}`, email: `ops-${run}@example.com`, emailVerified: true, name: 'Ops Admin', groups: ['parley-ops'] },
  newOwner: { sub: `new-owner-${run}`, email: `new-owner-${run}@example.com`, emailVerified: true, name: 'New Owner' },
} satisfies Record<string, DevOidcUser>;

beforeAll(async () => {
  signInStack = await startSignInStack(Object.values(users));
  ({ stack, edgeUrl, dispatcher } = signInStack);
  // Members: an admin of the bootstrap workspace, and the unverified and other-domain people too,
  // so that only their e-mail's state or domain can be why they are refused.
  for (const u of [users.admin, users.unverified, users.otherDomain]) {
    const added = await stack.call(
      '/parley.api.v1.MemberService/AddMember',
      { email: u.email, displayName: u.name, role: 'admin' },
      stack.bootstrap.apiKey,
    );
    expect(added.status).toBe(200);
  }
}, 180_000);

afterAll(async () => {
  await signInStack?.stop();
});

/** browser is a cookie-keeping fetch that trusts the test CAs (the shared sign-in fixture's). */
const browser = (): Browser => fixtureBrowser(dispatcher);

/** signIn walks the whole flow from `start` to the provider's page, picks `user`, and returns the last answer. */
const signIn = (b: Browser, start: string, user: DevOidcUser) => fixtureSignIn(b, edgeUrl, start, user);

/** confirmCli answers the CLI sign-in confirmation page the way its form would. */
const confirmCli = (b: Browser, page: Response, decision: 'continue' | 'cancel', redirect?: 'follow' | 'manual') =>
  fixtureConfirmCli(b, edgeUrl, page, decision, redirect);

async function connect(b: ReturnType<typeof browser>, path: string, headers: Record<string, string> = {}) {
  const res = await b.fetch(`${edgeUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{}',
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('console sign-in', () => {
  it('signs an admin in with a Secure, HTTP-only, SameSite session cookie; calls need its CSRF token', async () => {
    const b = browser();
    const last = await signIn(b, `${edgeUrl}/auth/login?return_to=/console`, users.admin);
    // Back at the edge, at the page asked for (the console itself is another part of the issue).
    expect(new URL(last.url).pathname).toBe('/console');
    const cookies = await b.jar.getCookies(edgeUrl);
    const session = cookies.find((c) => c.key === '__Host-parley_session');
    expect(session).toBeDefined();
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'lax', path: '/' });
    expect(session!.value).toMatch(/^po_/);
    expect(cookies.find((c) => c.key === '__Host-parley_login')).toBeUndefined();

    const who = await b.fetch(`${edgeUrl}/auth/session`);
    expect(who.status).toBe(200);
    const me = (await who.json()) as { workspaceId: string; member: { email: string; role: string }; scopes: string[]; csrfToken: string };
    expect(me).toMatchObject({ workspaceId: stack.bootstrap.tenantId, member: { email: users.admin.email, role: 'admin' } });
    expect(me.scopes).toContain('agents:write');

    const ok = await connect(b, '/parley.api.v1.AccountService/WhoAmI', { 'x-parley-csrf': me.csrfToken });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ tenantId: stack.bootstrap.tenantId, principalKind: 'member' });
    const listed = await connect(b, '/parley.api.v1.AgentService/ListAgents', { 'x-parley-csrf': me.csrfToken });
    expect(listed.status).toBe(200);

    // The cookie alone (what a forged cross-site request carries) is refused, as is a wrong token.
    const noCsrf = await connect(b, '/parley.api.v1.AgentService/ListAgents');
    expect(noCsrf.status).toBe(403);
    expect(String(noCsrf.body['message'])).toContain('CSRF');
    const wrongCsrf = await connect(b, '/parley.api.v1.AgentService/ListAgents', { 'x-parley-csrf': 'A'.repeat(43) });
    expect(wrongCsrf.status).toBe(403);

    // Sign-out needs the CSRF token too, then the session is over everywhere.
    expect((await b.fetch(`${edgeUrl}/auth/logout`, { method: 'POST' })).status).toBe(403);
    expect((await b.fetch(`${edgeUrl}/auth/logout`, { method: 'POST', headers: { 'x-parley-csrf': me.csrfToken } })).status).toBe(200);
    expect((await b.fetch(`${edgeUrl}/auth/session`)).status).toBe(401);
    const after = await fetchWithCookie(session!.value, me.csrfToken);
    expect(after).toBe(401);
  });

  it('signs the dev user in as the owner of the workspace asked for', async () => {
    const b = browser();
    await signIn(b, `${edgeUrl}/auth/login?workspace=${stack.bootstrap.tenantId}`, users.owner);
    const me = (await (await b.fetch(`${edgeUrl}/auth/session`)).json()) as { workspaceId: string; member: { role: string } };
    expect(me).toMatchObject({ workspaceId: stack.bootstrap.tenantId, member: { role: 'owner' } });
  });

  it.each([
    ['an unverified e-mail', users.unverified, 'is not verified'],
    ['an unknown user', users.unknown, 'no Parley workspace has a member'],
    ['an e-mail domain that is not allowed', users.otherDomain, 'may not sign in to this deployment'],
  ])('refuses %s, with no session', async (_what, user, message) => {
    const b = browser();
    const last = await signIn(b, `${edgeUrl}/auth/login`, user);
    expect(last.status).toBe(403);
    expect(((await last.json()) as { error: string }).error).toContain(message);
    expect((await b.jar.getCookies(edgeUrl)).find((c) => c.key === '__Host-parley_session')).toBeUndefined();
  });

  it('refuses a callback that does not belong to a sign-in started in this browser', async () => {
    const b = browser();
    const res = await b.fetch(`${edgeUrl}/auth/callback?code=abc&state=def`);
    expect(res.status).toBe(400);
    // A sign-in started in one browser cannot be finished in another (state and PKCE are in the first's cookie).
    const first = browser();
    const start = await first.fetch(`${edgeUrl}/auth/login`, { redirect: 'manual' });
    expect(start.status).toBe(302);
    const state = new URL(start.headers.get('location')!).searchParams.get('state');
    const stolen = await browser().fetch(`${edgeUrl}/auth/callback?code=abc&state=${state}`);
    expect(stolen.status).toBe(400);
    // An error answer ends a sign-in only with its own state, and repeats only an error code.
    const crafted = await first.fetch(`${edgeUrl}/auth/callback?error=access_denied&state=not-this-one`);
    expect(crafted.status).toBe(400);
    const refused = await first.fetch(`${edgeUrl}/auth/callback?error=${encodeURIComponent('x\u001b[2J call +1 555')}&state=${state}`);
    expect(refused.status).toBe(403);
    const text = await refused.text();
    expect(text).toContain('the identity provider refused the sign-in: invalid');
    expect(text).not.toContain('555');
  });

  it('refuses a return_to that leaves the edge', async () => {
    // Browsers drop tab and newline from a Location and read "\\" as "/": each of these would land on evil.example.
    const hostile = [
      '//evil.example/',
      '/\t/evil.example',
      '/\n/evil.example',
      '/\r\n/evil.example',
      '/\\evil.example',
      '/\\/evil.example',
      '\\\\evil.example',
      'https://evil.example/',
      '///evil.example',
    ];
    for (const returnTo of hostile) {
      const q = new URLSearchParams({ return_to: returnTo });
      const res = await browser().fetch(`${edgeUrl}/auth/login?${q.toString()}`, { redirect: 'manual' });
      expect(res.status, JSON.stringify(returnTo)).toBe(400);
    }
    // The encoded forms as a link would carry them (%09 tab, %0A newline, %5C backslash, %2F slash).
    for (const raw of ['/%09/evil.example', '/%0A/evil.example', '/%5Cevil.example', '/%5C/evil.example', '%2F%2Fevil.example']) {
      const res = await browser().fetch(`${edgeUrl}/auth/login?return_to=${raw}`, { redirect: 'manual' });
      expect(res.status, raw).toBe(400);
    }
    // A path on the edge, query and all, is still accepted.
    const ok = await browser().fetch(`${edgeUrl}/auth/login?return_to=${encodeURIComponent('/console/agents?x=1')}`, {
      redirect: 'manual',
    });
    expect(ok.status).toBe(302);
  });
});

/** fetchWithCookie calls the API with a given session cookie and CSRF token, from a fresh client. */
async function fetchWithCookie(token: string, csrf: string): Promise<number> {
  const res = await undiciFetch(`${edgeUrl}/parley.api.v1.AgentService/ListAgents`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: `__Host-parley_session=${token}`, 'x-parley-csrf': csrf },
    body: '{}',
    dispatcher,
  });
  return res.status;
}

describe('CLI sign-in (loopback redirect)', () => {
  let loopback: Server;
  let received: URLSearchParams | undefined;
  let redirectUri: string;

  beforeAll(async () => {
    loopback = createServer((req, res) => {
      received = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams;
      res.writeHead(200, { 'content-type': 'text/plain' }).end('Signed in; you can close this tab.');
    });
    await new Promise<void>((r) => loopback.listen(0, '127.0.0.1', r));
    const address = loopback.address();
    redirectUri = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/callback`;
  });
  afterAll(() => new Promise<void>((r) => loopback.close(() => r())));

  const pkce = () => {
    const verifier = randomBytes(32).toString('base64url');
    return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
  };
  const cliLogin = async (challenge: string, state: string) => {
    received = undefined;
    const q = new URLSearchParams({ redirect_uri: redirectUri, state, code_challenge: challenge, code_challenge_method: 'S256' });
    const last = await signIn(browser(), `${edgeUrl}/auth/cli/login?${q.toString()}`, users.admin);
    expect(last.status).toBe(200);
    // Set by the loopback server while the redirects were followed.
    const got = received as URLSearchParams | undefined;
    expect(got?.get('state')).toBe(state);
    return got?.get('code') ?? '';
  };
  const token = async (body: Record<string, string>) => {
    const res = await undiciFetch(`${edgeUrl}/auth/cli/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher,
    });
    return { status: res.status, body: (await res.json()) as Record<string, string> };
  };
  const bearerCall = async (accessToken: string) =>
    (
      await undiciFetch(`${edgeUrl}/parley.api.v1.AccountService/WhoAmI`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
        body: '{}',
        dispatcher,
      })
    ).status;

  it('gets a one-time code on the loopback redirect, exchanges it with its verifier, calls the API, refreshes', async () => {
    const { verifier, challenge } = pkce();
    const state = randomUUID();
    const code = await cliLogin(challenge, state);
    expect(code).toMatch(/^pc_/);
    const tokens = await token({ grant_type: 'authorization_code', code, code_verifier: verifier });
    expect(tokens.status).toBe(200);
    expect(tokens.body).toMatchObject({ token_type: 'Bearer' });
    expect(tokens.body['access_token']).toMatch(/^po_/);
    expect(tokens.body['refresh_token']).toMatch(/^pr_/);
    expect(await bearerCall(tokens.body['access_token']!)).toBe(200);
    // The code is single use.
    expect((await token({ grant_type: 'authorization_code', code, code_verifier: verifier })).status).toBe(400);
    // Refresh rotates both: the old access and refresh tokens stop working.
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: tokens.body['refresh_token']! });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body['access_token']).not.toBe(tokens.body['access_token']);
    expect(await bearerCall(refreshed.body['access_token']!)).toBe(200);
    expect(await bearerCall(tokens.body['access_token']!)).toBe(401);
    expect((await token({ grant_type: 'refresh_token', refresh_token: tokens.body['refresh_token']! })).status).toBe(400);
    // `parley logout`: revoking the refresh token ends the session, its bearer token with it.
    const revoke = await undiciFetch(`${edgeUrl}/auth/cli/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: refreshed.body['refresh_token'] }),
      dispatcher,
    });
    expect(revoke.status).toBe(200);
    expect(await bearerCall(refreshed.body['access_token']!)).toBe(401);
    expect((await token({ grant_type: 'refresh_token', refresh_token: refreshed.body['refresh_token']! })).status).toBe(400);
  });

  it('refuses a code exchanged with the wrong verifier, and the code is spent', async () => {
    const { verifier, challenge } = pkce();
    const code = await cliLogin(challenge, randomUUID());
    const wrong = await token({ grant_type: 'authorization_code', code, code_verifier: pkce().verifier });
    expect(wrong.status).toBe(400);
    expect(wrong.body['error']).toContain('code_verifier does not match');
    expect((await token({ grant_type: 'authorization_code', code, code_verifier: verifier })).status).toBe(400);
  });

  it('ends the whole session when a used refresh token is presented again', async () => {
    const { verifier, challenge } = pkce();
    const code = await cliLogin(challenge, randomUUID());
    const tokens = await token({ grant_type: 'authorization_code', code, code_verifier: verifier });
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: tokens.body['refresh_token']! });
    expect(refreshed.status).toBe(200);
    expect(await bearerCall(refreshed.body['access_token']!)).toBe(200);
    // The old refresh token again (a stolen copy, or the thief's after the owner refreshed).
    const reused = await token({ grant_type: 'refresh_token', refresh_token: tokens.body['refresh_token']! });
    expect(reused.status).toBe(400);
    expect(reused.body['error']).toContain('already used');
    // Neither the new bearer token nor the new refresh token work any more.
    expect(await bearerCall(refreshed.body['access_token']!)).toBe(401);
    expect((await token({ grant_type: 'refresh_token', refresh_token: refreshed.body['refresh_token']! })).status).toBe(400);
  });

  it('never refreshes past the absolute lifetime fixed at sign-in', async () => {
    const { verifier, challenge } = pkce();
    const code = await cliLogin(challenge, randomUUID());
    const tokens = await token({ grant_type: 'authorization_code', code, code_verifier: verifier });
    const pg = adminPool(1);
    const setEnd = (interval: string) =>
      pg.query(
        `update parley_identity.operator_sessions set max_expires_at = now() + $2::interval
          where kind = 'cli' and revoked_at is null and refresh_hash is not null
            and member_id in (select id from parley_identity.members where email = $1)`,
        [users.admin.email, interval],
      );
    try {
      // Sign-in fixed the end 30 days out; the refresh token's own expiry never goes past it.
      await setEnd('10 minutes');
      const refreshed = await token({ grant_type: 'refresh_token', refresh_token: tokens.body['refresh_token']! });
      expect(refreshed.status).toBe(200);
      expect(Date.parse(refreshed.body['refresh_expires_at']!)).toBeLessThanOrEqual(Date.now() + 11 * 60_000);
      expect(Date.parse(refreshed.body['expires_at']!)).toBeLessThanOrEqual(Date.now() + 11 * 60_000);
      await setEnd('-1 second');
      expect((await token({ grant_type: 'refresh_token', refresh_token: refreshed.body['refresh_token']! })).status).toBe(400);
    } finally {
      await pg.end();
    }
  });

  it('refuses a redirect_uri that is not a loopback address, or not its /callback path', async () => {
    const { challenge } = pkce();
    const port = new URL(redirectUri).port;
    for (const uri of [
      'https://evil.example/callback',
      `http://127.0.0.1:${port}/elsewhere`,
      `http://127.0.0.1:${port}/callback/x`,
      `http://127.0.0.1:${port}/callback?next=1`,
      `http://127.0.0.1:${port}/`,
    ]) {
      const q = new URLSearchParams({ redirect_uri: uri, state: randomUUID(), code_challenge: challenge, code_challenge_method: 'S256' });
      const res = await browser().fetch(`${edgeUrl}/auth/cli/login?${q.toString()}`, { redirect: 'manual' });
      expect(res.status, uri).toBe(400);
    }
  });

  it('asks the person to confirm before signing the CLI in; a link alone, a cancel or a forged form issues no code', async () => {
    const { challenge } = pkce();
    const q = new URLSearchParams({
      redirect_uri: redirectUri,
      state: randomUUID(),
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    const start = `${edgeUrl}/auth/cli/login?${q.toString()}`;
    // Opening the link shows a page; it does not go to the provider.
    const b = browser();
    const first = await b.fetch(start, { redirect: 'manual' });
    expect(first.status).toBe(200);
    expect(first.headers.get('location')).toBeNull();
    // Cancel: nothing starts; the CLI waiting on its loopback port hears the denial at once.
    const cancelled = await confirmCli(b, first, 'cancel', 'manual');
    expect(cancelled.status).toBe(302);
    const back = new URL(cancelled.headers.get('location') ?? '');
    expect(`${back.origin}${back.pathname}`).toBe(redirectUri);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe(q.get('state'));
    expect(back.searchParams.has('code')).toBe(false);
    // A form posted from another site carries no confirmation cookie (SameSite) or a wrong token.
    const forged = new URLSearchParams({ ...Object.fromEntries(q), decision: 'continue', confirm_token: 'x'.repeat(43) });
    const post = (from: ReturnType<typeof browser>) =>
      from.fetch(`${edgeUrl}/auth/cli/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: forged.toString(),
        redirect: 'manual',
      });
    expect((await post(browser())).status).toBe(403);
    const withCookie = browser();
    await withCookie.fetch(start, { redirect: 'manual' });
    expect((await post(withCookie)).status).toBe(403);
  });
});

describe('deployment administration (WorkspaceService)', () => {
  const SYSTEM_TENANT = '00000000-0000-0000-0000-000000000000';
  const api = async (path: string, body: unknown, headers: Record<string, string>) => {
    const res = await undiciFetch(`${edgeUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      dispatcher,
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any -- Connect JSON answers
  };
  /** adminToken signs the administrator in through the CLI flow and returns a bearer token. */
  const adminToken = async () => (await cliTokens(users.deployAdmin)).access_token;
  /** cliTokens signs a person in through the CLI flow and returns the token answer. */
  const cliTokens = async (user: DevOidcUser) => {
    const loopback = createServer((req, res) => {
      code = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams.get('code') ?? '';
      res.end('ok');
    });
    let code = '';
    await new Promise<void>((r) => loopback.listen(0, '127.0.0.1', r));
    const address = loopback.address();
    const verifier = randomBytes(32).toString('base64url');
    const q = new URLSearchParams({
      redirect_uri: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/callback`,
      state: randomUUID(),
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    await signIn(browser(), `${edgeUrl}/auth/cli/login?${q.toString()}`, user);
    await new Promise<void>((r) => loopback.close(() => r()));
    const res = await undiciFetch(`${edgeUrl}/auth/cli/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'authorization_code', code, code_verifier: verifier }),
      dispatcher,
    });
    return (await res.json()) as { access_token: string; refresh_token: string };
  };
  const refresh = async (refreshToken: string) => {
    const res = await undiciFetch(`${edgeUrl}/auth/cli/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: refreshToken }),
      dispatcher,
    });
    return { status: res.status, body: (await res.json()) as Record<string, string> };
  };

  it('drops deployment:admin at a refresh: identity cannot know the group still holds it, so a fresh sign-in is needed', async () => {
    const tokens = await cliTokens(users.deployAdmin);
    const before = await api('/parley.api.v1.AccountService/WhoAmI', {}, { authorization: `Bearer ${tokens.access_token}` });
    expect(before.body['scopes']).toEqual(['deployment:admin']);
    const refreshed = await refresh(tokens.refresh_token);
    expect(refreshed.status).toBe(200);
    const after = { authorization: `Bearer ${refreshed.body['access_token']}` };
    const who = await api('/parley.api.v1.AccountService/WhoAmI', {}, after);
    expect(who.status).toBe(200);
    expect(who.body['scopes'] ?? []).not.toContain('deployment:admin');
    expect((await api('/parley.api.v1.WorkspaceService/ListWorkspaces', {}, after)).status).toBe(403);
  });

  it('lists in the console session the workspaces the person may switch to: not a suspended one, not one bound to another provider account', async () => {
    const admin = { authorization: `Bearer ${await adminToken()}` };
    const create = async (name: string) => {
      const res = await api('/parley.api.v1.WorkspaceService/CreateWorkspace', { name, ownerEmail: users.admin.email }, admin);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body['workspace'].id as string;
    };
    const plain = await create(`Switch ${run}`);
    const elsewhere = await create(`Bound elsewhere ${run}`);
    const suspended = await create(`Suspended ${run}`);
    expect((await api('/parley.api.v1.WorkspaceService/SuspendWorkspace', { workspaceId: suspended }, admin)).status).toBe(200);
    const pg = adminPool(1);
    try {
      await pg.query(
        `update parley_identity.members set oidc_issuer = 'https://other-issuer.example', oidc_subject = 'someone-else'
          where tenant_id = $1 and email = $2`,
        [elsewhere, users.admin.email],
      );
    } finally {
      await pg.end();
    }
    const b = browser();
    await signIn(b, `${edgeUrl}/auth/login?workspace=${stack.bootstrap.tenantId}`, users.admin);
    const me = (await (await b.fetch(`${edgeUrl}/auth/session`)).json()) as { workspaces: { id: string; name: string }[] };
    const ids = me.workspaces.map((w) => w.id);
    expect(ids).toContain(stack.bootstrap.tenantId);
    expect(me.workspaces).toContainEqual({ id: plain, name: `Switch ${run}` });
    expect(ids).not.toContain(elsewhere);
    expect(ids).not.toContain(suspended);
  });

  it('refuses workspace administration to a workspace owner, naming deployment:admin', async () => {
    const res = await api('/parley.api.v1.WorkspaceService/ListWorkspaces', {}, { authorization: `Bearer ${stack.bootstrap.apiKey}` });
    expect(res.status).toBe(403);
    expect(String(res.body['message'])).toContain('deployment:admin');
  });

  it('lets an administrator from the group claim create a workspace with its first owner, list it, and suspend it: its keys and sessions stop at once', async () => {
    const admin = { authorization: `Bearer ${await adminToken()}` };
    const who = await api('/parley.api.v1.AccountService/WhoAmI', {}, admin);
    expect(who.body).toMatchObject({ tenantId: SYSTEM_TENANT, scopes: ['deployment:admin'] });

    const created = await api(
      '/parley.api.v1.WorkspaceService/CreateWorkspace',
      { name: `Acme ${run}`, ownerEmail: users.newOwner.email, ownerDisplayName: users.newOwner.name },
      admin,
    );
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const workspaceId = created.body['workspace'].id as string;
    const listed = await api('/parley.api.v1.WorkspaceService/ListWorkspaces', {}, admin);
    expect(listed.body['workspaces'].map((w: { id: string }) => w.id)).toEqual(
      expect.arrayContaining([workspaceId, stack.bootstrap.tenantId]),
    );
    expect(
      (await api('/parley.api.v1.WorkspaceService/CreateWorkspace', { name: '', ownerEmail: users.newOwner.email }, admin)).status,
    ).toBe(400);

    // The first owner signs in with the identity provider and makes a key.
    const owner = browser();
    await signIn(owner, `${edgeUrl}/auth/login?workspace=${workspaceId}`, users.newOwner);
    const me = (await (await owner.fetch(`${edgeUrl}/auth/session`)).json()) as {
      workspaceId: string;
      csrfToken: string;
      member: { role: string };
    };
    expect(me).toMatchObject({ workspaceId, member: { role: 'owner' } });
    const keyRes = await owner.fetch(`${edgeUrl}/parley.api.v1.ApiKeyService/CreateApiKey`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-parley-csrf': me.csrfToken },
      body: JSON.stringify({ name: 'backend', scopes: ['agents:read', 'sessions:create'] }),
    });
    expect(keyRes.status).toBe(200);
    const key = ((await keyRes.json()) as { secret: string }).secret;
    const asKey = { authorization: `Bearer ${key}` };
    expect((await api('/parley.api.v1.AgentService/ListAgents', {}, asKey)).status).toBe(200);

    const ownerCli = await cliTokens(users.newOwner);
    expect(ownerCli.refresh_token).toMatch(/^pr_/);

    const suspended = await api('/parley.api.v1.WorkspaceService/SuspendWorkspace', { workspaceId }, admin);
    expect(suspended.status).toBe(200);
    expect(suspended.body['workspace'].suspendedAt).toBeDefined();
    // At once: the key, the owner's console session, a new sign-in.
    const refused = await api('/parley.api.v1.AgentService/ListAgents', {}, asKey);
    expect(refused.status).toBe(401);
    expect(String(refused.body['message'])).toContain('suspended');
    expect((await owner.fetch(`${edgeUrl}/auth/session`)).status).toBe(401);
    const again = await signIn(browser(), `${edgeUrl}/auth/login?workspace=${workspaceId}`, users.newOwner);
    expect(again.status).toBe(403);
    // The owner's CLI cannot refresh its way back in.
    const cliRefresh = await refresh(ownerCli.refresh_token);
    expect(cliRefresh.status).toBe(400);
    expect(cliRefresh.body['error']).toContain('suspended');
    // Other workspaces are untouched.
    expect((await api('/parley.api.v1.AgentService/ListAgents', {}, { authorization: `Bearer ${stack.bootstrap.apiKey}` })).status).toBe(
      200,
    );

    // Audited in the system tenant, by the administrator.
    const admin_pg = adminPool(1);
    try {
      let rows: { action: string; target_id: string; actor_kind: string }[] = [];
      for (let i = 0; i < 150 && rows.length < 2; i++) {
        rows = (
          await admin_pg.query(
            `select action, target_id, actor_kind from parley_audit.events where tenant_id = $1 and target_id = $2 order by seq`,
            [SYSTEM_TENANT, workspaceId],
          )
        ).rows;
        if (rows.length < 2) await new Promise((r) => setTimeout(r, 200));
      }
      expect(rows.map((r) => r.action)).toEqual(['workspace.create', 'workspace.suspend']);
      expect(rows.every((r) => r.actor_kind === 'member')).toBe(true);
    } finally {
      await admin_pg.end();
    }
  });
});
