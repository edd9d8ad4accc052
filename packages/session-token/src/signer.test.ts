import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { signSessionToken } from './signer.js';

const input = {
  issuer: 'parley:identity',
  audience: 'parley:voice-orchestrator',
  tenant: randomUUID(),
  agent: randomUUID(),
  sid: randomUUID(),
  jti: 'jti-1',
  origin: 'https://app.example.com',
  ttlSeconds: 300,
};

describe('signSessionToken', () => {
  it('makes a compact EdDSA JWS that jose verifies with the public key, with the header and claims asked for', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const { token, claims } = await signSessionToken(privateKey, 'sk-1', input);
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', typ: 'parley-session+jwt', kid: 'sk-1' });
    const { payload } = await jwtVerify(token, publicKey, { issuer: input.issuer, audience: input.audience, algorithms: ['EdDSA'] });
    expect(payload).toEqual(claims);
    expect(payload).toMatchObject({ tenant: input.tenant, agent: input.agent, sid: input.sid, jti: 'jti-1', origin: input.origin });
    expect(claims.exp - claims.iat).toBe(300);
  });

  it('is refused by jose under another key', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const other = generateKeyPairSync('ed25519').publicKey;
    const { token } = await signSessionToken(privateKey, 'sk-1', input);
    await expect(jwtVerify(token, other)).rejects.toThrow(/signature/);
  });

  it('refuses to sign with anything but an Ed25519 private key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    expect(() => signSessionToken(rsa, 'sk-1', input)).toThrow(/Ed25519/);
    const { publicKey } = generateKeyPairSync('ed25519');
    expect(() => signSessionToken(publicKey, 'sk-1', input)).toThrow(/Ed25519/);
  });
});
