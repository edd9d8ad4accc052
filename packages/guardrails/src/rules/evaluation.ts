// What every rule kind shares: the input error, decision severity and the time helpers.
import type { Decision, Evaluation, GuardrailState } from '../types.js';

/** GuardrailInputError is an event or context the checker cannot evaluate (an unknown time zone, a malformed event); `path` names the field. */
export class GuardrailInputError extends Error {
  override readonly name = 'GuardrailInputError';
  /** path is the dotted path of the bad field (e.g. "context.timeZone"). */
  readonly path: string;
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`);
    this.path = path;
  }
}

/** SEVERITY orders decisions: the most severe one is the evaluation's decision. */
export const SEVERITY: Record<Decision['kind'], number> = {
  allow: 0,
  redact: 1,
  drop_passage: 2,
  replace: 3,
  block_tool: 4,
  escalate: 5,
  handoff: 6,
  end: 7,
};

const ALLOW: Decision = { kind: 'allow' };

/** DAY_MS is one day in milliseconds (the per-day limits look back this far). */
export const DAY_MS = 86_400_000;

/** WEEK_MS is seven days in milliseconds (the per-week limits look back this far). */
export const WEEK_MS = 7 * DAY_MS;

/** ms is the context's clock in milliseconds; a time that is not one is the caller's mistake. */
export function ms(now: Date | number): number {
  const t = typeof now === 'number' ? now : now.getTime();
  if (!Number.isFinite(t)) throw new GuardrailInputError('context.now', 'must be a valid time');
  return t;
}

/** finish sorts the decisions most severe first (allow when there are none) into an evaluation. */
export function finish(decisions: Decision[], state: GuardrailState): Evaluation {
  if (decisions.length === 0) return { decision: ALLOW, decisions: [ALLOW], state };
  decisions.sort((a, b) => SEVERITY[b.kind] - SEVERITY[a.kind]);
  return { decision: decisions[0] as Decision, decisions, state };
}
