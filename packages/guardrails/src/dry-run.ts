// A dry run: a list of events evaluated in order against one checker, the state carried from
// each to the next, as an operator checks a policy before launch.
import { GuardrailInputError, initialGuardrailState, type GuardrailChecker } from './checker.js';
import { parseGuardrailEvent, parseGuardrailState } from './event-schema.js';
import type { Decision, GuardrailState } from './types.js';

/** MAX_DRY_RUN_EVENTS bounds the events of one dry run. */
export const MAX_DRY_RUN_EVENTS = 200;

/** DryRunInput is what a dry run takes; events and state are JSON (validated here). */
export interface DryRunInput {
  readonly now: number;
  readonly timeZone?: string;
  readonly tenantId?: string;
  readonly state?: unknown;
  readonly events: readonly unknown[];
}

/** DryRunResult is every event's decisions and the state after the last one. */
export interface DryRunResult {
  readonly results: { readonly index: number; readonly decision: Decision; readonly decisions: readonly Decision[] }[];
  readonly state: GuardrailState;
}

/** dryRunGuardrails evaluates JSON events in order; a bad event, state or zone is a GuardrailInputError naming its path. */
export function dryRunGuardrails(checker: GuardrailChecker, input: DryRunInput): DryRunResult {
  if (input.events.length > MAX_DRY_RUN_EVENTS) {
    throw new GuardrailInputError('events', `at most ${MAX_DRY_RUN_EVENTS} events per dry run, got ${input.events.length}`);
  }
  let state = input.state === undefined ? initialGuardrailState(input.now) : parseGuardrailState(input.state);
  const results: DryRunResult['results'] = [];
  input.events.forEach((raw, index) => {
    const { event, at } = parseGuardrailEvent(raw, `events.${index}`);
    const r = checker.evaluate(event, {
      now: at ?? input.now,
      state,
      ...(input.timeZone === undefined ? {} : { timeZone: input.timeZone }),
      ...(input.tenantId === undefined ? {} : { tenantId: input.tenantId }),
    });
    state = r.state;
    results.push({ index, decision: r.decision, decisions: r.decisions });
  });
  return { results, state };
}
