import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { parseCookie as parseCookies, stringifySetCookie } from 'cookie';
import * as jose from 'jose';
import * as oidc from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import type { Logger } from '@parley/platform';
import { OperatorSessionKind, type OperatorService } from '@parley/proto/parley/identity/v1/operators_pb.js';

// Operator sign-in with OpenID Connect (authorization code + PKCE, openid-client) on the edge's
// public port. The console gets an HTTP-only session cookie and a CSRF token bound to it; the CLI
// gets a one-time code on a loopback redirect that it exchanges, with its own PKCE verifier, for a
// bearer token and a refresh token. Identity holds the sessions (see OperatorService).

/** SESSION_COOKIE is the console's session cookie (__Host-: Secure, Path=/, no Domain). */
export const SESSION_COOKIE = '__Host-parley_session';
/** LOGIN_COOKIE carries the PKCE verifier, state and nonce of a sign-in in progress. */
export const LOGIN_COOKIE = '__Host-parley_login';
/** CLI_CONFIRM_COOKIE holds the anti-forgery token of the CLI sign-in confirmation page. */
export const CLI_CONFIRM_COOKIE = '__Host-parley_cli_confirm';
/** CSRF_HEADER must carry csrfTokenFor(session) on every call authenticated by the session cookie. */
export const CSRF_HEADER = 'x-parley-csrf';

/** OidcSettings are the edge's OpenID Connect settings (PARLEY_OIDC_*). */
export interface OidcSettings {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** publicUrl is the edge's public base URL; the redirect URI is publicUrl + /auth/callback. */
  readonly publicUrl: string;
  readonly scopes: string;
  /** allowedDomains: e-mail domains that may sign in; empty: any (membership still decides). */
  readonly allowedDomains: readonly string[];
  /** ca is a PEM bundle trusted for the provider's TLS certificate, besides the system's. */
  readonly ca: Buffer | undefined;
  /** sessionHours bounds the console cookie's Max-Age (identity decides the session's real end). */
  readonly sessionHours: number;
  /** adminGroups and adminEmails make a deployment administrator (scope deployment:admin). */
  readonly adminGroups: readonly string[];
  readonly adminEmails: readonly string[];
}

/** csrfTokenFor is the CSRF token of a console session: an HMAC keyed by the session's own secret token, so no other key is needed and it is the same at every replica. */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update('parley-csrf-v1').digest('base64url');
}

/** sameText compares an expected secret with a presented one in constant time (byte lengths first). */
function sameText(expected: string, presented: string): boolean {
  const want = Buffer.from(expected);
  const got = Buffer.from(presented);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** checkCsrf tells whether a presented CSRF token belongs to a session token (constant time). */
export function checkCsrf(sessionToken: string, presented: string | null): boolean {
  return presented !== null && sameText(csrfTokenFor(sessionToken), presented);
}

/** sessionCookieOf reads the console session token from a Cookie header. */
export function sessionCookieOf(cookieHeader: string | null | undefined): string | undefined {
  if (cookieHeader === null || cookieHeader === undefined || cookieHeader === '') return undefined;
  return parseCookies(cookieHeader)[SESSION_COOKIE];
}

interface LoginState {
  readonly v: string; // PKCE verifier
  readonly s: string; // state
  readonly n: string; // nonce
  readonly r: string; // where to go afterwards (console)
  readonly w: string; // workspace asked for ('' for any)
  readonly c?: { readonly u: string; readonly s: string; readonly ch: string }; // CLI loopback redirect, state, challenge
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** isLoopbackRedirect accepts only http://127.0.0.1, [::1] or localhost with a port and the path /callback (RFC 8252 loopback redirect). */
function isLoopbackRedirect(raw: string): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  return (
    url.protocol === 'http:' &&
    ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname) &&
    url.port !== '' &&
    url.pathname === '/callback' &&
    url.search === '' &&
    url.username === '' &&
    url.password === '' &&
    url.hash === ''
  );
}

/**
 * localReturnPath is the same-origin path to return to after sign-in, or undefined. Browsers drop
 * tabs and newlines from a Location and read a backslash as a slash, so `/%09/evil.example` would
 * become `//evil.example`: any control character or backslash is refused outright, then the path is
 * resolved against the public URL and must keep its origin.
 */
export function localReturnPath(p: string, publicUrl: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (p.length > 512 || !p.startsWith('/') || p.startsWith('//') || /[\u0000-\u001f\u007f\\]/.test(p)) return undefined;
  let base: URL;
  let url: URL;
  try {
    base = new URL(publicUrl);
    url = new URL(p, base);
  } catch {
    return undefined;
  }
  if (url.origin !== base.origin || url.username !== '' || url.password !== '') return undefined;
  const path = `${url.pathname}${url.search}${url.hash}`;
  return path.startsWith('//') ? undefined : path;
}

/** PAGE_HEADERS are sent with the edge's own HTML pages: never cached, never framed, no scripts. */
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
  // No form-action: the form's answer redirects to the identity provider, which it would block.
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
};

/** escapeHtml makes text safe inside an HTML attribute or element. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** page is a minimal HTML page. */
function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

/**
 * describeTokenError says why a code exchange or ID token was refused: openid-client's summary and
 * the check that failed underneath (it names the claim, e.g. `unexpected JWT "iss" (issuer) claim
 * value`), or jose's failed claim.
 */
function describeTokenError(err: unknown): string {
  if (!(err instanceof Error)) return 'the identity provider answer is not valid';
  if (err instanceof jose.errors.JWTClaimValidationFailed) return `${err.message} (claim "${err.claim}")`;
  return err.cause instanceof Error && err.cause.message !== err.message ? `${err.message}: ${err.cause.message}` : err.message;
}

/** isoOf is a whole-second protobuf timestamp as the ISO 8601 text the JSON answers carry. */
function isoOf(ts: { seconds: bigint } | undefined): string | undefined {
  return ts === undefined ? undefined : new Date(Number(ts.seconds) * 1000).toISOString();
}

async function readBody(req: Req, max = 16_384): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** OperatorSignIn serves /auth/* on the public port. */
export interface OperatorSignIn {
  /** handle serves the request when its path is one of sign-in's and returns true; false otherwise. `source` is the client's address, which failed token calls count against. */
  handle(req: Req, res: Res, source: string): boolean;
}

/**
 * createOperatorSignIn builds the /auth/* endpoints:
 * - GET /auth/login[?return_to=/path&workspace=<id>]: redirect to the provider (console sign-in);
 * - GET /auth/cli/login?redirect_uri=http://127.0.0.1:<port>/callback&state=…&code_challenge=…&code_challenge_method=S256:
 *   a confirmation page whose form (POST /auth/cli/login, with a token bound to a cookie) starts the
 *   same for the CLI, which gets `?code=pc_…&state=…` on its loopback redirect;
 * - GET /auth/callback: the provider's redirect; verifies the ID token (issuer, audience, signature,
 *   nonce, expiry, through openid-client), the verified e-mail and its domain, then asks identity;
 * - GET /auth/session: the console session's member, scopes, CSRF token and the workspaces the
 *   person may switch to (401 without one);
 * - POST /auth/logout: ends the console session (needs the CSRF header);
 * - POST /auth/cli/revoke: `{"token":"po_…|pr_…"}` ends that CLI session (200 whether or not it existed);
 * - POST /auth/cli/token: `{"grant_type":"authorization_code","code","code_verifier"}` or
 *   `{"grant_type":"refresh_token","refresh_token"}` → `{access_token, refresh_token, token_type, expires_at, refresh_expires_at}`.
 */
export function createOperatorSignIn(settings: OidcSettings, operators: Client<typeof OperatorService>, logger: Logger): OperatorSignIn {
  const redirectUri = `${settings.publicUrl}/auth/callback`;
  const dispatcher = settings.ca === undefined ? undefined : new Agent({ connect: { ca: settings.ca } });
  const fetchWithCa: oidc.CustomFetch = (url, options) =>
    undiciFetch(url, { ...options, ...(dispatcher === undefined ? {} : { dispatcher }) } as Parameters<
      typeof undiciFetch
    >[1]) as unknown as Promise<Response>;
  let configuration: Promise<oidc.Configuration> | undefined;
  let jwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined;
  // Discovered on first use and kept; a failed discovery is tried again at the next sign-in.
  const config = () => {
    configuration ??= oidc
      .discovery(new URL(settings.issuer), settings.clientId, undefined, oidc.ClientSecretPost(settings.clientSecret), {
        [oidc.customFetch]: fetchWithCa,
      })
      .then((c) => {
        c[oidc.customFetch] = fetchWithCa;
        return c;
      })
      .catch((err: unknown) => {
        configuration = undefined;
        throw err;
      });
    return configuration;
  };

  const send = (res: Res, status: number, body: unknown, headers: Record<string, string | string[]> = {}) => {
    (res as ServerResponse).writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(JSON.stringify(body));
  };
  const refuse = (res: Res, status: number, message: string) => send(res, status, { error: message });
  const cookie = (name: string, value: string, maxAge: number) =>
    stringifySetCookie({ name, value, httpOnly: true, secure: true, sameSite: 'lax', path: '/', maxAge });

  const startLogin = async (res: Res, state: Omit<LoginState, 'v' | 's' | 'n'>, extraCookies: string[] = []) => {
    const c = await config();
    const verifier = oidc.randomPKCECodeVerifier();
    const login: LoginState = { ...state, v: verifier, s: oidc.randomState(), n: oidc.randomNonce() };
    const url = oidc.buildAuthorizationUrl(c, {
      redirect_uri: redirectUri,
      scope: settings.scopes,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: login.s,
      nonce: login.n,
    });
    (res as ServerResponse).writeHead(302, {
      location: url.href,
      'cache-control': 'no-store',
      'set-cookie': [...extraCookies, cookie(LOGIN_COOKIE, Buffer.from(JSON.stringify(login)).toString('base64url'), 600)],
    });
    res.end();
  };

  const finishLogin = async (req: Req, res: Res, query: URLSearchParams) => {
    const raw = parseCookies(req.headers.cookie ?? '')[LOGIN_COOKIE];
    if (raw === undefined)
      return refuse(res, 400, 'no sign-in in progress in this browser (cookies blocked or expired); start again at /auth/login');
    let login: LoginState;
    try {
      login = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as LoginState;
    } catch {
      return refuse(res, 400, 'the sign-in cookie is damaged; start again at /auth/login');
    }
    const clearLogin = cookie(LOGIN_COOKIE, '', 0);
    // A CLI waits on its loopback port: a refusal goes there too (RFC 6749 §4.1.2.1: error and
    // error_description with the CLI's state), so `parley login` stops at once with the reason
    // instead of waiting out --wait-seconds. The console gets the 403 page.
    const refuseLogin = (message: string) => {
      if (login.c === undefined) return refuse(res, 403, message);
      const back = new URL(login.c.u);
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', message);
      back.searchParams.set('state', login.c.s);
      (res as ServerResponse).writeHead(302, { location: back.href, 'cache-control': 'no-store', 'set-cookie': clearLogin });
      res.end();
    };
    if (query.has('error')) {
      // Only this login's own answer may end it (a crafted link must not abort a pending sign-in),
      // and only an RFC 6749 error code is repeated, never free text from the link.
      if (query.get('state') !== login.s) return refuse(res, 400, 'this sign-in answer is not for the sign-in in progress; start again');
      const code = /^[A-Za-z0-9_.-]{1,64}$/.test(query.get('error') ?? '') ? query.get('error') : 'invalid';
      return refuseLogin(`the identity provider refused the sign-in: ${code}`);
    }
    const c = await config();
    let claims: oidc.IDToken;
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(c, new URL(`${redirectUri}?${query.toString()}`), {
        pkceCodeVerifier: login.v,
        expectedState: login.s,
        expectedNonce: login.n,
        idTokenExpected: true,
      });
      const idClaims = tokens.claims();
      if (idClaims === undefined || tokens.id_token === undefined) throw new Error('the identity provider sent no ID token');
      // openid-client checks the claims (iss, aud, exp, nonce) but, as OIDC allows for a token
      // fetched over TLS from the token endpoint, not the signature: check it against the
      // provider's published keys too, so a token the provider did not sign is never accepted.
      const jwksUri = c.serverMetadata().jwks_uri;
      if (jwksUri === undefined) throw new Error('the identity provider publishes no jwks_uri');
      jwks ??= jose.createRemoteJWKSet(new URL(jwksUri), { [jose.customFetch]: fetchWithCa as never });
      await jose.jwtVerify(tokens.id_token, jwks, { issuer: settings.issuer, audience: settings.clientId });
      claims = idClaims;
    } catch (err) {
      const reason = describeTokenError(err);
      logger.info({ reason }, 'operator sign-in refused: ID token or code not valid');
      (res as ServerResponse).setHeader('set-cookie', clearLogin);
      return refuseLogin(`sign-in refused: ${reason}`);
    }
    // Some providers put e-mail in the UserInfo answer only; it is fetched for the same subject.
    let email = typeof claims['email'] === 'string' ? claims['email'] : undefined;
    let verified = claims['email_verified'];
    let groups = claims['groups'];
    if (email === undefined) {
      const info = await oidc.fetchUserInfo(c, tokens.access_token, claims.sub);
      email = info.email;
      verified = info.email_verified;
      groups ??= info['groups'];
    }
    (res as ServerResponse).setHeader('set-cookie', clearLogin);
    if (email === undefined)
      return refuseLogin('sign-in refused: the identity provider sent no e-mail address (ask for the "email" scope)');
    if (verified !== true) return refuseLogin(`sign-in refused: the e-mail address ${email} is not verified at the identity provider`);
    const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
    if (settings.allowedDomains.length > 0 && !settings.allowedDomains.includes(domain))
      return refuseLogin(`sign-in refused: e-mail addresses at ${domain} may not sign in to this deployment`);
    // Deployment administrators: a group claim the deployment names, or a bootstrap admin e-mail.
    const deploymentAdmin =
      (Array.isArray(groups) && groups.some((g) => typeof g === 'string' && settings.adminGroups.includes(g))) ||
      settings.adminEmails.includes(email.toLowerCase());
    let signedIn: Awaited<ReturnType<Client<typeof OperatorService>['signInOperator']>>;
    try {
      signedIn = await operators.signInOperator({
        issuer: claims.iss,
        subject: claims.sub,
        email,
        workspaceId: login.w,
        kind: login.c === undefined ? OperatorSessionKind.CONSOLE : OperatorSessionKind.CLI,
        codeChallenge: login.c?.ch ?? '',
        deploymentAdmin,
      });
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.PermissionDenied || e.code === Code.InvalidArgument) return refuseLogin(`sign-in refused: ${e.rawMessage}`);
      throw err;
    }
    logger.info(
      { tenant_id: signedIn.principal?.tenantId, member_id: signedIn.member?.id, cli: login.c !== undefined },
      'operator signed in',
    );
    if (login.c !== undefined) {
      const back = new URL(login.c.u);
      back.searchParams.set('code', signedIn.code);
      back.searchParams.set('state', login.c.s);
      (res as ServerResponse).writeHead(302, { location: back.href, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    (res as ServerResponse).writeHead(303, {
      // Checked again: the cookie is the edge's own, but a path that leaves the edge is never followed.
      location: localReturnPath(login.r, settings.publicUrl) ?? '/console',
      'cache-control': 'no-store',
      'set-cookie': [clearLogin, cookie(SESSION_COOKIE, signedIn.token, settings.sessionHours * 3600)],
    });
    res.end();
  };

  const session = async (req: Req, res: Res) => {
    const token = sessionCookieOf(req.headers.cookie);
    if (token === undefined) return refuse(res, 401, 'not signed in: open /auth/login');
    try {
      const who = await operators.authenticateOperator({ token });
      // The workspaces this person may switch to (the console's switcher signs in to another).
      const { workspaces } = await operators.listOperatorWorkspaces({ token });
      send(res, 200, {
        workspaceId: who.principal?.tenantId,
        member: { id: who.member?.id, email: who.member?.email, displayName: who.member?.displayName, role: who.member?.role },
        scopes: who.principal?.scopes ?? [],
        csrfToken: csrfTokenFor(token),
        expiresAt: isoOf(who.expiresAt),
        workspaces: workspaces.map((w) => ({ id: w.id, name: w.name })),
      });
    } catch (err) {
      if (ConnectError.from(err).code === Code.Unauthenticated) return refuse(res, 401, 'the session has ended: open /auth/login');
      throw err;
    }
  };

  const logout = async (req: Req, res: Res) => {
    const token = sessionCookieOf(req.headers.cookie);
    if (token === undefined) return refuse(res, 401, 'not signed in');
    if (!checkCsrf(token, (req.headers[CSRF_HEADER] as string | undefined) ?? null))
      return refuse(res, 403, `missing or wrong CSRF token: send the ${CSRF_HEADER} header from GET /auth/session`);
    await operators.signOutOperator({ token });
    send(res, 200, {}, { 'set-cookie': cookie(SESSION_COOKIE, '', 0) });
  };

  const cliToken = async (req: Req, res: Res, source: string) => {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    } catch {
      return refuse(res, 400, 'send a JSON object: {"grant_type":"authorization_code","code":…,"code_verifier":…}');
    }
    const str = (k: string) => (typeof body[k] === 'string' ? (body[k] as string) : '');
    try {
      const answer =
        str('grant_type') === 'authorization_code'
          ? await operators.exchangeOperatorCode({ code: str('code'), codeVerifier: str('code_verifier'), source })
          : str('grant_type') === 'refresh_token'
            ? await operators.refreshOperatorToken({ refreshToken: str('refresh_token'), source })
            : undefined;
      if (answer === undefined) return refuse(res, 400, 'grant_type must be "authorization_code" or "refresh_token"');
      const t = answer.tokens;
      send(res, 200, {
        access_token: t?.accessToken,
        refresh_token: t?.refreshToken,
        token_type: 'Bearer',
        expires_at: isoOf(t?.expiresAt),
        refresh_expires_at: isoOf(t?.refreshExpiresAt),
      });
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Unauthenticated || e.code === Code.InvalidArgument) return refuse(res, 400, e.rawMessage);
      if (e.code === Code.ResourceExhausted) return refuse(res, 429, e.rawMessage);
      throw err;
    }
  };

  // `parley logout`: ends the CLI session of a bearer or refresh token (RFC 7009 style: an unknown
  // token is not an error, so the answer says nothing about which tokens exist).
  const cliRevoke = async (req: Req, res: Res) => {
    let body: { token?: unknown };
    try {
      body = JSON.parse(await readBody(req)) as { token?: unknown };
    } catch {
      return refuse(res, 400, 'send a JSON object: {"token":"po_… or pr_…"}');
    }
    const token = typeof body.token === 'string' ? body.token : '';
    if (!/^p[or]_/.test(token)) return refuse(res, 400, 'token must be a Parley operator token (po_…) or refresh token (pr_…)');
    try {
      await operators.signOutOperator({ token });
    } catch (err) {
      if (ConnectError.from(err).code !== Code.Unauthenticated) throw err;
    }
    send(res, 200, {});
  };

  // A CLI sign-in link can be sent by anyone: before the code goes to this computer's loopback
  // port, the person confirms they started it, on a page that cannot be framed and whose form
  // carries a token only this browser's cookie matches.
  const cliLoginProblem = (q: URLSearchParams): string | undefined => {
    if (!isLoopbackRedirect(q.get('redirect_uri') ?? ''))
      return 'redirect_uri must be a loopback URL http://127.0.0.1:<port>/callback (or [::1] or localhost)';
    if (q.get('code_challenge_method') !== 'S256' || !/^[A-Za-z0-9_-]{43}$/.test(q.get('code_challenge') ?? ''))
      return 'code_challenge must be an S256 PKCE challenge, with code_challenge_method=S256';
    const s = q.get('state') ?? '';
    if (s.length < 16 || s.length > 256) return 'state must be 16 to 256 characters';
    return undefined;
  };
  const confirmCliPage = (res: Res, q: URLSearchParams) => {
    const token = randomBytes(32).toString('base64url');
    const fields = ['redirect_uri', 'state', 'code_challenge', 'code_challenge_method', 'workspace']
      .filter((k) => q.has(k))
      .map((k) => `<input type="hidden" name="${k}" value="${escapeHtml(q.get(k) ?? '')}">`)
      .join('');
    (res as ServerResponse).writeHead(200, { ...PAGE_HEADERS, 'set-cookie': cookie(CLI_CONFIRM_COOKIE, token, 600) });
    res.end(
      page(
        'Sign in to the Parley CLI?',
        `<p>Sign in to the Parley CLI on this computer? Continue only if you just ran <code>parley login</code> here; ` +
          `if someone sent you this link, choose Cancel.</p>` +
          `<form method="post" action="/auth/cli/login">${fields}<input type="hidden" name="confirm_token" value="${token}">` +
          `<button type="submit" name="decision" value="continue">Continue</button> ` +
          `<button type="submit" name="decision" value="cancel">Cancel</button></form>`,
      ),
    );
  };

  const routes: Record<string, (req: Req, res: Res, query: URLSearchParams, source: string) => Promise<void>> = {
    'GET /auth/login': async (_req, res, q) => {
      const returnTo = localReturnPath(q.get('return_to') ?? '/console', settings.publicUrl);
      if (returnTo === undefined)
        return refuse(res, 400, 'return_to must be a path on this server (no control characters or backslashes), e.g. /console');
      await startLogin(res, { r: returnTo, w: q.get('workspace') ?? '' });
    },
    'GET /auth/cli/login': async (_req, res, q) => {
      const problem = cliLoginProblem(q);
      if (problem !== undefined) return refuse(res, 400, problem);
      confirmCliPage(res, q);
    },
    'POST /auth/cli/login': async (req, res) => {
      let form: URLSearchParams;
      try {
        form = new URLSearchParams(await readBody(req));
      } catch {
        return refuse(res, 400, 'send the confirmation form from GET /auth/cli/login');
      }
      const expected = parseCookies(req.headers.cookie ?? '')[CLI_CONFIRM_COOKIE];
      const presented = form.get('confirm_token') ?? '';
      const clearConfirm = cookie(CLI_CONFIRM_COOKIE, '', 0);
      if (expected === undefined || !sameText(expected, presented))
        return refuse(res, 403, "the confirmation did not come from this browser's sign-in page; run `parley login` again");
      const problem = cliLoginProblem(form);
      if (form.get('decision') !== 'continue') {
        // A cancel goes back to the CLI's loopback port as the OAuth denial (RFC 6749 §4.1.2.1), so
        // `parley login` stops at once instead of waiting out --wait-seconds; no code is issued.
        if (problem === undefined) {
          const back = new URL(form.get('redirect_uri') ?? '');
          back.searchParams.set('error', 'access_denied');
          back.searchParams.set('error_description', 'the sign-in was cancelled in the browser');
          back.searchParams.set('state', form.get('state') ?? '');
          (res as ServerResponse).writeHead(302, { location: back.href, 'cache-control': 'no-store', 'set-cookie': clearConfirm });
          res.end();
          return;
        }
        (res as ServerResponse).writeHead(200, { ...PAGE_HEADERS, 'set-cookie': clearConfirm });
        res.end(page('Sign-in cancelled', '<p>The Parley CLI was not signed in. You can close this tab.</p>'));
        return;
      }
      if (problem !== undefined) return refuse(res, 400, problem);
      await startLogin(
        res,
        {
          r: '/',
          w: form.get('workspace') ?? '',
          c: { u: form.get('redirect_uri') ?? '', s: form.get('state') ?? '', ch: form.get('code_challenge') ?? '' },
        },
        [clearConfirm],
      );
    },
    'GET /auth/callback': (req, res, q) => finishLogin(req, res, q),
    'GET /auth/session': (req, res) => session(req, res),
    'POST /auth/logout': (req, res) => logout(req, res),
    'POST /auth/cli/token': (req, res, _q, source) => cliToken(req, res, source),
    'POST /auth/cli/revoke': (req, res) => cliRevoke(req, res),
  };

  return {
    handle(req, res, source) {
      const [path = '', search = ''] = (req.url ?? '').split('?', 2);
      if (!path.startsWith('/auth/')) return false;
      const route = routes[`${req.method} ${path}`];
      if (route === undefined) {
        refuse(res, 404, `no ${req.method} ${path}; see the README's "Operator sign-in"`);
        return true;
      }
      route(req, res, new URLSearchParams(search), source).catch((err: unknown) => {
        logger.error({ err, path }, 'operator sign-in failed');
        if (!res.headersSent) refuse(res, 503, 'sign-in is unavailable right now; try again shortly');
        else res.end();
      });
      return true;
    },
  };
}
