import type { IncomingMessage, ServerResponse } from 'node:http';
import { Code, ConnectError } from '@connectrpc/connect';
import { clientAddress, type Logger, type TrustedProxies } from '@parley/platform';
import { verifyTwilioSignature } from '@parley/webhooks';
import type { AddressBuckets, TtlCache } from './call-webhook-guard.js';

/** TWILIO_VOICE_PATH is the inbound call webhook: POST /v1/telephony/twilio/voice/{tenantId}/{agentId}. */
export const TWILIO_VOICE_PATH = /^\/v1\/telephony\/twilio\/voice\/([0-9a-f-]{36})\/([0-9a-f-]{36})$/;
/**
 * OUTBOUND_SUBJECT_PARAM is the call webhook's query parameter naming the person an outbound call
 * was placed to (their subject id). PlaceCall puts it in the Url it gives Twilio; Twilio signs the
 * whole URL, query included, so only a request signed with the agent's auth token can name one.
 */
export const OUTBOUND_SUBJECT_PARAM = 'subject';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** MAX_CALL_WEBHOOK_BYTES bounds the form body (Twilio's voice parameters are well under 4 KiB). */
export const MAX_CALL_WEBHOOK_BYTES = 16_384;

/** TwilioCallDeps are what the call webhook needs: the public URL and the two peer calls. */
export interface TwilioCallDeps {
  /** publicUrl is the session port's public https URL as Twilio reaches it (configuration, never the Host header). */
  readonly publicUrl: string;
  /** mediaStreamPath is where the TwiML sends the call's audio. */
  readonly mediaStreamPath: string;
  readonly logger: Logger;
  /** authToken resolves the agent's Twilio auth token (secrets, kind "telephony"). */
  authToken(tenantId: string, agentId: string): Promise<string>;
  /**
   * mintCallToken has identity mint a single-use, short-lived session token for this call, once
   * per CallSid (ALREADY_EXISTS after), for the person an outbound call was placed to if any.
   */
  mintCallToken(tenantId: string, agentId: string, callSid: string, subjectId?: string): Promise<{ sessionId: string; token: string }>;
  /** sources is the per-source-address token bucket, spent before any peer call. */
  readonly sources: AddressBuckets;
  /** trustedProxies may name the source address in X-Forwarded-For (a load balancer or ingress in front). */
  readonly trustedProxies: TrustedProxies;
  /** authTokens caches resolved auth tokens by tenant/agent for a short time; null is a refusal. */
  readonly authTokens: TtlCache<string | null>;
  /** answeredCalls holds tenant/CallSid of calls this replica answered: a replay is refused without a peer call (identity's record is the durable one). */
  readonly answeredCalls: TtlCache<true>;
}

/** REFUSED is the one answer to an unknown agent, another workspace's, one without a telephony secret, a bad signature or a replay. */
export const REFUSED = 'the call webhook request is refused';

/** escapeXml escapes text for an XML attribute value. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** connectStreamTwiml is the TwiML that streams the call's audio to `streamUrl` with the session token as a <Stream> parameter. */
export function connectStreamTwiml(streamUrl: string, token: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    `<Response><Connect><Stream url="${escapeXml(streamUrl)}"><Parameter name="token" value="${escapeXml(token)}"/></Stream></Connect></Response>`
  );
}

class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_CALL_WEBHOOK_BYTES) {
        reject(new HttpRefusal(413, `the call webhook body may be at most ${MAX_CALL_WEBHOOK_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Every refusal that could tell which ids exist is the same 403; only a peer that is down differs.
function peerRefusal(err: unknown): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded) return new HttpRefusal(503, 'try again shortly');
  return err;
}

function isRefusal(err: unknown): boolean {
  return (
    err instanceof ConnectError &&
    [Code.NotFound, Code.InvalidArgument, Code.FailedPrecondition, Code.PermissionDenied, Code.AlreadyExists].includes(err.code)
  );
}

// The agent's auth token, from the short cache or the secrets service; null when it is refused (cached too).
async function authTokenOf(deps: TwilioCallDeps, tenantId: string, agentId: string): Promise<string | null> {
  const key = `${tenantId}/${agentId}`;
  const cached = deps.authTokens.get(key);
  if (cached !== undefined) return cached;
  let token: string | null;
  try {
    token = await deps.authToken(tenantId, agentId);
  } catch (err) {
    if (!isRefusal(err)) throw peerRefusal(err);
    token = null;
  }
  deps.authTokens.set(key, token);
  return token;
}

/**
 * handleTwilioCall answers Twilio's inbound call webhook: the X-Twilio-Signature is checked
 * against the configured public URL with the agent's auth token before anything else of the
 * call is done (after a per-address rate limit); a CallSid is answered once; then identity mints
 * the call's session token and the answer is TwiML that streams the call to the media stream with
 * that token. Refusals are plain-text 4xx, one identical 403 for whatever could tell ids apart.
 */
export async function handleTwilioCall(req: IncomingMessage, res: ServerResponse, deps: TwilioCallDeps): Promise<void> {
  const reply = (status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  };
  try {
    const path = new URL(req.url ?? '/', 'https://call.invalid');
    const match = TWILIO_VOICE_PATH.exec(path.pathname);
    if (match === null) throw new HttpRefusal(404, 'not found');
    const [, tenantId, agentId] = match as unknown as [string, string, string];
    if (req.method !== 'POST') throw new HttpRefusal(405, 'the call webhook takes POST');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded')
      throw new HttpRefusal(415, 'the call webhook takes application/x-www-form-urlencoded (Twilio’s voice webhook)');
    const length = Number(req.headers['content-length'] ?? '0');
    if (length > MAX_CALL_WEBHOOK_BYTES) throw new HttpRefusal(413, `the call webhook body may be at most ${MAX_CALL_WEBHOOK_BYTES} bytes`);
    const source = clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], deps.trustedProxies);
    if (!deps.sources.take(source)) throw new HttpRefusal(429, 'too many call webhook requests; slow down');
    const signature = req.headers['x-twilio-signature'];
    if (typeof signature !== 'string' || signature === '') throw new HttpRefusal(403, REFUSED);
    const body = await readBody(req);
    const params: Record<string, string[]> = {};
    for (const [k, v] of new URLSearchParams(body)) (params[k] ??= []).push(v);
    const callSid = params['CallSid']?.[0];
    if (typeof callSid !== 'string') throw new HttpRefusal(400, 'a Twilio voice webhook carries CallSid');
    const authToken = await authTokenOf(deps, tenantId, agentId);
    const url = `${deps.publicUrl}${path.pathname}${path.search}`;
    if (authToken === null || !verifyTwilioSignature({ authToken, url, params, signature })) throw new HttpRefusal(403, REFUSED);
    // Signed with the URL: the person PlaceCall dialled (absent on an inbound call).
    const subjectId = path.searchParams.get(OUTBOUND_SUBJECT_PARAM) ?? undefined;
    if (subjectId !== undefined && !UUID.test(subjectId))
      throw new HttpRefusal(400, `the call webhook's ${OUTBOUND_SUBJECT_PARAM} is not a subject id`);
    // A signed request is answered once: a captured one replayed must not mint another session.
    // This replica's memory refuses a replay cheaply; identity's (tenant, CallSid) record refuses
    // it at every replica and after a restart (ALREADY_EXISTS, answered with the same 403).
    const answered = `${tenantId}/${callSid}`;
    if (deps.answeredCalls.has(answered)) throw new HttpRefusal(403, REFUSED);
    deps.answeredCalls.set(answered, true);
    const { sessionId, token } = await deps.mintCallToken(tenantId, agentId, callSid, subjectId).catch((err: unknown) => {
      if (isRefusal(err)) {
        // The caller sees the one 403; the operator sees why (a replay, a lost reply retried, a removed agent).
        deps.logger.info(
          { tenant_id: tenantId, agent_id: agentId, code: Code[(err as ConnectError).code] },
          'inbound call refused by identity',
        );
        throw new HttpRefusal(403, REFUSED);
      }
      // Not answered after all: Twilio (or its fallback) may try the call again.
      deps.answeredCalls.delete(answered);
      throw peerRefusal(err);
    });
    deps.logger.info({ tenant_id: tenantId, agent_id: agentId, session_id: sessionId }, 'inbound call accepted');
    const streamUrl = `${deps.publicUrl.replace(/^https:/, 'wss:')}${deps.mediaStreamPath}`;
    reply(200, 'text/xml; charset=utf-8', connectStreamTwiml(streamUrl, token));
  } catch (err) {
    if (err instanceof HttpRefusal) return reply(err.status, 'text/plain; charset=utf-8', err.message);
    deps.logger.error({ err }, 'inbound call webhook failed');
    reply(500, 'text/plain; charset=utf-8', 'internal error');
  }
}
