import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { exportJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CLOCK_SKEW_SECONDS, SESSION_TOKEN_TYPE } from './claims.js';
import { SessionTokenError, type SessionTokenRejection } from './errors.js';
import { JwksCache } from './jwks.js';
import { signSessionToken, type SessionTokenInput } from './signer.js';
import { SessionTokenVerifier } from './verifier.js';

const ISS = 'parley:identity';
const AUD = 'parley:voice-orchestrator';
const TENANT = '0b7c1b0e-8f3a-4d55-9b1e-5f2d8f0a1c11';
const OTHER_TENANT = '6a1f3c2d-1111-4e2b-8c3d-9e8f7a6b5c4d';
const KID = 'sk-2026-test';

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

describe('SessionTokenVerifier', () => {
  let privateKey: KeyObject;
  let publicKey: KeyObject;
  let now: number;
  let fetches: number;
  let verifier: SessionTokenVerifier;

  const input = (over: Partial<SessionTokenInput> = {}): SessionTokenInput => ({
    issuer: ISS,
    audience: AUD,
    tenant: TENANT,
    agent: 'b3c0e8a1-2f4d-4a6b-9c8d-7e6f5a4b3c2d',
    sid: 'c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f',
    jti: 'jti-1',
    origin: 'https://app.example.com',
    ttlSeconds: 300,
    nowSeconds: Math.floor(now / 1000),
    ...over,
  });
  const good = async (over: Partial<SessionTokenInput> = {}) => (await signSessionToken(privateKey, KID, input(over))).token;
  // claimsFor returns a valid claim set to be signed by hand with a twist.
  const claimsFor = (over: JWTPayload = {}): JWTPayload => {
    const t = Math.floor(now / 1000);
    return {
      iss: ISS,
      aud: AUD,
      sub: 'x',
      tenant: TENANT,
      agent: input().agent,
      sid: input().sid,
      jti: 'j',
      iat: t,
      nbf: t,
      exp: t + 300,
      ...over,
    };
  };
  const signed = (payload: JWTPayload, header: Record<string, unknown> = {}, key: KeyObject | Uint8Array = privateKey) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', typ: SESSION_TOKEN_TYPE, kid: KID, ...header } as never).sign(key);
  const refused = async (token: string, reason: SessionTokenRejection, expect_: Parameters<SessionTokenVerifier['verify']>[1] = {}) => {
    const err = await verifier.verify(token, expect_).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, `expected refusal (${reason})`).toBeInstanceOf(SessionTokenError);
    expect((err as SessionTokenError).reason).toBe(reason);
  };

  beforeEach(async () => {
    ({ privateKey, publicKey } = generateKeyPairSync('ed25519'));
    now = Date.UTC(2026, 10, 25, 12, 0, 0);
    fetches = 0;
    const jwk = { ...(await exportJWK(publicKey)), kid: KID, use: 'sig', alg: 'EdDSA' };
    const jwks = new JwksCache({
      source: async () => {
        fetches += 1;
        return JSON.stringify({ keys: [jwk] });
      },
      now: () => now,
    });
    verifier = new SessionTokenVerifier({ issuer: ISS, audience: AUD, jwks, now: () => now });
  });

  it('accepts a well-formed token and returns its claims', async () => {
    const claims = await verifier.verify(await good(), { tenantId: TENANT, origin: 'https://app.example.com' });
    expect(claims).toMatchObject({ tenant: TENANT, iss: ISS, aud: AUD, jti: 'jti-1', origin: 'https://app.example.com' });
  });

  it('refuses alg "none", with an empty signature as malformed and with any signature by its alg', async () => {
    const unsigned = `${b64({ alg: 'none', typ: SESSION_TOKEN_TYPE, kid: KID })}.${b64(claimsFor())}.`;
    await refused(unsigned, 'malformed');
    await refused(`${unsigned}${b64('x')}`, 'alg');
  });

  it('refuses a token signed with HS256 using the public key as the secret', async () => {
    const raw = Buffer.from((await exportJWK(publicKey)).x!, 'base64url');
    for (const secret of [raw, publicKey.export({ format: 'pem', type: 'spki' }) as string]) {
      const token = await new SignJWT(claimsFor())
        .setProtectedHeader({ alg: 'HS256', typ: SESSION_TOKEN_TYPE, kid: KID })
        .sign(typeof secret === 'string' ? new TextEncoder().encode(secret) : secret);
      await refused(token, 'alg');
    }
  });

  it('refuses an unknown kid and an injected kid, and does not refetch the JWKS for each', async () => {
    await refused(await signed(claimsFor(), { kid: 'nope' }), 'kid');
    await refused(await signed(claimsFor(), { kid: "../../../dev/null' or 1=1 --" }), 'kid');
    await refused(await signed(claimsFor(), { kid: 42 }), 'kid');
    expect(fetches).toBe(1);
  });

  it('refuses keys carried in the header: jwk, jku, x5u', async () => {
    const attacker = generateKeyPairSync('ed25519');
    const attackerJwk = await exportJWK(attacker.publicKey);
    await refused(await signed(claimsFor(), { jwk: attackerJwk }, attacker.privateKey), 'header');
    await refused(await signed(claimsFor(), { jku: 'https://evil.example/jwks.json' }), 'header');
    await refused(await signed(claimsFor(), { x5u: 'https://evil.example/cert.pem' }), 'header');
  });

  it('refuses a crit header it does not understand', async () => {
    // jose will not sign an unknown crit, so this one is signed by hand with the real key.
    const input_ = `${b64({ alg: 'EdDSA', typ: SESSION_TOKEN_TYPE, kid: KID, crit: ['exp_policy'], exp_policy: 1 })}.${b64(claimsFor())}`;
    const sig = sign(null, Buffer.from(input_), privateKey).toString('base64url');
    await refused(`${input_}.${sig}`, 'header');
  });

  it('checks every header it has not seen before, also after verifying tokens of the same kid, and refuses a header that is not an object', async () => {
    await verifier.verify(await good());
    // Same kid, same signing key, one more parameter: a new header text, checked in full.
    await refused(await signed(claimsFor(), { jku: 'https://evil.example/jwks.json' }), 'header');
    await refused(await signed(claimsFor(), { typ: 'JWT' }), 'header');
    for (const header of [[], 'EdDSA', null]) {
      const input_ = `${b64(JSON.stringify(header))}.${b64(claimsFor())}`;
      await refused(`${input_}.${sign(null, Buffer.from(input_), privateKey).toString('base64url')}`, 'malformed');
    }
    // The header seen first is still accepted.
    await verifier.verify(await good({ jti: 'jti-2' }));
  });

  it('refuses expired and not-yet-valid tokens beyond the clock skew, and accepts them within it', async () => {
    const t = Math.floor(now / 1000);
    const skew = DEFAULT_CLOCK_SKEW_SECONDS;
    await refused(await signed(claimsFor({ iat: t - 400, nbf: t - 400, exp: t - skew - 1 })), 'expired');
    await expect(verifier.verify(await signed(claimsFor({ iat: t - 400, nbf: t - 400, exp: t - skew + 5 })))).resolves.toBeDefined();
    await refused(await signed(claimsFor({ iat: t, nbf: t + skew + 5, exp: t + 300 })), 'not_yet_valid');
    await expect(verifier.verify(await signed(claimsFor({ iat: t, nbf: t + skew - 5, exp: t + 300 })))).resolves.toBeDefined();
  });

  it('re-checks expiry on a cached token', async () => {
    const token = await good();
    await verifier.verify(token);
    now += (300 + DEFAULT_CLOCK_SKEW_SECONDS + 1) * 1000;
    await refused(token, 'expired');
  });

  it('refuses a wrong issuer or audience', async () => {
    await refused(await signed(claimsFor({ iss: 'someone-else' })), 'issuer');
    await refused(await signed(claimsFor({ aud: 'parley:edge' })), 'audience');
  });

  it('refuses a token without exp, and one living longer than 15 minutes', async () => {
    const { exp: _exp, ...noExp } = claimsFor();
    await refused(await signed(noExp), 'claims');
    const t = Math.floor(now / 1000);
    await refused(await signed(claimsFor({ exp: t + 3600 })), 'claims');
  });

  it('refuses a tampered payload and a tampered signature', async () => {
    const [h, p, s] = (await good()).split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    await refused(`${h}.${b64({ ...payload, tenant: OTHER_TENANT })}.${s}`, 'signature');
    const sig = Buffer.from(s, 'base64url');
    sig[0] = sig[0]! ^ 0x01;
    await refused(`${h}.${p}.${sig.toString('base64url')}`, 'signature');
  });

  it('refuses a validly signed token whose payload is not a JSON object, or whose audience is a list', async () => {
    const header = b64({ alg: 'EdDSA', typ: SESSION_TOKEN_TYPE, kid: KID });
    for (const body of [Buffer.from('[1,2]').toString('base64url'), Buffer.from('not json').toString('base64url')]) {
      const input = `${header}.${body}`;
      await refused(`${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`, 'malformed');
    }
    await refused(await signed(claimsFor({ aud: [AUD, 'parley:edge'] })), 'audience');
  });

  it("refuses a token for another tenant's session", async () => {
    await refused(await good(), 'tenant', { tenantId: OTHER_TENANT });
  });

  it('refuses a token for another origin', async () => {
    await refused(await good(), 'origin', { origin: 'https://evil.example' });
  });

  it('refuses whitespace, padding or any character outside base64url before decoding, even for a token it has verified', async () => {
    const token = await good();
    await verifier.verify(token);
    const [h, p, s] = token.split('.') as [string, string, string];
    const variants = [
      `${token}\n`,
      `${token} `,
      ` ${token}`,
      `${token}\r\n`,
      `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`,
      `${h}.${p}.${s.slice(0, 10)}\n${s.slice(10)}`,
      `${h}.${p}.${s.slice(0, 10)}\t${s.slice(10)}`,
      `${h}.${p}.${s}=`,
      `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}+/`,
      `${h} .${p}.${s}`,
      `${h}.${p}.${s}.`,
      `${h}..${s}`,
      `${token}\u0000`,
    ];
    for (const v of variants) {
      const err = await verifier.verify(v).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, JSON.stringify(v.slice(-12))).toBeInstanceOf(SessionTokenError);
      expect((err as SessionTokenError).reason).toBe('malformed');
    }
    expect(fetches).toBe(1);
  });

  it('refuses an oversized token before parsing it', async () => {
    await refused(await signed(claimsFor({ pad: 'x'.repeat(5000) })), 'size');
  });

  it('picks up a rotated key by refreshing the JWKS for a new kid', async () => {
    const next = generateKeyPairSync('ed25519');
    const keys = [
      { ...(await exportJWK(publicKey)), kid: KID },
      { ...(await exportJWK(next.publicKey)), kid: 'sk-next' },
    ];
    let served = keys.slice(0, 1);
    const jwks = new JwksCache({ source: async () => ({ keys: served }), now: () => now, minRefreshIntervalMs: 5_000 });
    const v = new SessionTokenVerifier({ issuer: ISS, audience: AUD, jwks, now: () => now });
    await v.verify(await good());
    served = keys;
    now += 6_000;
    const rotated = (await signSessionToken(next.privateKey, 'sk-next', input())).token;
    await expect(v.verify(rotated)).resolves.toMatchObject({ tenant: TENANT });
  });

  it('refuses a remembered token once its key is withdrawn from the JWKS and the set is refreshed', async () => {
    let served: JWK[] = [{ ...(await exportJWK(publicKey)), kid: KID }];
    const jwks = new JwksCache({ source: async () => ({ keys: served }), now: () => now, ttlMs: 5_000, minRefreshIntervalMs: 1_000 });
    const v = new SessionTokenVerifier({ issuer: ISS, audience: AUD, jwks, now: () => now });
    const token = await good();
    await v.verify(token);
    served = [];
    // Within the set's lifetime the remembered token still verifies (the documented bound)...
    now += 4_000;
    await expect(v.verify(token)).resolves.toMatchObject({ tenant: TENANT });
    // ...and past it the refresh drops the key, so the token is refused like any other.
    now += 2_000;
    const err = await v.verify(token).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SessionTokenError);
    expect((err as SessionTokenError).reason).toBe('kid');
  });
});
