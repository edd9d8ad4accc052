// A public stack whose edge signs operators in through the dev OIDC provider (oidc-provider,
// @parley/devstack), and a cookie-keeping fetch that walks the sign-in pages the way a browser's
// form posts do: the provider's dev login page and the edge's CLI confirmation page are plain HTML
// forms, so no browser is needed to drive them.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import makeFetchCookie from 'fetch-cookie';
import { CookieJar } from 'tough-cookie';
import { Agent, fetch as undiciFetch } from 'undici';
import { expect } from 'vitest';
import { freePort, startDevOidcProvider, type DevOidcProvider, type DevOidcUser } from '@parley/devstack';
import { startPublicStack, type PublicStack, type StackService } from './fixture.js';

/** SignInStack is a public stack with OIDC sign-in, its provider, and a dispatcher trusting both CAs. */
export interface SignInStack {
  readonly stack: PublicStack;
  readonly provider: DevOidcProvider;
  readonly edgeUrl: string;
  readonly dispatcher: Agent;
  /** caFile is the CA the edge's public certificate chains to (PEM file), for the CLI's --ca. */
  readonly caFile: string;
  stop(): Promise<void>;
}

/** EdgeOidcProvider is a dev OIDC provider for an edge that is yet to start, and the edge settings that trust it. */
export interface EdgeOidcProvider {
  readonly provider: DevOidcProvider;
  /** providerCaFile is the CA (PEM file) the provider's certificate chains to. */
  readonly providerCaFile: string;
  /** edgeUrl is the edge's public URL (its port chosen here: the provider's redirect URI names it). */
  readonly edgeUrl: string;
  /** edgeEnv is the edge's public port and OIDC settings (client secret in a 0600 file). */
  readonly edgeEnv: Record<string, string>;
}

/**
 * startEdgeOidcProvider starts the dev OIDC provider with `users` and a client for an edge on a
 * free port, with a localhost certificate of a test PKI of its own.
 */
export async function startEdgeOidcProvider(users: readonly DevOidcUser[], allowedDomains: string): Promise<EdgeOidcProvider> {
  const publicPort = await freePort();
  const edgeUrl = `https://localhost:${publicPort}`;
  const dir = await mkdtemp(join(tmpdir(), 'parley-oidc-'));
  const secretFile = join(dir, 'client-secret');
  const clientSecret = randomBytes(24).toString('base64url');
  await writeFile(secretFile, clientSecret, { mode: 0o600 });
  const { createTestPki } = await import('../src/pki.js');
  const pki = await createTestPki();
  const files = pki.files('edge');
  const provider = await startDevOidcProvider({
    host: '127.0.0.1',
    port: 0,
    cert: await readFile(files.certFile),
    key: await readFile(files.keyFile),
    users: [...users],
    clients: [{ clientId: 'parley-edge', clientSecret, redirectUris: [`${edgeUrl}/auth/callback`] }],
  });
  return {
    provider,
    providerCaFile: pki.paths.caCert,
    edgeUrl,
    edgeEnv: {
      PARLEY_PUBLIC_PORT: String(publicPort),
      PARLEY_OIDC_ISSUER: provider.issuer,
      PARLEY_OIDC_CLIENT_ID: 'parley-edge',
      PARLEY_OIDC_CLIENT_SECRET_FILE: secretFile,
      PARLEY_OIDC_CA_FILE: pki.paths.caCert,
      PARLEY_OIDC_ALLOWED_DOMAINS: allowedDomains,
    },
  };
}

/**
 * startSignInStack starts the dev OIDC provider with `users` and a public stack whose edge trusts
 * it (allowed domains example.com and parley.localhost, admin group parley-ops, no auth cache so
 * that a revoked session is refused at once); `extra` adds or overrides services' settings.
 */
export async function startSignInStack(
  users: readonly DevOidcUser[],
  extra: Partial<Record<StackService, Record<string, string>>> = {},
): Promise<SignInStack> {
  const { provider, providerCaFile, edgeUrl, edgeEnv } = await startEdgeOidcProvider(users, 'example.com,parley.localhost');
  const stack = await startPublicStack({
    ...extra,
    edge: {
      ...edgeEnv,
      PARLEY_EDGE_AUTH_CACHE_MS: '0',
      PARLEY_OIDC_SCOPES: 'openid email profile groups',
      PARLEY_OIDC_ADMIN_GROUPS: 'parley-ops',
      ...extra.edge,
    },
    // Failed operator tokens count against 127.0.0.1 here; never block a file's own refusals.
    identity: { PARLEY_AUTH_MAX_FAILURES: '1000', ...extra.identity },
  });
  // The stack has its own CA: trust both (the edge's public port, the provider's).
  const dispatcher = new Agent({ connect: { ca: [stack.ca, await readFile(providerCaFile)] } });
  return {
    stack,
    provider,
    edgeUrl,
    dispatcher,
    caFile: stack.pki.paths.caCert,
    async stop() {
      await stack.stop();
      await provider.close();
      await dispatcher.close();
    },
  };
}

/** Fetch is the fetch a Browser offers. */
export type Fetch = (url: string, init?: Record<string, unknown>) => Promise<Response>;

/** Browser is a fetch with its own cookie jar. */
export interface Browser {
  readonly fetch: Fetch;
  readonly jar: CookieJar;
}

/** browser is a fetch with its own cookie jar that trusts the test CAs: what a browser does for these pages. */
export function browser(dispatcher: Agent): Browser {
  const jar = new CookieJar();
  const base = ((url: string, init: Record<string, unknown> = {}) =>
    undiciFetch(url, { ...init, dispatcher } as Parameters<typeof undiciFetch>[1])) as unknown as Fetch;
  return { fetch: makeFetchCookie(base, jar) as unknown as Fetch, jar };
}

/** confirmCli answers the edge's CLI sign-in confirmation page the way its form would. */
export async function confirmCli(
  b: Browser,
  edgeUrl: string,
  page: Response,
  decision: 'continue' | 'cancel',
  redirect: 'follow' | 'manual' = 'follow',
): Promise<Response> {
  expect(page.status).toBe(200);
  expect(page.headers.get('x-frame-options')).toBe('DENY');
  const html = await page.text();
  expect(html).toContain('Sign in to the Parley CLI on this computer?');
  const form = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
    form.set(
      m[1]!,
      m[2]!.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n))),
    );
  form.set('decision', decision);
  return b.fetch(`${edgeUrl}/auth/cli/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
    redirect,
  });
}

/** signIn walks the whole flow from `start` to the provider's page, picks `user`, and returns the last answer. */
export async function signIn(b: Browser, edgeUrl: string, start: string, user: DevOidcUser): Promise<Response> {
  let page = await b.fetch(start);
  // CLI sign-in: the edge first asks the person to confirm they started it.
  if (start.includes('/auth/cli/login')) page = await confirmCli(b, edgeUrl, page, 'continue');
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain('For development only');
  const action = /action="([^"]+)"/.exec(html)?.[1];
  expect(action).toBeDefined();
  return b.fetch(new URL(action!, page.url).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ sub: user.sub }).toString(),
  });
}
