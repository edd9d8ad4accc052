import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, CHAIN_VERSION, eventHash, GENESIS_HASH, type ChainEvent } from './chain.js';

// The hash as the chain defines it: SHA-256 over RFC 8785 of every field but `hash`, plus v.
function definedHash(event: object): string {
  const { hash: _ignored, ...fields } = event as { hash?: unknown };
  return createHash('sha256')
    .update(canonicalJson({ v: CHAIN_VERSION, ...fields }), 'utf8')
    .digest('hex');
}

const base: Omit<ChainEvent, 'hash'> = {
  tenantId: '0190a0b1-0000-7000-8000-000000000001',
  seq: 42,
  id: '0190a0b1-0000-7000-8000-0000000000aa',
  occurredAt: '2026-12-02T05:00:00.000Z',
  recordedAt: '2026-12-02T05:00:00.123Z',
  actorKind: 'member',
  actorId: 'mem_ü"\\\n',
  action: 'agent.update',
  targetType: 'agent',
  targetId: 'agt_😀\u2028',
  outcome: 'success',
  description: { z: [1, 2.5, -0, 1e21, null, true], a: { é: 'x', B: '\u001f' }, '': 'empty' },
  sourceAddress: '198.51.100.7',
  userAgent: 'ua',
  traceId: '',
  prevHash: GENESIS_HASH,
};

describe('eventHash', () => {
  it('gives the hash the chain has always had for an event (a vector computed before the field-by-field form)', () => {
    expect(eventHash(base)).toBe('18f5984f9ad04aa710e64314d781a9f878b89e3ec8e645a716117dcc5353ab46');
    expect(eventHash({ ...base, hash: 'ignored' })).toBe('18f5984f9ad04aa710e64314d781a9f878b89e3ec8e645a716117dcc5353ab46');
  });

  it('hashes every field as RFC 8785 canonical JSON does, whatever text and numbers the event holds', () => {
    const texts = [
      '',
      'plain',
      'quote " and \\ backslash',
      'control \u0000\u0007\b\f\n\r\t\u001f',
      'é ü 中文 😀',
      '\u2028\u2029',
      '</script>',
    ];
    for (const [i, text] of texts.entries()) {
      const e = {
        ...base,
        seq: i + 1,
        actorId: text,
        targetId: `t${text}`,
        sourceAddress: text,
        userAgent: text,
        description: { [text]: text, n: [i, -i, i / 3, 1e-7, 123456789012345680000], nested: { b: [text], a: { c: null } } },
      };
      expect(eventHash(e)).toBe(definedHash(e));
    }
  });

  it('hashes an event with a field more, a field missing or a field of another type as the definition does', () => {
    const { traceId: _t, ...missing } = base;
    const cases: object[] = [
      { ...base, type: 'event' },
      missing,
      { ...base, traceId: undefined },
      { ...base, seq: '42' },
      { ...base, description: ['a'] },
      { ...base, description: null },
      { ...base, actorId: 7 },
    ];
    for (const e of cases) expect(eventHash(e as ChainEvent)).toBe(definedHash(e));
    expect(eventHash({ ...base, type: 'event' } as Omit<ChainEvent, 'hash'>)).not.toBe(eventHash(base));
  });

  it('refuses a lone surrogate as canonical JSON does', () => {
    expect(() => eventHash({ ...base, actorId: 'a\ud800' })).toThrow(/surrogate/i);
    expect(() => eventHash({ ...base, description: { k: '\udc00' } })).toThrow(/surrogate/i);
  });
});
