import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, GuardrailInputError, initialGuardrailState, type GuardrailChecker } from './checker.js';
import type { Decision, EvaluationContext, GuardrailEvent, GuardrailState } from './types.js';

const T0 = Date.parse('2026-12-01T10:00:00Z'); // a Tuesday

function ctx(state: GuardrailState, now: number = T0, extra: Partial<EvaluationContext> = {}): EvaluationContext {
  return { now, state, timeZone: 'Europe/Berlin', tenantId: 't1', ...extra };
}

function strip(d: Decision): Record<string, unknown> {
  const { kind, ...rest } = d as Decision & Record<string, unknown>;
  return { kind, ...rest };
}

const base = {
  version: 2,
  topics: [
    { id: 'refunds', keywords: ['refund', 'money back'] },
    { id: 'competitors', keywords: ['acme corp'], patterns: ['\\bglobex\\w*'] },
  ],
  noGoZones: [
    {
      id: 'medical',
      description: 'no medical advice',
      phrases: ['medical advice', 'you should take'],
      patterns: ['\\bdiagnos[ei]s\\b'],
      action: 'replace',
      response: 'I cannot give medical advice.',
    },
    { id: 'rivals', topics: ['competitors'], action: 'escalate', target: 'supervisor' },
    { id: 'threats', phrases: ['i will sue'], appliesTo: ['user'], action: 'handoff', target: 'legal-queue' },
    {
      id: 'abuse',
      patterns: ['\\b(?:idiot|moron)s?\\b'],
      appliesTo: ['user', 'assistant'],
      action: 'end',
      response: 'This conversation has ended.',
    },
    { id: 'redos', patterns: ['(a+)+$', '(x+x+)+y'], action: 'replace', response: 'No.' },
  ],
} as const;

describe('no-go zones', () => {
  const checker = compileGuardrailPolicy(base);
  const cases: { name: string; event: GuardrailEvent; expect: Record<string, unknown> }[] = [
    {
      name: 'a phrase, any case and spacing',
      event: { type: 'assistant_sentence', text: 'Here is some MEDICAL   advice.' },
      expect: {
        kind: 'replace',
        ruleId: 'no_go:medical',
        reason: 'the assistant entered no-go zone "medical" (no medical advice)',
        text: 'I cannot give medical advice.',
      },
    },
    {
      name: 'a pattern',
      event: { type: 'assistant_sentence', text: 'The diagnosis is clear.' },
      expect: { kind: 'replace', ruleId: 'no_go:medical' },
    },
    {
      name: 'a phrase needs whole words',
      event: { type: 'assistant_sentence', text: 'Premedical advices are not the same.' },
      expect: { kind: 'allow' },
    },
    {
      name: 'a topic keyword',
      event: { type: 'assistant_sentence', text: 'Acme Corp sells that too.' },
      expect: { kind: 'escalate', ruleId: 'no_go:rivals', reason: 'the assistant entered no-go zone "rivals"', target: 'supervisor' },
    },
    {
      name: 'a topic pattern',
      event: { type: 'assistant_sentence', text: 'Try GlobexCorp.' },
      expect: { kind: 'escalate', ruleId: 'no_go:rivals' },
    },
    {
      name: 'a user-only zone ignores the assistant',
      event: { type: 'assistant_sentence', text: 'I will sue nobody.' },
      expect: { kind: 'allow' },
    },
    {
      name: 'a user-only zone on a user turn',
      event: { type: 'user_turn', text: 'I will sue you!' },
      expect: { kind: 'handoff', ruleId: 'no_go:threats', reason: 'the user entered no-go zone "threats"', target: 'legal-queue' },
    },
    {
      name: 'an end zone',
      event: { type: 'user_turn', text: 'You are an idiot' },
      expect: { kind: 'end', ruleId: 'no_go:abuse', message: 'This conversation has ended.' },
    },
    { name: 'an ordinary sentence', event: { type: 'assistant_sentence', text: 'Your order ships tomorrow.' }, expect: { kind: 'allow' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { decision } = checker.evaluate(c.event, ctx(initialGuardrailState(T0)));
      expect(strip(decision)).toMatchObject(c.expect);
    });
  }

  it('evaluates a pattern that is catastrophic for a backtracking engine on 50,000 characters', () => {
    const text = `${'a'.repeat(50_000)}!`;
    const t0 = performance.now();
    const { decision } = checker.evaluate({ type: 'assistant_sentence', text }, ctx(initialGuardrailState(T0)));
    const x = `${'x'.repeat(50_000)}`;
    const second = checker.evaluate({ type: 'assistant_sentence', text: x }, ctx(initialGuardrailState(T0)));
    expect(decision.kind).toBe('allow');
    expect(second.decision.kind).toBe('allow');
    // A backtracking engine needs longer than the age of the universe here; this bound only catches a hang.
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(checker.evaluate({ type: 'assistant_sentence', text: 'aaaa' }, ctx(initialGuardrailState(T0))).decision).toMatchObject({
      kind: 'replace',
      ruleId: 'no_go:redos',
    });
  });

  it('counts policy hits in the state and never mutates the state passed in', () => {
    const s0 = initialGuardrailState(T0);
    const frozen = JSON.stringify(s0);
    const { state } = checker.evaluate({ type: 'assistant_sentence', text: 'medical advice' }, ctx(s0));
    expect(state.conversation.policyHits).toBe(1);
    expect(JSON.stringify(s0)).toBe(frozen);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});

describe('personal data', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    pii: {
      kinds: { email: { mayRepeat: true, mayAsk: true, mayStore: true }, phone: { mayAsk: true }, card_number: { routeSecure: true } },
      secureRoute: { target: 'pci-ivr', message: 'I will transfer you to our secure payment line.' },
    },
  });
  const cases: { name: string; event: GuardrailEvent; expect: Record<string, unknown> }[] = [
    {
      name: 'the assistant repeats a phone number it may not repeat',
      event: { type: 'assistant_sentence', text: 'I have +1 415 555 2671 on file.' },
      expect: {
        kind: 'redact',
        ruleId: 'pii:phone',
        reason: 'a phone number may not be said back to the caller',
        text: 'I have [phone] on file.',
      },
    },
    {
      name: 'the assistant repeats an e-mail it may repeat',
      event: { type: 'assistant_sentence', text: 'I have jane@example.com on file.' },
      expect: { kind: 'allow' },
    },
    {
      name: 'the assistant asks for a phone number it may ask for',
      event: { type: 'assistant_sentence', text: 'What is your phone number?' },
      expect: { kind: 'allow' },
    },
    {
      name: 'the assistant asks for a date of birth it may not ask for',
      event: { type: 'assistant_sentence', text: 'Could you tell me your date of birth?' },
      expect: {
        kind: 'replace',
        ruleId: 'pii:date_of_birth',
        reason: 'the assistant asked for a date of birth, which it may not ask for',
        text: "I'm not able to take that information here.",
      },
    },
    {
      name: 'the assistant asks for a card: secure path',
      event: { type: 'assistant_sentence', text: 'Please read me your card number.' },
      expect: { kind: 'handoff', ruleId: 'pii:card_number', target: 'pci-ivr', message: 'I will transfer you to our secure payment line.' },
    },
    {
      name: 'the user gives a card: secure path, and never stored',
      event: { type: 'user_turn', text: 'It is 4111-1111-1111-1111' },
      expect: { kind: 'handoff', ruleId: 'pii:card_number', reason: 'the user gave a card number, which goes through the secure path' },
    },
    {
      name: 'the user gives an SSN: redacted for storage',
      event: { type: 'user_turn', text: 'my ssn is 123-45-6789' },
      expect: {
        kind: 'redact',
        ruleId: 'pii:us_ssn',
        reason: 'a US Social Security number may not be stored or passed on',
        text: 'my ssn is [us_ssn]',
      },
    },
    {
      name: 'the user gives an e-mail it may store',
      event: { type: 'user_turn', text: 'use jane@example.com' },
      expect: { kind: 'allow' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { decision } = checker.evaluate(c.event, ctx(initialGuardrailState(T0)));
      expect(strip(decision)).toMatchObject(c.expect);
    });
  }
  it('lists the redact decision beside the secure-path handoff', () => {
    const { decisions } = checker.evaluate({ type: 'user_turn', text: 'card 4111 1111 1111 1111' }, ctx(initialGuardrailState(T0)));
    expect(decisions.map((d) => d.kind)).toEqual(['handoff', 'redact']);
  });
});

describe('escalation', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    topics: [{ id: 'cancel', keywords: ['cancel my account'] }],
    noGoZones: [{ id: 'legal', phrases: ['legal advice'], action: 'replace', response: 'I cannot give legal advice.' }],
    escalation: {
      rules: [
        { id: 'human', when: { userRequestsHuman: true }, action: 'handoff', target: 'queue:general', message: 'Connecting you now.' },
        { id: 'cancellation', when: { topics: ['cancel'], phrases: ['close my account'] }, action: 'notify', target: 'retention-team' },
        { id: 'failures', when: { failedAttempts: 2 }, action: 'handoff', target: 'queue:support' },
        { id: 'confused', when: { misunderstandings: 3 }, action: 'end', message: 'Sorry, let us try again later.' },
        { id: 'hits', when: { policyHits: 2 }, action: 'handoff', target: 'queue:review' },
      ],
    },
  });
  it.each([
    [
      'the user asks for a human',
      'Can I talk to a human please',
      {
        kind: 'handoff',
        ruleId: 'escalation:human',
        reason: 'the user asked for a human',
        target: 'queue:general',
        message: 'Connecting you now.',
      },
    ],
    [
      'a topic trigger notifies',
      'I want to cancel my account',
      { kind: 'escalate', ruleId: 'escalation:cancellation', reason: 'the user raised topic "cancel"', target: 'retention-team' },
    ],
    [
      'a phrase trigger notifies',
      'Please close my account.',
      { kind: 'escalate', ruleId: 'escalation:cancellation', reason: 'the user used an escalation phrase' },
    ],
    ['nothing to escalate', 'Where is my parcel?', { kind: 'allow' }],
  ])('%s', (_name, text, expected) => {
    expect(strip(checker.evaluate({ type: 'user_turn', text }, ctx(initialGuardrailState(T0))).decision)).toMatchObject(expected);
  });

  it('hands off after two failed turns in a row, not after two failures apart', () => {
    let s = initialGuardrailState(T0);
    const turn = (failed: boolean) => {
      const r = checker.evaluate({ type: 'user_turn', text: 'hello', failed }, ctx(s));
      s = r.state;
      return r.decision;
    };
    expect(turn(true).kind).toBe('allow');
    expect(turn(false).kind).toBe('allow');
    expect(turn(true).kind).toBe('allow');
    expect(strip(turn(true))).toMatchObject({
      kind: 'handoff',
      ruleId: 'escalation:failures',
      reason: '2 failed turns in a row (limit 2)',
      target: 'queue:support',
    });
  });

  it('ends after three misunderstandings, and every later event gets end', () => {
    let s = initialGuardrailState(T0);
    for (let i = 0; i < 2; i++) s = checker.evaluate({ type: 'user_turn', text: 'hmm', misunderstood: true }, ctx(s)).state;
    const r = checker.evaluate({ type: 'user_turn', text: 'hmm', misunderstood: true }, ctx(s));
    expect(strip(r.decision)).toMatchObject({
      kind: 'end',
      ruleId: 'escalation:confused',
      reason: '3 misunderstood turns (limit 3)',
      message: 'Sorry, let us try again later.',
    });
    expect(strip(checker.evaluate({ type: 'assistant_sentence', text: 'Hello again.' }, ctx(r.state)).decision)).toMatchObject({
      kind: 'end',
      ruleId: 'conversation_ended',
    });
  });

  it('hands off when policy hits reach the count', () => {
    let s = initialGuardrailState(T0);
    for (let i = 0; i < 2; i++) s = checker.evaluate({ type: 'assistant_sentence', text: 'Here is legal advice.' }, ctx(s)).state;
    expect(strip(checker.evaluate({ type: 'user_turn', text: 'ok' }, ctx(s)).decision)).toMatchObject({
      kind: 'handoff',
      ruleId: 'escalation:hits',
      reason: '2 policy hits (limit 2)',
    });
  });
});

describe('sleep windows, holidays and do-not-contact', () => {
  const every = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  const checker = compileGuardrailPolicy({
    version: 2,
    sleepWindows: {
      windows: [
        { days: ['fri'], start: '22:00', end: '06:00', message: 'Closed for the weekend night.' },
        { days: every, start: '00:00', end: '08:00' },
      ],
      holidays: { country: 'DE', state: 'BE' },
      message: 'We are closed.',
    },
    fatigue: {
      contactAttemptsPerDay: { limit: 2, action: 'end' },
      contactAttemptsPerWeek: { limit: 3, action: 'end', message: 'Too many attempts this week.' },
    },
  });
  const start = (
    now: string,
    timeZone = 'Europe/Berlin',
    direction: 'inbound' | 'outbound' = 'outbound',
    more: Partial<GuardrailEvent> = {},
  ) =>
    checker.evaluate(
      { type: 'conversation_start', direction, ...more } as GuardrailEvent,
      ctx(initialGuardrailState(0), Date.parse(now), { timeZone }),
    );
  it.each([
    [
      'a window that crosses midnight, after midnight',
      '2026-12-04T23:30:00Z',
      {
        kind: 'end',
        ruleId: 'sleep_window:0',
        reason: "00:30 on sat in the end user's zone Europe/Berlin is inside sleep window 22:00-06:00 (fri); no outbound attempt",
        message: 'Closed for the weekend night.',
      },
    ],
    ['a window that crosses midnight, before midnight', '2026-12-04T21:30:00Z', { kind: 'end', ruleId: 'sleep_window:0' }],
    ['the same hour on a day the window does not start', '2026-12-02T21:30:00Z', { kind: 'allow' }],
    ['DST change day: 06:30 UTC is 08:30 CEST, awake', '2026-03-29T06:30:00Z', { kind: 'allow' }],
    [
      'DST change day: 05:30 UTC is 07:30 CEST, asleep',
      '2026-03-29T05:30:00Z',
      {
        kind: 'end',
        ruleId: 'sleep_window:1',
        reason:
          "07:30 on sun in the end user's zone Europe/Berlin is inside sleep window 00:00-08:00 (mon,tue,wed,thu,fri,sat,sun); no outbound attempt",
        message: 'We are closed.',
      },
    ],
    ['the day before DST: 06:30 UTC is 07:30 CET, asleep', '2026-03-28T06:30:00Z', { kind: 'end', ruleId: 'sleep_window:1' }],
    [
      'a public holiday in the zone (Christmas)',
      '2026-12-25T12:00:00Z',
      {
        kind: 'end',
        ruleId: 'holiday',
        reason: "2026-12-25 is a public holiday in DE (end user's zone Europe/Berlin); no outbound attempt",
      },
    ],
    ['a state holiday (Berlin, Women’s Day)', '2026-03-09T12:00:00Z', { kind: 'allow' }],
    ['Berlin Women’s Day itself', '2026-03-08T12:00:00Z', { kind: 'end', ruleId: 'holiday' }],
    ['holiday by the user’s date, not UTC’s', '2026-12-24T23:30:00Z', { kind: 'end', ruleId: 'holiday' }],
  ])('%s', (_name, now, expected) => {
    expect(strip(start(now).decision)).toMatchObject(expected);
  });
  it('uses the end user’s zone: 10:00 UTC is 02:00 in Los Angeles', () => {
    expect(strip(start('2026-12-01T10:00:00Z', 'America/Los_Angeles').decision)).toMatchObject({ kind: 'end', ruleId: 'sleep_window:1' });
    expect(start('2026-12-01T10:00:00Z', 'Europe/Berlin').decision.kind).toBe('allow');
  });
  it('applies to continuing conversations', () => {
    const r = checker.evaluate({ type: 'user_turn', text: 'hi' }, ctx(initialGuardrailState(0), Date.parse('2026-12-02T02:00:00Z')));
    expect(strip(r.decision)).toMatchObject({ kind: 'end', ruleId: 'sleep_window:1' });
  });
  it('refuses an outbound attempt to a person on the do-not-contact list', () => {
    expect(strip(start('2026-12-01T10:00:00Z', 'Europe/Berlin', 'outbound', { doNotContact: true } as never).decision)).toMatchObject({
      kind: 'end',
      ruleId: 'do_not_contact',
      reason: 'the person is on the do-not-contact list; no outbound attempt',
    });
  });
  it('limits contact attempts per day and per week, counting the history', () => {
    const now = Date.parse('2026-12-01T10:00:00Z');
    const h = (hoursAgo: number) => new Date(now - hoursAgo * 3_600_000).toISOString();
    expect(
      strip(start('2026-12-01T10:00:00Z', 'Europe/Berlin', 'outbound', { contactHistory: [h(1), h(2)] } as never).decision),
    ).toMatchObject({
      kind: 'end',
      ruleId: 'fatigue:contact_attempts_per_day',
      reason: '2 contact attempt(s) in the last 24 hours reach the limit of 2',
    });
    expect(
      strip(start('2026-12-01T10:00:00Z', 'Europe/Berlin', 'outbound', { contactHistory: [h(30), h(50), h(70)] } as never).decision),
    ).toMatchObject({
      kind: 'end',
      ruleId: 'fatigue:contact_attempts_per_week',
      message: 'Too many attempts this week.',
    });
    const ok = start('2026-12-01T10:00:00Z', 'Europe/Berlin', 'outbound', { contactHistory: [h(30), h(200)] } as never);
    expect(ok.decision.kind).toBe('allow');
    expect(ok.state.person.contactAttempts).toEqual([now - 30 * 3_600_000, now]);
  });
  it('refuses an unknown time zone with the field named', () => {
    expect(() => start('2026-12-01T10:00:00Z', 'Mars/Olympus')).toThrow(GuardrailInputError);
    expect(() => start('2026-12-01T10:00:00Z', 'Mars/Olympus')).toThrow(/context\.timeZone/);
  });
});

describe('fatigue', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    fatigue: {
      maxTurns: { limit: 2, action: 'suggest_break', message: 'Shall we pause?' },
      maxDurationMinutes: { limit: 30, action: 'end', message: 'Time is up.' },
      maxMisunderstandings: { limit: 2, action: 'handoff', target: 'queue:help' },
    },
  });
  it('suggests a break past the turn limit', () => {
    let s = initialGuardrailState(T0);
    const decisions: Decision[] = [];
    for (let i = 0; i < 3; i++) {
      const r = checker.evaluate({ type: 'user_turn', text: 'more' }, ctx(s));
      s = r.state;
      decisions.push(r.decision);
    }
    expect(decisions.map((d) => d.kind)).toEqual(['allow', 'allow', 'replace']);
    expect(strip(decisions[2] as Decision)).toMatchObject({
      ruleId: 'fatigue:max_turns',
      reason: 'turn 3 exceeds the limit of 2 turns',
      text: 'Shall we pause?',
    });
  });
  it('ends at the duration limit', () => {
    const r = checker.evaluate({ type: 'user_turn', text: 'hi' }, ctx(initialGuardrailState(T0), T0 + 31 * 60_000));
    expect(strip(r.decision)).toMatchObject({
      kind: 'end',
      ruleId: 'fatigue:max_duration',
      reason: 'the conversation has lasted 31 minutes; the limit is 30',
      message: 'Time is up.',
    });
  });
  it('hands off at repeated misunderstandings', () => {
    let s = initialGuardrailState(T0);
    s = checker.evaluate({ type: 'user_turn', text: '?', misunderstood: true }, ctx(s)).state;
    const r = checker.evaluate({ type: 'user_turn', text: '?', misunderstood: true }, ctx(s));
    expect(strip(r.decision)).toMatchObject({ kind: 'handoff', ruleId: 'fatigue:max_misunderstandings', target: 'queue:help' });
  });
});

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

describe('retrieval', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    retrieval: { allowedSources: ['kb', 'faq'], allowedDataClasses: ['public'], maxPassages: 2 },
  });
  it('drops passages of another tenant, of a forbidden source or class, and past the maximum, each with its reason', () => {
    const passages = [
      { id: 'p1', tenantId: 't1', source: 'kb', dataClass: 'public' },
      { id: 'p2', tenantId: 't2', source: 'kb', dataClass: 'public' },
      { id: 'p3', tenantId: 't1', source: 'crm', dataClass: 'public' },
      { id: 'p4', tenantId: 't1', source: 'faq', dataClass: 'internal' },
      { id: 'p5', tenantId: 't1', source: 'faq', dataClass: 'public' },
      { id: 'p6', tenantId: 't1', source: 'kb', dataClass: 'public' },
    ];
    const { decisions } = checker.evaluate({ type: 'retrieval', passages }, ctx(initialGuardrailState(T0)));
    expect(decisions.map(strip)).toEqual([
      {
        kind: 'drop_passage',
        ruleId: 'retrieval:tenant',
        reason: 'passages of another tenant (or with no tenant in the context) are never used',
        passageIds: ['p2'],
      },
      { kind: 'drop_passage', ruleId: 'retrieval:source', reason: 'source not among the allowed sources (kb, faq)', passageIds: ['p3'] },
      {
        kind: 'drop_passage',
        ruleId: 'retrieval:data_class',
        reason: 'data class not among the allowed classes (public)',
        passageIds: ['p4'],
      },
      { kind: 'drop_passage', ruleId: 'retrieval:max_passages', reason: 'more than 2 passages', passageIds: ['p6'] },
    ]);
  });
  it('drops every passage when the context names no tenant', () => {
    const r = checker.evaluate(
      { type: 'retrieval', passages: [{ id: 'a', tenantId: 't1', source: 'kb', dataClass: 'public' }] },
      { now: T0, state: initialGuardrailState(T0) },
    );
    expect(strip(r.decision)).toMatchObject({ kind: 'drop_passage', ruleId: 'retrieval:tenant', passageIds: ['a'] });
  });
});

describe('classifier hook', () => {
  const checker: GuardrailChecker = compileGuardrailPolicy({
    version: 2,
    noGoZones: [
      {
        id: 'self_harm',
        classifier: { endpoint: 'https://classifier.example/v1', timeoutMs: 50, onFailure: 'fail_closed' },
        action: 'handoff',
        target: 'crisis-line',
        appliesTo: ['user'],
      },
      {
        id: 'tone',
        classifier: { endpoint: 'https://tone.example/v1', timeoutMs: 50, onFailure: 'fail_open' },
        action: 'replace',
        response: 'Let me rephrase.',
      },
    ],
  });
  it('asks the hook and applies the zone when it says yes', async () => {
    const seen: string[] = [];
    const r = await checker.evaluateWithClassifiers(
      { type: 'user_turn', text: 'I feel awful' },
      ctx(initialGuardrailState(T0)),
      async (req) => {
        seen.push(`${req.zoneId}@${req.endpoint}`);
        return true;
      },
    );
    expect(seen).toEqual(['self_harm@https://classifier.example/v1']);
    expect(strip(r.decision)).toMatchObject({ kind: 'handoff', ruleId: 'no_go:self_harm', target: 'crisis-line' });
  });
  it('fails closed on a timeout and open where declared', async () => {
    const never = () => new Promise<boolean>(() => undefined);
    const user = await checker.evaluateWithClassifiers({ type: 'user_turn', text: 'hi' }, ctx(initialGuardrailState(T0)), never);
    expect(strip(user.decision)).toMatchObject({
      kind: 'handoff',
      ruleId: 'no_go:self_harm',
      reason: 'the classifier did not answer within 50 ms (fail closed) for no-go zone "self_harm"',
    });
    const assistant = await checker.evaluateWithClassifiers(
      { type: 'assistant_sentence', text: 'Hello.' },
      ctx(initialGuardrailState(T0)),
      () => Promise.reject(new Error('down')),
    );
    expect(assistant.decision.kind).toBe('allow');
  });
});
