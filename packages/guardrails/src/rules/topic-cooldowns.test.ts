import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState } from '../checker.js';
import { ctx, strip, T0 } from '../checker.fixture.js';
import type { Decision } from '../types.js';

describe('topic cooldowns', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    topics: [
      { id: 'upsell', keywords: ['premium plan'] },
      { id: 'survey', keywords: ['survey'] },
      { id: 'loan', keywords: ['loan offer'] },
    ],
    topicCooldowns: [
      { topic: 'upsell', turns: 3, message: 'Anything else?' },
      { topic: 'survey', minutes: 10, maxPerConversation: 2 },
      { topic: 'loan', maxPerPersonPerDay: 1, action: 'end', message: 'Goodbye.' },
    ],
  });
  function run(steps: { user?: boolean; text: string; at?: number }[], state = initialGuardrailState(T0)) {
    let s = state;
    const out: Decision[] = [];
    for (const step of steps) {
      const r = checker.evaluate(
        step.user === true ? { type: 'user_turn', text: step.text } : { type: 'assistant_sentence', text: step.text },
        ctx(s, step.at ?? T0),
      );
      s = r.state;
      if (step.user !== true) out.push(r.decision);
    }
    return { decisions: out, state: s };
  }
  it('holds a topic back for N turns, allows it within the same turn, and lets it back once the cooldown expires', () => {
    const { decisions } = run([
      { user: true, text: 'hi' },
      { text: 'Have you seen our premium plan?' },
      { text: 'The premium plan has more minutes.' },
      { user: true, text: 'no' },
      { text: 'The premium plan is on sale.' },
      { user: true, text: 'ok' },
      { user: true, text: 'ok' },
      { user: true, text: 'ok' },
      { text: 'The premium plan is still on sale.' },
    ]);
    expect(decisions.map((d) => d.kind)).toEqual(['allow', 'allow', 'replace', 'allow']);
    expect(strip(decisions[2] as Decision)).toMatchObject({
      ruleId: 'cooldown:upsell',
      reason: 'topic "upsell" was raised 1 turn(s) ago; cooldown is 3 turns',
      text: 'Anything else?',
    });
  });
  it('holds a topic back for N minutes, then lets it back, up to the per-conversation maximum', () => {
    const { decisions } = run([
      { user: true, text: 'a', at: T0 },
      { text: 'Would you take a survey?', at: T0 },
      { user: true, text: 'b', at: T0 + 5 * 60_000 },
      { text: 'About that survey.', at: T0 + 5 * 60_000 },
      { user: true, text: 'c', at: T0 + 11 * 60_000 },
      { text: 'The survey takes a minute.', at: T0 + 11 * 60_000 },
      { user: true, text: 'd', at: T0 + 30 * 60_000 },
      { text: 'One more survey question.', at: T0 + 30 * 60_000 },
    ]);
    expect(decisions.map((d) => d.kind)).toEqual(['allow', 'replace', 'allow', 'replace']);
    expect((decisions[1] as { reason: string }).reason).toBe('topic "survey" was raised 5 minute(s) ago; cooldown is 10 minutes');
    expect((decisions[3] as { reason: string }).reason).toBe(
      'topic "survey" was already raised 2 time(s) in this conversation; the limit is 2',
    );
  });
  it('counts a topic per person per day across conversations', () => {
    const first = run([{ user: true, text: 'a' }, { text: 'We have a loan offer.' }]);
    const next = checker.evaluate({ type: 'conversation_start', direction: 'inbound' }, ctx(first.state, T0 + 3_600_000)).state;
    const second = run(
      [
        { user: true, text: 'b', at: T0 + 3_600_000 },
        { text: 'About the loan offer.', at: T0 + 3_600_000 },
      ],
      next,
    );
    expect(strip(second.decisions[0] as Decision)).toMatchObject({
      kind: 'end',
      ruleId: 'cooldown:loan',
      reason: 'topic "loan" was already raised 1 time(s) with this person in 24 hours; the limit is 1',
    });
    const tomorrow = checker.evaluate({ type: 'conversation_start', direction: 'inbound' }, ctx(first.state, T0 + 25 * 3_600_000)).state;
    expect(
      run(
        [
          { user: true, text: 'c', at: T0 + 25 * 3_600_000 },
          { text: 'About the loan offer.', at: T0 + 25 * 3_600_000 },
        ],
        tomorrow,
      ).decisions[0]?.kind,
    ).toBe('allow');
  });
});
