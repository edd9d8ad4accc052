// Twilio's REST API, the two calls Parley makes (https://www.twilio.com/docs/voice/api/call-resource):
// "update a call" (POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json with new `Twiml`:
// a live call's hand-off to a human) and "create a call" (POST …/Calls.json with To, From and
// Twiml: an outbound call). Form-encoded bodies, HTTP Basic auth with the Account SID and the
// account's auth token, every request through the egress client (provider-fetch.ts).
import type { TelephonySettings } from '@parley/conversation';
import type { ProviderFetch } from './provider-fetch.js';
import { escapeXml } from './twilio-call-webhook.js';

/** TwilioRestError is a refusal or failure of Twilio's REST API: its HTTP status and Twilio's error code and message. */
export class TwilioRestError extends Error {
  override readonly name = 'TwilioRestError';
  constructor(
    readonly status: number,
    readonly twilioCode: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** TwilioAccount is whose calls these are: the agent's telephony settings and its auth token. */
export interface TwilioAccount {
  readonly settings: TelephonySettings;
  readonly authToken: string;
}

/** dialTwiml is the TwiML that connects the call to `number` (Twilio's <Dial> verb). */
export function dialTwiml(number: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Response><Dial>${escapeXml(number)}</Dial></Response>`;
}

async function post(
  fetch: ProviderFetch,
  account: TwilioAccount,
  path: string,
  form: Record<string, string>,
): Promise<Record<string, unknown>> {
  const { accountSid, apiBaseUrl } = account.settings;
  const url = `${apiBaseUrl.replace(/\/+$/, '')}/2010-04-01/Accounts/${accountSid}/${path}`;
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${accountSid}:${account.authToken}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: new URLSearchParams(form).toString(),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Twilio answers JSON; anything else is reported by its status alone.
  }
  if (!res.ok) {
    const code = typeof body.code === 'number' ? body.code : undefined;
    const message = typeof body.message === 'string' ? body.message.slice(0, 300) : `HTTP ${res.status}`;
    throw new TwilioRestError(res.status, code, `Twilio answered ${res.status}${code === undefined ? '' : ` (error ${code})`}: ${message}`);
  }
  return body;
}

/** updateCallTwiml replaces a live call's instructions with `twiml` (the call leaves its media stream and follows them). */
export async function updateCallTwiml(fetch: ProviderFetch, account: TwilioAccount, callSid: string, twiml: string): Promise<void> {
  if (!/^CA[0-9a-f]{32}$/.test(callSid)) throw new TwilioRestError(0, undefined, 'not a Twilio Call SID');
  await post(fetch, account, `Calls/${callSid}.json`, { Twiml: twiml });
}

/**
 * createCall places a call from `from` to `to` that follows `twiml`, or asks `url` (POST, signed
 * by Twilio like any voice webhook) for its TwiML once answered; it returns the new call's SID.
 */
export async function createCall(
  fetch: ProviderFetch,
  account: TwilioAccount,
  call: { to: string; from: string } & ({ twiml: string } | { url: string }),
): Promise<string> {
  const follow: Record<string, string> = 'twiml' in call ? { Twiml: call.twiml } : { Url: call.url, Method: 'POST' };
  const body = await post(fetch, account, 'Calls.json', { To: call.to, From: call.from, ...follow });
  if (typeof body.sid !== 'string') throw new TwilioRestError(200, undefined, 'Twilio answered without the call SID');
  return body.sid;
}

/** handoffNumber is the number a hand-off to `target` dials: the target's own number, else the agent's human number. */
export function handoffNumber(settings: TelephonySettings, target: string | undefined): string | undefined {
  if (target !== undefined && settings.handoffNumbers !== undefined && Object.hasOwn(settings.handoffNumbers, target))
    return settings.handoffNumbers[target];
  return settings.humanNumber;
}

/** maskNumber keeps a number's country code and last two digits: enough to tell numbers apart in a transcript or audit event. */
export function maskNumber(number: string): string {
  return number.length <= 6 ? '***' : `${number.slice(0, 2)}${'*'.repeat(number.length - 4)}${number.slice(-2)}`;
}
