import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, GuardrailInputError, initialGuardrailState } from '../checker.js';
import { ctx, strip } from '../checker.fixture.js';
import type { GuardrailEvent } from '../types.js';

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
