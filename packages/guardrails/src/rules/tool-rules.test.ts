import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState } from '../checker.js';
import { ctx, strip, T0 } from '../checker.fixture.js';
import type { GuardrailEvent } from '../types.js';

describe('tool calls', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    tools: {
      maxCallsPerTurn: 2,
      allowed: [
        {
          name: 'lookup_order',
          scopes: ['orders:read'],
          argumentsSchema: {
            type: 'object',
            properties: { orderId: { type: 'string', pattern: '^[0-9]{6}$' } },
            required: ['orderId'],
            additionalProperties: false,
          },
          hosts: ['api.shop.example'],
        },
        { name: 'refund', scopes: ['orders:write'], requireConfirmation: true },
      ],
    },
  });
  const call = (event: Partial<Extract<GuardrailEvent, { type: 'tool_call' }>>, state = initialGuardrailState(T0)) =>
    checker.evaluate({ type: 'tool_call', name: 'lookup_order', arguments: { orderId: '123456' }, ...event }, ctx(state));
  it.each([
    ['an allowed call', {}, { kind: 'allow' }],
    [
      'an unknown tool',
      { name: 'delete_everything' },
      { kind: 'block_tool', ruleId: 'tool:delete_everything', reason: 'tool "delete_everything" is not among the policy\'s allowed tools' },
    ],
    [
      'arguments against the schema',
      { arguments: { orderId: 'x' } },
      {
        kind: 'block_tool',
        ruleId: 'tool:lookup_order',
        reason: 'arguments of tool "lookup_order" do not match its schema: /orderId must match pattern "^[0-9]{6}$"',
      },
    ],
    ['an extra argument', { arguments: { orderId: '123456', admin: true } }, { kind: 'block_tool', ruleId: 'tool:lookup_order' }],
    [
      'a scope it does not have',
      { scopes: ['orders:write'] },
      { kind: 'block_tool', reason: 'tool "lookup_order" may not use scope(s) orders:write' },
    ],
    [
      'a host it may not reach',
      { host: 'evil.example' },
      { kind: 'block_tool', reason: 'tool "lookup_order" may not reach host evil.example' },
    ],
    [
      'a call that needs confirmation',
      { name: 'refund', arguments: {} },
      { kind: 'block_tool', ruleId: 'tool:refund', needsConfirmation: true, reason: 'tool "refund" needs the user\'s confirmation first' },
    ],
    ['a confirmed call', { name: 'refund', arguments: {}, confirmed: true }, { kind: 'allow' }],
  ])('%s', (_name, event, expected) => {
    expect(strip(call(event as never).decision)).toMatchObject(expected);
  });
  it('runs schema patterns on RE2: a catastrophic pattern on long arguments completes, and a backreference is refused by path', () => {
    const c = compileGuardrailPolicy({
      version: 2,
      tools: {
        allowed: [{ name: 'note', argumentsSchema: { type: 'object', properties: { text: { type: 'string', pattern: '^(a+)+$' } } } }],
      },
    });
    const t0 = performance.now();
    const r = c.evaluate(
      { type: 'tool_call', name: 'note', arguments: { text: `${'a'.repeat(50_000)}!` } },
      ctx(initialGuardrailState(T0)),
    );
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(strip(r.decision)).toMatchObject({
      kind: 'block_tool',
      reason: 'arguments of tool "note" do not match its schema: /text must match pattern "^(a+)+$"',
    });
    expect(c.evaluate({ type: 'tool_call', name: 'note', arguments: { text: 'aaa' } }, ctx(initialGuardrailState(T0))).decision.kind).toBe(
      'allow',
    );
    expect(() =>
      compileGuardrailPolicy({ version: 2, tools: { allowed: [{ name: 'x', argumentsSchema: { type: 'string', pattern: '(a)\\1' } }] } }),
    ).toThrow(/^tools\.allowed\.0\.argumentsSchema: is not a valid JSON schema/);
  });
  it('limits calls per turn and resets at the next user turn', () => {
    let s = initialGuardrailState(T0);
    const kinds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = call({}, s);
      s = r.state;
      kinds.push(r.decision.kind);
    }
    expect(kinds).toEqual(['allow', 'allow', 'block_tool']);
    s = checker.evaluate({ type: 'user_turn', text: 'again' }, ctx(s)).state;
    expect(call({}, s).decision.kind).toBe('allow');
  });
});
