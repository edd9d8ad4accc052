// Outbound calls, the parts that decide and dial: the callee's number is checked with
// libphonenumber-js, the agent's guardrail policy is asked BEFORE anything is dialled (sleep
// windows, do-not-contact, contact fatigue: the same checker and rules as a conversation's start,
// direction "outbound"), and only then is the call created through Twilio's REST API ("create a
// call") with the session port's call webhook as its URL. No token exists before the callee
// answers: Twilio then asks that webhook (signed, with the new CallSid) for the call's TwiML, and
// the inbound path mints the call's single-use session token bound to that CallSid at identity.
import { isValidPhoneNumber, parsePhoneNumberWithError } from 'libphonenumber-js';
import type { TelephonySettings } from '@parley/conversation';
import { EgressRefusedError, EgressRequestError } from '@parley/egress';
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, UnavailableError } from '@parley/platform';
import type { GuardrailState } from '@parley/guardrails';
import type { GuardrailContext, GuardrailStage, StartFacts } from './guardrail-stage.js';
import type { PersonGuardrailState } from './peers.js';
import type { ProviderFetch } from './provider-fetch.js';
import { createCall, TwilioRestError } from './twilio-rest.js';

/**
 * calleeNumber checks the number to call (E.164 and valid for its country, INVALID_ARGUMENT naming
 * `to` otherwise) and returns libphonenumber's canonical E.164 form of it. Spellings that name the
 * same line (a kept trunk zero such as +4402012345678, a repeated country code such as
 * +114155550123) become one string, so the do-not-contact list and contact attempts, which are
 * kept per number, cannot be stepped around by writing the number differently.
 */
export function calleeNumber(to: string): string {
  if (!/^\+[1-9][0-9]{6,14}$/.test(to))
    throw new InvalidArgumentError('to must be an E.164 phone number such as +14155550123', { field: 'to' });
  if (!isValidPhoneNumber(to)) throw new InvalidArgumentError('to is not a valid phone number for its country code', { field: 'to' });
  return parsePhoneNumberWithError(to).number;
}

/** callerSettings are the agent's telephony settings with a number to call from (FAILED_PRECONDITION naming what to set otherwise). */
export function callerSettings(telephony: TelephonySettings | undefined): TelephonySettings & { fromNumber: string } {
  if (telephony === undefined)
    throw new FailedPreconditionError(
      'the agent has no telephony settings: set provider_settings.telephony (provider, accountSid, fromNumber)',
    );
  if (telephony.fromNumber === undefined)
    throw new FailedPreconditionError('the agent has no number to call from: set provider_settings.telephony.fromNumber');
  return telephony as TelephonySettings & { fromNumber: string };
}

/**
 * checkOutboundCall asks the agent's guardrail policy whether this person may be called now. A
 * refusal is thrown before anything is dialled: PERMISSION_DENIED for a person on the
 * do-not-contact list, FAILED_PRECONDITION for a sleep window, a holiday or a contact-fatigue
 * limit (try later); the message names the rule. An allowed call is counted as a contact attempt
 * in the stage's state, which the caller stores for the person.
 */
export function checkOutboundCall(stage: GuardrailStage, ctx: GuardrailContext, facts: StartFacts): void {
  const decision = stage.checkStart('outbound', ctx, facts);
  if (decision.action === 'allow' || decision.action === 'redact') return;
  const rule = decision.rule ?? 'policy';
  const why = `the call is refused before dialling by the guardrail rule ${rule}${decision.reason === undefined ? '' : `: ${decision.reason}`}`;
  if (rule.startsWith('do_not_contact')) throw new PermissionDeniedError(why);
  throw new FailedPreconditionError(why);
}

/** OutboundDial is one call to place: who, and the call webhook Twilio asks for the TwiML once the callee answers. */
export interface OutboundDial {
  readonly to: string;
  /** webhookUrl is the session port's call webhook for the agent (…/v1/telephony/twilio/voice/{tenantId}/{agentId}). */
  readonly webhookUrl: string;
}

/** dialOutbound creates the call through Twilio ("create a call" with Url = the call webhook); it returns the call's SID. */
export function dialOutbound(
  fetch: ProviderFetch,
  account: { settings: TelephonySettings & { fromNumber: string }; authToken: string },
  dial: OutboundDial,
): Promise<string> {
  return createCall(fetch, account, { to: dial.to, from: account.settings.fromNumber, url: dial.webhookUrl });
}

/** PersonStateStore is the person's stored guardrail state as a compare-and-set register (tenant-data's row and its revision). */
export interface PersonStateStore {
  read(): Promise<PersonGuardrailState>;
  /** writeIfUnchanged stores `state` only if the person's state is still at `revision`; false when it changed (nothing stored). */
  writeIfUnchanged(state: GuardrailState, revision: bigint): Promise<boolean>;
}

// How often a contact attempt is decided again after another call to the same person changed the
// state first (each round re-reads, so a limit reached meanwhile refuses the call).
const COUNT_ROUNDS = 5;

/**
 * changePersonState is the compare-and-set both of them run: read the state with its revision,
 * `change` it (undefined: nothing to store), and store that only if nobody stored in between; on a
 * conflict, read and change again, COUNT_ROUNDS times at most, then UNAVAILABLE with `exhausted`.
 * False when `change` found nothing to store.
 */
async function changePersonState(
  store: PersonStateStore,
  change: (stored: GuardrailState | undefined) => GuardrailState | undefined,
  exhausted: string,
): Promise<boolean> {
  for (let round = 0; round < COUNT_ROUNDS; round++) {
    const { state, revision } = await store.read();
    const changed = change(state);
    if (changed === undefined) return false;
    if (await store.writeIfUnchanged(changed, revision)) return true;
  }
  throw new UnavailableError(exhausted, { publicMessage: true });
}

/**
 * admitContactAttempt decides whether the person may be called and counts the attempt, as one
 * compare-and-set on their stored state: `decide` is the guardrail check (it throws the refusal and
 * returns the state with this attempt counted), run again on every conflict, so of two calls racing
 * for the last attempt a limit allows, on any replicas, exactly one is admitted.
 */
export async function admitContactAttempt(
  store: PersonStateStore,
  decide: (stored: GuardrailState | undefined) => GuardrailState,
): Promise<void> {
  await changePersonState(store, decide, 'too many calls to this person at the same moment; nothing was dialled, try again');
}

/**
 * refundContactAttempt takes back the attempt counted at `at` (epoch ms) when the dial placed no
 * call, with the same compare-and-set; false when it was not there (already refunded, or expired).
 */
export function refundContactAttempt(store: PersonStateStore, at: number): Promise<boolean> {
  return changePersonState(
    store,
    (state) => {
      const attempts = state?.person.contactAttempts ?? [];
      const i = attempts.indexOf(at);
      if (state === undefined || i < 0) return undefined;
      return { ...state, person: { ...state.person, contactAttempts: attempts.filter((_, j) => j !== i) } };
    },
    "the contact attempt could not be refunded: the person's state kept changing",
  );
}

/**
 * placedNothing tells whether a failed dial certainly created no call: Twilio refused it (a 4xx
 * answer), or was never reached. A 5xx answer, or a 2xx without a Call SID, may follow a call that
 * was created, so its attempt stays counted (erring towards calling the person less).
 */
export function placedNothing(err: unknown): boolean {
  return (
    (err instanceof TwilioRestError && err.status >= 400 && err.status < 500) ||
    err instanceof EgressRefusedError ||
    (err instanceof EgressRequestError && err.failure === 'connect-timeout')
  );
}

/**
 * placeOutboundCall is the order an outbound call must follow: the number, then the guardrail
 * checks with the attempt counted (`admit`), then the dial, so that a refused call never reaches
 * Twilio. A dial that certainly placed no call has its attempt refunded (`refund`) before the
 * error is thrown; one that may have placed it (no answer in time) keeps it. It returns the SID.
 */
export async function placeOutboundCall(call: {
  readonly to: string;
  readonly fetch: ProviderFetch;
  readonly telephony: TelephonySettings | undefined;
  readonly authToken: () => Promise<string>;
  readonly webhookUrl: string;
  /** admit runs the guardrail checks (throwing the refusal) and counts the attempt, before anything is dialled. */
  readonly admit: () => Promise<void> | void;
  /** refund takes the counted attempt back after a dial that placed no call (it should log its own failure; it is not rethrown). */
  readonly refund?: () => Promise<void>;
}): Promise<string> {
  const to = calleeNumber(call.to);
  const settings = callerSettings(call.telephony);
  await call.admit();
  // A refund that fails leaves the attempt counted (the safe side); the dial's own error is what the caller hears.
  const refund = () => (call.refund?.() ?? Promise.resolve()).catch(() => undefined);
  let authToken: string;
  try {
    authToken = await call.authToken();
  } catch (err) {
    await refund(); // nothing was dialled
    throw err;
  }
  try {
    return await dialOutbound(call.fetch, { settings, authToken }, { to, webhookUrl: call.webhookUrl });
  } catch (err) {
    if (placedNothing(err)) await refund();
    throw dialError(err);
  }
}

/**
 * dialError says what a failed "create a call" means for the caller, without Twilio's own message
 * (it can repeat the callee's number): a refusal (4xx) is the agent's telephony settings or the
 * number, Twilio's trouble (5xx) is most likely no call but not certainly one (its attempt stays
 * counted, see placedNothing), and no answer at all may still have placed the call, so neither is
 * offered as safely retryable.
 */
export function dialError(err: unknown): Error {
  if (err instanceof TwilioRestError && err.status >= 400 && err.status < 500) {
    const code = err.twilioCode === undefined ? '' : `, Twilio error ${err.twilioCode}`;
    return new FailedPreconditionError(
      `Twilio refused the call (HTTP ${err.status}${code}); check the agent's telephony settings (account, from number) and the number called`,
      { cause: err },
    );
  }
  if (err instanceof TwilioRestError && err.status >= 500)
    return new UnavailableError(
      `Twilio is unavailable (HTTP ${err.status}); the call was most likely not placed, but it stays counted against the person's contact limits in case it was: check the call log before placing it again`,
      { cause: err, publicMessage: true },
    );
  if (err instanceof EgressRefusedError)
    return new FailedPreconditionError(`the agent's Twilio API address is refused by the egress policy (${err.message})`, { cause: err });
  if (err instanceof EgressRequestError && err.failure === 'connect-timeout')
    return new UnavailableError('Twilio could not be reached; the call was not placed, try again', { cause: err, publicMessage: true });
  return new FailedPreconditionError(
    'Twilio did not answer the call request in time; the call may have been placed: check the call log before placing it again',
    { cause: err },
  );
}
