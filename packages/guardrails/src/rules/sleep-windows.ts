// Sleep windows and public holidays, in the end user's own time zone.
import { createRequire } from 'node:module';
import type Holidays from 'date-holidays';
import { GuardrailPolicyError } from '../policy.js';
import type { GuardrailPolicy } from '../policy-schema.js';
import type { Decision } from '../types.js';
import { GuardrailInputError } from './evaluation.js';

const DAY_INDEX: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

interface LocalTime {
  readonly day: number;
  readonly minutes: number;
  readonly ymd: string;
  readonly year: number;
}

/** SleepCheck says whether a conversation may start or go on at `now` in the end user's zone. */
export type SleepCheck = (now: number, zone: string | undefined, when: 'inbound' | 'outbound' | 'continuing') => Decision | undefined;

function hhmmToMinutes(s: string): number {
  return Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
}

// date-holidays and its calendars are about a hundred modules (a tenth of a second of CPU to load),
// needed only by a policy with a holiday calendar: loaded then, not by every process that imports
// the guardrails (tenant-data, integrations, the orchestrator). Its CommonJS build is the same
// library, and loads synchronously, so compiling a policy stays synchronous.
let holidaysClass: typeof Holidays | undefined;
function loadHolidays(): typeof Holidays {
  return (holidaysClass ??= createRequire(import.meta.url)('date-holidays') as typeof Holidays);
}

function compileHolidays(h: NonNullable<NonNullable<GuardrailPolicy['sleepWindows']>['holidays']>): Holidays {
  const HolidayCalendar = loadHolidays();
  const hd = new HolidayCalendar({ types: h.types });
  const countries = hd.getCountries() as Record<string, string>;
  if (countries[h.country] === undefined)
    throw new GuardrailPolicyError(['sleepWindows', 'holidays', 'country'], `no holiday calendar for "${h.country}"`);
  if (h.state !== undefined && (hd.getStates(h.country) as Record<string, string> | undefined)?.[h.state] === undefined) {
    throw new GuardrailPolicyError(['sleepWindows', 'holidays', 'state'], `no holiday calendar for "${h.country}-${h.state}"`);
  }
  if (
    h.region !== undefined &&
    h.state !== undefined &&
    (hd.getRegions(h.country, h.state) as Record<string, string> | undefined)?.[h.region] === undefined
  ) {
    throw new GuardrailPolicyError(['sleepWindows', 'holidays', 'region'], `no holiday calendar for region "${h.region}"`);
  }
  hd.init(h.country, h.state ?? '', h.region ?? '', { types: h.types });
  return hd;
}

/** compileSleepWindows loads the holiday calendar (throws GuardrailPolicyError for one that does not exist) and returns the check. */
export function compileSleepWindows(policy: GuardrailPolicy): SleepCheck {
  const sleep = policy.sleepWindows;
  const holidays = sleep?.holidays === undefined ? undefined : compileHolidays(sleep.holidays);
  const holidayYears = new Map<number, Set<string>>();
  const holidayDates = (year: number): Set<string> => {
    let set = holidayYears.get(year);
    if (set === undefined) {
      set = new Set(
        (holidays?.getHolidays(year) ?? []).filter((h) => sleep?.holidays?.types.includes(h.type) ?? false).map((h) => h.date.slice(0, 10)),
      );
      holidayYears.set(year, set);
    }
    return set;
  };
  const formatters = new Map<string, Intl.DateTimeFormat>();
  const localTime = (zone: string, now: number): LocalTime => {
    let f = formatters.get(zone);
    if (f === undefined) {
      try {
        f = new Intl.DateTimeFormat('en-US', {
          timeZone: zone,
          hourCycle: 'h23',
          weekday: 'short',
          year: 'numeric',
          month: '2-digit',
          day: '2-digit',
          hour: '2-digit',
          minute: '2-digit',
        });
      } catch {
        throw new GuardrailInputError('context.timeZone', `"${zone}" is not an IANA time zone such as Europe/Berlin`);
      }
      formatters.set(zone, f);
    }
    const p: Record<string, string> = {};
    for (const part of f.formatToParts(now)) p[part.type] = part.value;
    return {
      day: DAY_INDEX[p.weekday ?? ''] ?? 0,
      minutes: Number(p.hour) * 60 + Number(p.minute),
      ymd: `${p.year}-${p.month}-${p.day}`,
      year: Number(p.year),
    };
  };

  return (now, zone, when) => {
    if (sleep === undefined || !sleep.applyTo.includes(when)) return undefined;
    const tz = zone ?? sleep.fallbackTimeZone ?? 'UTC';
    const local = localTime(tz, now);
    const label =
      when === 'outbound' ? 'no outbound attempt' : when === 'inbound' ? 'no new conversation' : 'the conversation may not continue';
    if (holidays !== undefined && holidayDates(local.year).has(local.ymd)) {
      return {
        kind: 'end',
        ruleId: 'holiday',
        reason: `${local.ymd} is a public holiday in ${sleep.holidays?.country ?? ''} (end user's zone ${tz}); ${label}`,
        message: sleep.message,
      };
    }
    for (let i = 0; i < sleep.windows.length; i++) {
      const w = sleep.windows[i] as NonNullable<GuardrailPolicy['sleepWindows']>['windows'][number];
      const start = hhmmToMinutes(w.start);
      const end = hhmmToMinutes(w.end);
      const today = w.days.includes(DAY_NAMES[local.day] as never);
      const yesterday = w.days.includes(DAY_NAMES[(local.day + 6) % 7] as never);
      const inside =
        start < end
          ? today && local.minutes >= start && local.minutes < end
          : (today && local.minutes >= start) || (yesterday && local.minutes < end);
      if (inside) {
        const hh = `${String(Math.floor(local.minutes / 60)).padStart(2, '0')}:${String(local.minutes % 60).padStart(2, '0')}`;
        return {
          kind: 'end',
          ruleId: `sleep_window:${i}`,
          reason: `${hh} on ${DAY_NAMES[local.day]} in the end user's zone ${tz} is inside sleep window ${w.start}-${w.end} (${w.days.join(',')}); ${label}`,
          message: w.message ?? sleep.message,
        };
      }
    }
    return undefined;
  };
}
