import { sign, type KeyObject } from 'node:crypto';
import { SESSION_TOKEN_ALG, SESSION_TOKEN_TYPE, type SessionClaims } from './claims.js';

/** SessionTokenInput is what a session token asserts besides the registered time claims. */
export interface SessionTokenInput {
  readonly issuer: string;
  readonly audience: string;
  readonly tenant: string;
  readonly agent: string;
  readonly sid: string;
  readonly jti: string;
  readonly origin?: string;
  readonly subjectRef?: string;
  readonly ttlSeconds: number;
  /** nowSeconds defaults to the current time. */
  readonly nowSeconds?: number;
}

/** signSessionToken signs a session token with an Ed25519 private key under the given kid. */
export function signSessionToken(
  privateKey: KeyObject,
  kid: string,
  input: SessionTokenInput,
): Promise<{ token: string; claims: SessionClaims }> {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519')
    throw new TypeError('session tokens are signed with an Ed25519 private key');
  const now = input.nowSeconds ?? Math.floor(Date.now() / 1000);
  const claims: SessionClaims = {
    iss: input.issuer,
    aud: input.audience,
    sub: input.subjectRef !== undefined && input.subjectRef !== '' ? input.subjectRef : `session:${input.sid}`,
    tenant: input.tenant,
    agent: input.agent,
    sid: input.sid,
    jti: input.jti,
    ...(input.origin !== undefined && input.origin !== '' ? { origin: input.origin } : {}),
    ...(input.subjectRef !== undefined && input.subjectRef !== '' ? { subject_ref: input.subjectRef } : {}),
    iat: now,
    nbf: now,
    exp: now + input.ttlSeconds,
  };
  // A compact JWS (RFC 7515) signed with one synchronous node:crypto Ed25519 signature, as the
  // verifier checks it: jose's SignJWT goes through WebCrypto's asynchronous job queue, a thread
  // pool round trip per token on the CreateSession path. Interop with jose: signer.test.ts.
  const header = Buffer.from(JSON.stringify({ alg: SESSION_TOKEN_ALG, typ: SESSION_TOKEN_TYPE, kid })).toString('base64url');
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signingInput = `${header}.${payload}`;
  const signature = sign(null, Buffer.from(signingInput), privateKey).toString('base64url');
  return Promise.resolve({ token: `${signingInput}.${signature}`, claims });
}
