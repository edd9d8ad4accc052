import { SignJWT } from 'jose';
import type { KeyObject } from 'node:crypto';
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
export async function signSessionToken(
  privateKey: KeyObject,
  kid: string,
  input: SessionTokenInput,
): Promise<{ token: string; claims: SessionClaims }> {
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
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: SESSION_TOKEN_ALG, typ: SESSION_TOKEN_TYPE, kid })
    .sign(privateKey);
  return { token, claims };
}
