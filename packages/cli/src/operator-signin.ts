// Operator sign-in for the CLI against the edge's /auth/cli/* endpoints (RFC 8252 loopback
// redirect with PKCE): the browser signs in with the company's identity provider, the edge sends
// a one-minute code to this process's 127.0.0.1 port, and the code is exchanged for a bearer token
// (one hour) and a refresh token (replaced at each refresh) that the profile file keeps.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { open, rm, stat } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TokenSource } from '@parley/client';
import { NotSignedInError, UnavailableError, UsageError } from './exit-codes.js';
import { readProfiles, writeProfiles, type ProfileCredentials } from './profile.js';

/** OperatorTokens are what POST /auth/cli/token answers, in the profile's shape. */
export type OperatorTokens = Extract<ProfileCredentials, { kind: 'oidc' }>;

/** Edge is where the sign-in endpoints are: the API's URL and an optional private CA. */
export interface Edge {
  readonly url: string;
  readonly ca: Buffer | undefined;
}

/** postJson POSTs a JSON body to the edge and returns the status and the parsed answer. */
async function postJson(edge: Edge, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(path, edge.url);
  const payload = JSON.stringify(body);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: 30_000,
        ...(edge.ca === undefined || url.protocol !== 'https:' ? {} : { ca: edge.ca }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          } catch {
            // A proxy's HTML error page: the status says enough.
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err) => reject(new UnavailableError(`cannot reach ${url.origin}${path}: ${err.message}`)));
    req.end(payload);
  });
}

/** tokenCall asks /auth/cli/token for tokens and turns a refusal into the error its exit code needs. */
async function tokenCall(edge: Edge, body: Record<string, string>, refusal: string): Promise<OperatorTokens> {
  const res = await postJson(edge, '/auth/cli/token', body);
  const reason = typeof res.body['error'] === 'string' ? res.body['error'] : `HTTP ${res.status}`;
  if (res.status === 400 || res.status === 401 || res.status === 403) throw new NotSignedInError(`${refusal}: ${reason}`);
  if (res.status === 404) throw noSignIn(edge);
  if (res.status === 429) throw new UnavailableError(`too many failed sign-in attempts from this address; wait and try again (${reason})`);
  if (res.status !== 200) throw new UnavailableError(`the edge's sign-in is unavailable (${reason}); try again shortly`);
  const { access_token, refresh_token, expires_at, refresh_expires_at } = res.body;
  if (typeof access_token !== 'string' || typeof refresh_token !== 'string' || typeof expires_at !== 'string')
    throw new UnavailableError('the edge answered /auth/cli/token without tokens');
  return {
    kind: 'oidc',
    accessToken: access_token,
    refreshToken: refresh_token,
    expiresAt: expires_at,
    refreshExpiresAt: typeof refresh_expires_at === 'string' ? refresh_expires_at : '',
  };
}

const noSignIn = (edge: Edge) =>
  new UsageError(
    `${edge.url} does not offer operator sign-in (OIDC is not configured on its edge); store a workspace API key with: parley login --api-key-stdin (or --from-stack for the dev stack)`,
  );

/** revokeOperatorToken ends the CLI session of a bearer or refresh token (POST /auth/cli/revoke). */
export async function revokeOperatorToken(edge: Edge, token: string): Promise<void> {
  const res = await postJson(edge, '/auth/cli/revoke', { token });
  if (res.status !== 200) throw new UnavailableError(`the edge did not revoke the session (HTTP ${res.status}); try parley logout again`);
}

// A refresh presents the refresh token once: two parley processes refreshing at the same moment
// would present it twice, and the edge ends a session whose refresh token is reused. A lock file
// next to the profile file makes them take turns; the second one finds the first one's tokens.
async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await (await open(lock, 'wx', 0o600)).close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const held = await stat(lock).catch(() => undefined);
      // A parley killed mid-refresh leaves its lock behind; a refresh takes seconds, not 30.
      if (held !== undefined && Date.now() - held.mtimeMs > 30_000) {
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new UsageError(`${lock} is held by another parley; if none is running, delete it`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

/** freshEnough is whether a bearer token still has a minute to live (a call must not start with one about to expire). */
function freshEnough(tokens: OperatorTokens, now: number): boolean {
  return Date.parse(tokens.expiresAt) - now > 60_000;
}

/**
 * operatorTokenSource presents a profile's operator bearer token, refreshing it (and storing the
 * new pair in the profile file, under a lock) when it has less than a minute left or the API
 * refused it.
 */
export function operatorTokenSource(edge: Edge, profileFile: string, profileName: string, stored: OperatorTokens): TokenSource {
  let current = stored;
  let refused = false;
  const refresh = () =>
    withLock(profileFile, async () => {
      const file = await readProfiles(profileFile);
      const profile = file.profiles[profileName];
      if (profile?.credentials.kind !== 'oidc') throw new NotSignedInError(`profile "${profileName}" was logged out; run: parley login`);
      // Another parley refreshed while this one waited for the lock: use its tokens.
      if (profile.credentials.accessToken !== current.accessToken && freshEnough(profile.credentials, Date.now()))
        return profile.credentials;
      const tokens = await tokenCall(
        edge,
        { grant_type: 'refresh_token', refresh_token: profile.credentials.refreshToken },
        `the sign-in of profile "${profileName}" has ended; run: parley login`,
      );
      // The edge drops deployment:admin at a refresh; say so once the administrator needs it.
      file.profiles[profileName] = { ...profile, credentials: { ...tokens, deploymentAdmin: false } };
      await writeProfiles(profileFile, file);
      return tokens;
    });
  return {
    async token() {
      if (refused || !freshEnough(current, Date.now())) {
        current = await refresh();
        refused = false;
      }
      return current.accessToken;
    },
    invalidate() {
      refused = true;
    },
  };
}

/** LoopbackSignIn is what `parley login` needs from the person: where to say things and whether to open a browser. */
export interface LoopbackSignInOptions {
  readonly edge: Edge;
  /** workspace picks one of the person's workspaces (the oldest otherwise). */
  readonly workspace?: string;
  /** port is the loopback port (0: any free one). */
  readonly port: number;
  /** timeoutMs is how long to wait for the browser. */
  readonly timeoutMs: number;
  /** say writes a line for the person (stderr). */
  readonly say: (line: string) => void;
  /** openBrowser opens the sign-in URL in the person's browser (not called with --no-browser or off a terminal). */
  readonly openBrowser?: (url: string) => void;
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch);

const page = (title: string, text: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>`;

/**
 * loopbackSignIn runs the browser sign-in: it listens on 127.0.0.1, prints (and maybe opens) the
 * edge's /auth/cli/login URL with an S256 PKCE challenge and a random state, waits for the edge's
 * redirect to /callback with the code (or with an error, which ends it at once), and exchanges the
 * code and verifier for tokens.
 */
export async function loopbackSignIn(options: LoopbackSignInOptions): Promise<OperatorTokens> {
  // Before a person opens a link that leads nowhere: an edge without OIDC has no /auth/* at all
  // (404), one with it answers a request without a grant type with 400 and calls nobody.
  const probe = await postJson(options.edge, '/auth/cli/token', {});
  if (probe.status === 404) throw noSignIn(options.edge);
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(24).toString('base64url');
  let settle!: { resolve: (code: string) => void; reject: (err: Error) => void };
  const codeArrived = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const reply = (status: number, title: string, text: string) => {
      res.writeHead(status, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': "default-src 'none'",
      });
      res.end(page(title, text));
    };
    if (req.method !== 'GET' || url.pathname !== '/callback')
      return reply(404, 'Not found', 'This is the Parley CLI waiting for its sign-in.');
    // Someone else's redirect (a stale tab, a forged link) must not end this sign-in.
    if (url.searchParams.get('state') !== state)
      return reply(400, 'Sign-in not recognised', 'This sign-in was not started by this parley login; run it again.');
    // The edge refused the sign-in (RFC 6749 §4.1.2.1): stop now, with its reason, not at the timeout.
    const error = url.searchParams.get('error');
    if (error !== null) {
      const reason = (url.searchParams.get('error_description') ?? error).slice(0, 500);
      reply(403, 'Sign-in refused', `${reason}. The Parley CLI is not signed in; you can close this tab.`);
      settle.reject(new NotSignedInError(`the edge refused the sign-in: ${reason}`));
      return;
    }
    const code = url.searchParams.get('code') ?? '';
    if (code === '') return reply(400, 'Sign-in failed', 'The redirect carried no code; run parley login again.');
    reply(200, 'Signed in', 'The Parley CLI is signed in. You can close this tab.');
    settle.resolve(code);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new UsageError(`cannot listen on 127.0.0.1:${options.port} for the sign-in redirect: ${err.message}`)),
    );
    server.listen(options.port, '127.0.0.1', resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const login = new URL('/auth/cli/login', options.edge.url);
  login.search = new URLSearchParams({
    redirect_uri: `http://127.0.0.1:${port}/callback`,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...(options.workspace === undefined ? {} : { workspace: options.workspace }),
  }).toString();
  options.say(`Open this link in your browser to sign in (waiting on 127.0.0.1:${port}):`);
  options.say(`  ${login.href}`);
  options.openBrowser?.(login.href);
  const timer = setTimeout(
    () => settle.reject(new NotSignedInError(`no sign-in within ${Math.round(options.timeoutMs / 1000)} s; run parley login again`)),
    options.timeoutMs,
  );
  try {
    const code = await codeArrived;
    return await tokenCall(
      options.edge,
      { grant_type: 'authorization_code', code, code_verifier: verifier },
      'the edge refused the sign-in code',
    );
  } finally {
    clearTimeout(timer);
    server.closeAllConnections();
    server.close();
  }
}

/** openInBrowser asks the desktop to open a URL (xdg-open, open, start); failing quietly, since the URL is printed too. */
export function openInBrowser(url: string, platform: NodeJS.Platform): void {
  const [command, args] =
    platform === 'darwin' ? ['open', [url]] : platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(command, args, { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // No opener: the printed link is enough.
  }
}
