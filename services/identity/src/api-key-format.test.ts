import { describe, expect, it } from 'vitest';
import { API_KEY_PATTERN, generateApiKey, hashApiKey, parseApiKey, sameHash } from './api-key-format.js';

const TENANT = '0b7c1b0e-8f3a-4d55-9b1e-5f2d8f0a1c11';

describe('API key format', () => {
  it('round-trips tenant, key id and environment and matches the scanner pattern', () => {
    const k = generateApiKey(TENANT, 'live');
    expect(k.key).toMatch(API_KEY_PATTERN);
    expect(k.key.startsWith(`pk_live_${k.keyId}`)).toBe(true);
    expect(parseApiKey(k.key)).toEqual({ environment: 'live', keyId: k.keyId, tenantId: TENANT, prefix: k.prefix });
    expect(parseApiKey(generateApiKey('ffffffff-ffff-ffff-ffff-ffffffffffff', 'test').key)?.tenantId).toBe(
      'ffffffff-ffff-ffff-ffff-ffffffffffff',
    );
  });

  it('refuses a key whose checksum does not match (one character changed)', () => {
    const { key } = generateApiKey(TENANT, 'test');
    const i = 40;
    const changed = key.slice(0, i) + (key[i] === 'a' ? 'b' : 'a') + key.slice(i + 1);
    expect(parseApiKey(changed)).toBeUndefined();
    expect(parseApiKey(`${key}x`)).toBeUndefined();
    expect(parseApiKey('pk_live_short')).toBeUndefined();
  });

  it('hashes with the pepper and compares in constant time', () => {
    const { key } = generateApiKey(TENANT, 'live');
    const a = hashApiKey(Buffer.from('pepper-one-pepper-one-pepper-one'), key);
    expect(sameHash(a, hashApiKey(Buffer.from('pepper-one-pepper-one-pepper-one'), key))).toBe(true);
    expect(sameHash(a, hashApiKey(Buffer.from('pepper-two-pepper-two-pepper-two'), key))).toBe(false);
  });
});
