// toNewEvent's checks of an event's free-text fields: a NUL or a lone UTF-16 surrogate in any of
// them is refused as INVALID_ARGUMENT naming the field (Postgres text refuses NUL, and a lone
// surrogate does not survive UTF-8, so the stored event would not hash to what was linked);
// well-formed text, astral characters included, passes unchanged.
import { randomUUID } from 'node:crypto';
import { toNewEvent } from '@parley/audit';
import { InvalidArgumentError } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { event } from './fixture.js';

const tenant = randomUUID();

function refusal(overrides: Parameters<typeof event>[1]): InvalidArgumentError {
  try {
    toNewEvent(event(tenant, overrides), 3);
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('the event was accepted');
}

describe('toNewEvent free-text fields', () => {
  const fields = [
    ['actorId', 'actor_id'],
    ['targetId', 'target_id'],
    ['sourceAddress', 'source_address'],
    ['userAgent', 'user_agent'],
  ] as const;
  const bad = [
    ['a lone high surrogate', 'agent-\ud83d'],
    ['a lone low surrogate', '\ude00-agent'],
    ['surrogates in the wrong order', 'x\ude00\ud83dy'],
    ['a NUL', 'agent\u0000'],
  ] as const;

  for (const [field, wire] of fields)
    for (const [what, value] of bad)
      it(`refuses ${what} in ${wire} as INVALID_ARGUMENT naming the field and event`, () => {
        const err = refusal({ [field]: value });
        expect(err.message).toBe(`events[3]: ${wire} must not contain NUL or lone UTF-16 surrogates (send well-formed UTF-8 text)`);
      });

  it('refuses a lone surrogate in the description as before', () => {
    expect(refusal({ description: { note: 'x\ud800' } }).message).toContain('description must not contain NUL or lone surrogates');
  });

  it('keeps well-formed text, astral characters and non-ASCII included, exactly', () => {
    const e = toNewEvent(
      event(tenant, { actorId: 'mem_😀_é', targetId: '𝄞-target', userAgent: 'agent/1.0 (Ünïcode 😀)', sourceAddress: '' }),
      0,
    );
    expect(e).toMatchObject({ actorId: 'mem_😀_é', targetId: '𝄞-target', userAgent: 'agent/1.0 (Ünïcode 😀)', sourceAddress: '' });
  });
});
