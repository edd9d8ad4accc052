import { describe, expect, it } from 'vitest';
import { clientAddress, parseTrustedProxies } from './client-address.js';
import { ConfigError } from './config.js';

describe('clientAddress', () => {
  const ingress = parseTrustedProxies('10.0.0.0/8, fd00::/8,192.0.2.1');

  it('ignores X-Forwarded-For unless the TCP peer is a trusted proxy', () => {
    expect(clientAddress('203.0.113.5', '198.51.100.1', ingress)).toBe('203.0.113.5');
    expect(clientAddress('203.0.113.5', '198.51.100.1', parseTrustedProxies(''))).toBe('203.0.113.5');
    expect(clientAddress('10.1.2.3', undefined, ingress)).toBe('10.1.2.3');
  });

  it('takes the right-most address that is not a trusted proxy', () => {
    expect(clientAddress('10.1.2.3', '198.51.100.1', ingress)).toBe('198.51.100.1');
    expect(clientAddress('::ffff:10.1.2.3', 'spoofed, 1.1.1.1 , 198.51.100.1, 10.9.9.9', ingress)).toBe('198.51.100.1');
    expect(clientAddress('fd00::1', ['1.1.1.1', '2001:db8::7, 192.0.2.1'], ingress)).toBe('2001:db8::7');
  });

  it('stops at a malformed hop, and answers the left-most proxy when every hop is trusted', () => {
    expect(clientAddress('10.1.2.3', '198.51.100.1, not-an-ip', ingress)).toBe('10.1.2.3');
    expect(clientAddress('10.1.2.3', '10.0.0.9, 10.0.0.8', ingress)).toBe('10.0.0.9');
  });

  it('refuses a range that is not a CIDR, naming the variable', () => {
    for (const bad of ['10.0.0.0/33', 'ingress.local', '10.0.0.0/8/1', '::1/129', '10.0.0.0/']) {
      expect(() => parseTrustedProxies(bad, 'PARLEY_X_PROXIES'), bad).toThrow(ConfigError);
      expect(() => parseTrustedProxies(bad, 'PARLEY_X_PROXIES'), bad).toThrow(/PARLEY_X_PROXIES/);
    }
    expect(parseTrustedProxies('').cidrs).toEqual([]);
    expect(parseTrustedProxies('127.0.0.1/32').has('::ffff:127.0.0.1')).toBe(true);
  });

  it('answers the same for an address asked again, also after more addresses than it remembers', () => {
    const proxies = parseTrustedProxies('10.0.0.0/8');
    // More distinct addresses than the remembered answers (1,024): the memory is cleared, never wrong.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 1_500; i++) {
        expect(proxies.has(`10.0.${i >> 8}.${i & 255}`)).toBe(true);
        expect(proxies.has(`11.0.${i >> 8}.${i & 255}`)).toBe(false);
        expect(proxies.has(`::ffff:10.0.${i >> 8}.${i & 255}`)).toBe(true);
      }
    }
    expect(proxies.has('not-an-ip')).toBe(false);
    expect(proxies.has('not-an-ip')).toBe(false);
    expect(parseTrustedProxies('').has('10.0.0.1')).toBe(false);
  });
});
