// The dev stack's OpenID Connect provider (oidc-provider), so that operator sign-in works with no
// setup. Development only: it signs in whoever picks an account on its page, with no password.
// The Helm chart never runs it; production points the edge at the company's own provider.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { type ClientMetadata } from 'oidc-provider';

/** DevOidcUser is an account the dev provider can sign in. */
export interface DevOidcUser {
  readonly sub: string;
  readonly email: string;
  readonly emailVerified: boolean;
  readonly name: string;
  /** groups are sent in the `groups` claim (scope "groups"). */
  readonly groups?: readonly string[];
}

/** DevOidcClient is a relying party registered at the dev provider. */
export interface DevOidcClient {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly redirectUris: readonly string[];
}

/** DevOidcProviderOptions configure startDevOidcProvider. */
export interface DevOidcProviderOptions {
  readonly host: string;
  /** port to listen on (0: any). */
  readonly port: number;
  /** cert and key of the HTTPS listener (the dev CA's localhost certificate). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly users: readonly DevOidcUser[];
  readonly clients: readonly DevOidcClient[];
}

/** DevOidcProvider is a running dev provider. */
export interface DevOidcProvider {
  /** issuer is its issuer URL (https://localhost:<port>). */
  readonly issuer: string;
  close(): Promise<void>;
}

/** DEV_OIDC_USER is the dev stack's operator: the bootstrap workspace's owner (same e-mail). */
export const DEV_OIDC_USER: DevOidcUser = Object.freeze({
  sub: 'dev-owner',
  email: 'owner@parley.localhost',
  emailVerified: true,
  name: 'Dev owner',
  groups: ['parley-admins'],
});

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/** loginPage is the dev provider's sign-in page: one button per account, and a plain warning. */
function loginPage(uid: string, users: readonly DevOidcUser[]): string {
  const buttons = users
    .map(
      (u) =>
        `<li><button type="submit" name="sub" value="${escapeHtml(u.sub)}">${escapeHtml(u.name)} &lt;${escapeHtml(u.email)}&gt;</button></li>`,
    )
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Parley development sign-in</title></head>
<body><main><h1>Parley development sign-in</h1>
<p role="alert"><strong>For development only.</strong> This is the dev stack's built-in identity provider: it signs in
whoever picks an account, with no password. Never expose it; in production Parley uses your company's identity provider.</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login"><ul>${buttons}</ul></form></main></body></html>`;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16_384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * startDevOidcProvider runs oidc-provider on HTTPS with the given accounts and clients:
 * authorization code with PKCE required, claims `email`, `email_verified`, `name` and `groups`,
 * and its own sign-in page (GET/POST /interaction/:uid) that says it is for development only.
 * Consent is granted without asking: every client here is Parley itself.
 */
export async function startDevOidcProvider(options: DevOidcProviderOptions): Promise<DevOidcProvider> {
  const server: Server = createServer({ cert: options.cert, key: options.key });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const issuer = `https://localhost:${port}`;
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const clients: ClientMetadata[] = options.clients.map((c) => ({
    client_id: c.clientId,
    client_secret: c.clientSecret,
    redirect_uris: [...c.redirectUris],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }));
  const users = new Map(options.users.map((u) => [u.sub, u]));
  const redirectOrigins = [...new Set(options.clients.flatMap((c) => c.redirectUris.map((u) => new URL(u).origin)))].join(' ');
  const provider: Provider = new Provider(issuer, {
    clients,
    jwks: { keys: [{ ...signingKey, use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const user = users.get(sub);
      if (user === undefined) return undefined;
      return {
        accountId: sub,
        claims: () => ({ sub, email: user.email, email_verified: user.emailVerified, name: user.name, groups: [...(user.groups ?? [])] }),
      };
    },
    // Every client is Parley itself: put the scopes asked for in the grant without a consent page.
    async loadExistingGrant(ctx): Promise<InstanceType<Provider['Grant']> | undefined> {
      const session = ctx.oidc.session;
      const client = ctx.oidc.client;
      if (session?.accountId === undefined || client === undefined) return undefined;
      const grant: InstanceType<Provider['Grant']> = new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope(String(ctx.oidc.params?.['scope'] ?? 'openid'));
      await grant.save();
      return grant;
    },
  });
  const callback = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec((req.url ?? '').split('?')[0] ?? '');
    if (match === null) {
      void callback(req, res);
      return;
    }
    void (async () => {
      try {
        const details = await provider.interactionDetails(req, res);
        if (match[2] === undefined && req.method === 'GET') {
          res.writeHead(200, {
            'content-type': 'text/html; charset=utf-8',
            // A browser applies form-action to the whole redirect chain after the POST, which ends
            // at the client's redirect URI: those origins must be allowed too.
            'content-security-policy': `default-src 'none'; form-action 'self' ${redirectOrigins}`,
            'cache-control': 'no-store',
          });
          res.end(loginPage(details.uid, options.users));
          return;
        }
        if (match[2] !== undefined && req.method === 'POST') {
          const sub = (await readForm(req)).get('sub') ?? '';
          if (!users.has(sub)) {
            res.writeHead(400, { 'content-type': 'text/plain' }).end('pick one of the accounts listed');
            return;
          }
          await provider.interactionFinished(req, res, { login: { accountId: sub } }, { mergeWithLastSubmission: false });
          return;
        }
        res.writeHead(405).end();
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`sign-in failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    })();
  });
  return {
    issuer,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
