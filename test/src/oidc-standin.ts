// A hostile OpenID Connect provider: a STAND-IN for tests only (see test/oidc-standin/README.md).
// It speaks the OIDC wire format (discovery, authorization code with PKCE, token endpoint, JWKS)
// and mints ID tokens with jose, but can be told to lie: another issuer, another audience, or a
// signature by a key it does not publish. The real provider (oidc-provider) never does that.
import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

/** OidcStandinLie is what the stand-in's next ID tokens get wrong (nothing when empty). */
export interface OidcStandinLie {
  readonly issuer?: string;
  readonly audience?: string;
  /** unpublishedKey signs with a key that is not in the JWKS. */
  readonly unpublishedKey?: boolean;
}

/** OidcStandin is a running stand-in provider. */
export interface OidcStandin {
  readonly issuer: string;
  /** lie sets what the next ID tokens get wrong. */
  lie(lie: OidcStandinLie): void;
  close(): Promise<void>;
}

/** startOidcStandin starts the stand-in on 127.0.0.1 (HTTPS with the given certificate) for one client and one person. */
export async function startOidcStandin(options: {
  cert: Buffer;
  key: Buffer;
  clientId: string;
  clientSecret: string;
  person: { sub: string; email: string };
}): Promise<OidcStandin> {
  const published = await generateKeyPair('RS256');
  const unpublished = await generateKeyPair('RS256');
  const jwk: JWK = { ...(await exportJWK(published.publicKey)), kid: 'standin-1', alg: 'RS256', use: 'sig' };
  const codes = new Map<string, { nonce: string; challenge: string; redirectUri: string }>();
  let lie: OidcStandinLie = {};
  let issuer = '';

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
  };
  const server: Server = createServer({ cert: options.cert, key: options.key }, (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_post'],
      });
    }
    if (req.method === 'GET' && url.pathname === '/jwks') return json(res, 200, { keys: [jwk] });
    if (req.method === 'GET' && url.pathname === '/authorize') {
      // No login page: the one person is signed in at once (the refusals under test come later).
      const q = url.searchParams;
      if (q.get('client_id') !== options.clientId || q.get('code_challenge_method') !== 'S256')
        return json(res, 400, { error: 'invalid_request' });
      const code = randomBytes(16).toString('base64url');
      codes.set(code, { nonce: q.get('nonce') ?? '', challenge: q.get('code_challenge') ?? '', redirectUri: q.get('redirect_uri') ?? '' });
      const back = new URL(q.get('redirect_uri') ?? '');
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state') ?? '');
      res.writeHead(302, { location: back.href }).end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const grant = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        const verifier = form.get('code_verifier') ?? '';
        if (
          grant === undefined ||
          form.get('client_id') !== options.clientId ||
          form.get('client_secret') !== options.clientSecret ||
          form.get('redirect_uri') !== grant.redirectUri ||
          createHash('sha256').update(verifier).digest('base64url') !== grant.challenge
        )
          return json(res, 400, { error: 'invalid_grant' });
        const key: CryptoKey = lie.unpublishedKey === true ? unpublished.privateKey : published.privateKey;
        void new SignJWT({ email: options.person.email, email_verified: true, nonce: grant.nonce })
          .setProtectedHeader({ alg: 'RS256', kid: 'standin-1' })
          .setIssuer(lie.issuer ?? issuer)
          .setAudience(lie.audience ?? options.clientId)
          .setSubject(options.person.sub)
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(key)
          .then((idToken) =>
            json(res, 200, {
              access_token: randomBytes(16).toString('base64url'),
              token_type: 'Bearer',
              expires_in: 300,
              id_token: idToken,
            }),
          );
      });
      return;
    }
    json(res, 404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  issuer = `https://localhost:${typeof address === 'object' && address !== null ? address.port : 0}`;
  return {
    issuer,
    lie(next) {
      lie = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
