import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { type JsonObject } from '@bufbuild/protobuf';
import { buildAuditEvent, type AuditEventInput } from '@parley/audit-outbox';
import type { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import type { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { Subject, TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { parseGuardrailState, type GuardrailState } from '@parley/guardrails';
import { isCallerMistake } from '@parley/platform';
import type { ResolvedKey } from './conversation-keys.js';
import type { ToolDeclaration } from './providers.js';
import { CLOSE_CODES, SessionRefusal } from './session-refusal.js';

/** SessionGrant is what a verified, consumed session token allows. */
export interface SessionGrant {
  readonly tenantId: string;
  readonly agentId: string;
  readonly sessionId: string;
  readonly origin: string;
  readonly subjectRef: string;
  /** subjectId is the person a call's session was minted for (an outbound call placed to them); '' otherwise. */
  readonly subjectId: string;
  /** callSid is the Twilio CallSid identity recorded for the session ('' for a session that is not a call's). */
  readonly callSid: string;
}

/** PhoneSubject is the person a number belongs to, and whether they are on the do-not-contact list. */
export interface PhoneSubject {
  readonly id: string;
  readonly doNotContact: boolean;
}

/** PersonGuardrailState is a person's stored guardrail state with its revision (0: never written). */
export interface PersonGuardrailState {
  readonly state: GuardrailState | undefined;
  readonly revision: bigint;
}

/** AgentRecord is the part of an agent a conversation runs on. */
export interface AgentRecord {
  readonly id: string;
  readonly prompt: string;
  readonly providerSettings: JsonObject;
  readonly secretRefs: Readonly<Record<string, string>>;
  readonly guardrailPolicy: JsonObject;
  readonly policyVersion: number;
}

/** RecordedGuardrailDecision is one stored guardrail decision: the rule ('' for an allow), its action, what it checked, the turn. */
export interface RecordedGuardrailDecision {
  readonly turn: number;
  readonly rule: string;
  readonly action: string;
  readonly on: 'start' | 'user' | 'assistant' | 'tool';
}

/** TurnRecord is what one turn of a conversation produced, stored in tenant-data in one write (RecordTurn). */
export interface TurnRecord {
  /**
   * recordId is the record's idempotency key (a UUID made once per record): a retry resends it,
   * so tenant-data stores a record whose first answer was lost only once.
   */
  readonly recordId: string;
  /** turns are the transcript turns in order, redacted (and sealed for a subject) already. */
  readonly turns: readonly { readonly role: 'user' | 'assistant' | 'system'; readonly text: string }[];
  readonly decisions: readonly RecordedGuardrailDecision[];
  /** guardrailState is the checker's state after the turn (undefined: nothing to store). */
  readonly guardrailState?: { readonly subjectId: string | undefined; readonly state: GuardrailState };
}

/**
 * TurnRecordUnsupported says tenant-data has no RecordTurn (an older pod during a rolling
 * upgrade): the caller stores the record's parts with the RPCs that existed before it.
 */
export class TurnRecordUnsupported extends Error {
  constructor(options?: ErrorOptions) {
    super('tenant-data does not implement RecordTurn', options);
  }
}

/** RECORD_TURN_RETRY_MS is how long after an UNIMPLEMENTED the orchestrator asks no tenant-data pod for RecordTurn (the upgrade rolls on meanwhile). */
export const RECORD_TURN_RETRY_MS = 60_000;

/**
 * Peers is the orchestrator's narrow view of identity, tenant-data and secrets. Each method maps
 * the peer's failure to a SessionRefusal a client can act on (or to an Error for our own faults),
 * so the session code never inspects a ConnectError.
 */
export interface Peers {
  /** consumeSession verifies a token for this origin and spends its jti (single use). */
  consumeSession(token: string, origin: string): Promise<SessionGrant>;
  getAgent(tenantId: string, agentId: string): Promise<AgentRecord>;
  /** subjectFor finds (or records) the end user a token names by external reference. */
  subjectFor(tenantId: string, externalRef: string): Promise<string>;
  /** subjectForPhone finds (or records) the person an outbound call dials by number (tenant-data keeps only its keyed hash). */
  subjectForPhone(tenantId: string, phone: string): Promise<PhoneSubject>;
  startConversation(grant: SessionGrant, subjectId: string | undefined): Promise<{ conversationId: string }>;
  endConversation(tenantId: string, conversationId: string, reason: string): Promise<void>;
  conversationState(tenantId: string, conversationId: string): Promise<string>;
  appendTurn(tenantId: string, conversationId: string, role: 'user' | 'assistant' | 'system', text: string): Promise<void>;
  /**
   * recordTurn stores a turn record in one transaction and answers the conversation's state:
   * 'live', or 'ended' (ended elsewhere: nothing of the record was stored). TurnRecordUnsupported
   * when tenant-data predates RecordTurn (then for RECORD_TURN_RETRY_MS without asking again); a
   * SessionRefusal with tryAgainLater when tenant-data was away (the record may or may not be
   * stored: resending it with its recordId is safe).
   */
  recordTurn(tenantId: string, conversationId: string, record: TurnRecord): Promise<'live' | 'ended'>;
  /** resolveKeys decrypts the named secrets of the agent for this live conversation. */
  resolveKeys(tenantId: string, conversationId: string, agentId: string, secretIds: readonly string[]): Promise<ResolvedKey[]>;
  sealForSubject(tenantId: string, subjectId: string, purpose: string, plaintext: string): Promise<Uint8Array>;
  /** guardrailState reads the guardrail checker's stored state of a conversation and its person (undefined: none yet). */
  guardrailState(tenantId: string, conversationId: string, subjectId: string | undefined): Promise<GuardrailState | undefined>;
  /**
   * callTool has integrations make a granted tool call of this conversation (it injects the
   * credential; none comes here). Refusals come back as the result the model sees, never thrown:
   * { error, message } with the gRPC code's name.
   */
  callTool(call: {
    tenantId: string;
    conversationId: string;
    agentId: string;
    tool: string;
    arguments: JsonObject;
  }): Promise<ToolCallResult>;
  /**
   * describeTools asks integrations for the named tools' descriptions and argument schemas (those
   * that exist in the workspace), to declare them to the model. None without integrations.
   */
  describeTools(tenantId: string, names: readonly string[]): Promise<ToolDeclaration[]>;
  /** recordToolRefusal has integrations audit a tool call the guardrail refused (nothing without integrations; throws on failure). */
  recordToolRefusal(refusal: { tenantId: string; conversationId: string; agentId: string; tool: string; rule: string }): Promise<void>;
  /** personGuardrailState reads a person's guardrail state with its revision (for a compare-and-set). */
  personGuardrailState(tenantId: string, subjectId: string): Promise<PersonGuardrailState>;
  /**
   * savePersonStateIfUnchanged stores a person's guardrail state only if it is still at `revision`
   * (tenant-data decides, under the row's lock); false when it changed meanwhile (nothing stored).
   */
  savePersonStateIfUnchanged(tenantId: string, subjectId: string, state: GuardrailState, revision: bigint): Promise<boolean>;
  /** saveGuardrailState stores the checker's state after a turn (conversation part and person part). */
  saveGuardrailState(tenantId: string, conversationId: string, subjectId: string | undefined, state: GuardrailState): Promise<void>;
  /** issueRecordingKey has secrets make a data key for one recording of a live conversation (plaintext and sealed form). */
  issueRecordingKey(
    tenantId: string,
    conversationId: string,
    subjectId: string | undefined,
    recordingId: string,
  ): Promise<{ dataKey: Uint8Array; wrappedKey: string }>;
  /** addRecording stores a recording's reference in tenant-data (the blob is already in the store). */
  addRecording(recording: {
    tenantId: string;
    conversationId: string;
    recordingId: string;
    blobKey: string;
    durationMs: number;
    sizeBytes: number;
    wrappedKey: string;
  }): Promise<void>;
  /** recordGuardrailDecision stores which rule acted how on a turn (no text), for the decisions-by-rule chart. */
  recordGuardrailDecision(tenantId: string, conversationId: string, decision: RecordedGuardrailDecision): Promise<void>;
  /** telephonyAuthToken resolves the agent's Twilio auth token (ConnectError from secrets on refusal). */
  telephonyAuthToken(tenantId: string, agentId: string): Promise<string>;
  /** recordAudit appends one event to the audit log (the orchestrator keeps no outbox: throws when audit is not configured or refuses). */
  recordAudit(event: AuditEventInput): Promise<void>;
  /** mintCallSession has identity mint a single-use session token for one verified inbound call, once per CallSid (ConnectError on refusal; ALREADY_EXISTS for a CallSid answered before). */
  mintCallSession(tenantId: string, agentId: string, callSid: string, subjectId?: string): Promise<{ sessionId: string; token: string }>;
}

/** ToolCallResult is what a tool call came to, as the model may see it. */
export interface ToolCallResult {
  /** ok is false when the call was refused or failed (content then says why). */
  readonly ok: boolean;
  /** status is the external system's HTTP status (0 when there was no answer). */
  readonly status: number;
  readonly content: string;
}

const TIMEOUT_MS = 5_000;
// A tool call waits for an external system: integrations' own timeout (10 s by default) plus slack.
const TOOL_CALL_TIMEOUT_MS = 15_000;

/**
 * retrying runs `call` up to `attempts` times, waiting between half and all of `delayMs` × 2^(n-1)
 * after the n-th failure (equal jitter: callers that failed together do not come back together,
 * and a peer that is restarting still gets at least half the back-off before the next try),
 * while `retryable` says the failure is worth another try before that wait (by default: a peer
 * that is away, as `transient` reads it); `onRetry` hears each failure that is retried. Once
 * `signal` is aborted no further attempt starts (a wait under way ends at once) and the last
 * failure is thrown.
 */
export async function retrying<T>(
  call: () => Promise<T>,
  options: {
    attempts: number;
    delayMs: number;
    retryable?: (err: unknown, next: { readonly attempt: number; readonly waitMs: number }) => boolean;
    onRetry?: (err: unknown, attempt: number) => void;
    signal?: AbortSignal;
  },
): Promise<T> {
  const retryable = options.retryable ?? ((err: unknown) => transient(ConnectError.from(err)));
  const signal = options.signal;
  const stopped = () => signal?.aborted === true;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const backoffMs = options.delayMs * 2 ** (attempt - 1);
      const waitMs = Math.floor(backoffMs / 2 + Math.random() * (backoffMs / 2));
      if (attempt >= options.attempts || stopped() || !retryable(err, { attempt: attempt + 1, waitMs })) throw err;
      options.onRetry?.(err, attempt);
      if (stopped()) throw err;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, waitMs);
        signal?.addEventListener('abort', done, { once: true });
      });
      if (stopped()) throw err;
    }
  }
}

function transient(err: ConnectError): boolean {
  // Unknown is what a reset HTTP/2 stream surfaces as, Aborted a reset connection; treat them as the peer being away.
  return (
    err.code === Code.Unavailable ||
    err.code === Code.DeadlineExceeded ||
    err.code === Code.Unknown ||
    err.code === Code.Canceled ||
    err.code === Code.Aborted
  );
}

function unavailable(peer: string, err: unknown): SessionRefusal {
  return new SessionRefusal(CLOSE_CODES.tryAgainLater, `${peer} unavailable; try again shortly`, { cause: err });
}

/** tokenRefusal maps identity's refusal of a session token to the close the client gets. */
function tokenRefusal(err: ConnectError): SessionRefusal {
  const m = err.rawMessage.toLowerCase();
  if (err.code === Code.Unauthenticated || err.code === Code.InvalidArgument || err.code === Code.NotFound) {
    if (m.includes('origin')) return new SessionRefusal(CLOSE_CODES.forbidden, 'origin not allowed for this token');
    if (m.includes('another workspace')) return new SessionRefusal(CLOSE_CODES.forbidden, 'tenant not allowed for this token');
    if (m.includes('expired')) return new SessionRefusal(CLOSE_CODES.unauthenticated, 'token expired');
    if (m.includes('already used')) return new SessionRefusal(CLOSE_CODES.unauthenticated, 'token already used');
    if (m.includes('revoked')) return new SessionRefusal(CLOSE_CODES.unauthenticated, 'token revoked');
    return new SessionRefusal(CLOSE_CODES.unauthenticated, 'token invalid');
  }
  if (err.code === Code.PermissionDenied) return new SessionRefusal(CLOSE_CODES.forbidden, 'tenant not allowed for this token');
  return unavailable('identity', err);
}

function wrap<T>(
  peer: string,
  what: string,
  call: () => Promise<T>,
  refuse?: (err: ConnectError) => SessionRefusal | undefined,
): Promise<T> {
  return call().catch((err: unknown) => {
    if (!(err instanceof ConnectError)) throw err;
    const mapped = refuse?.(err);
    if (mapped !== undefined) throw mapped;
    if (transient(err)) throw unavailable(peer, err);
    throw new Error(`${peer} refused ${what}: ${Code[err.code]} ${err.rawMessage}`, { cause: err });
  });
}

/** PeerClients are the mTLS clients Peers is built over. */
export interface PeerClients {
  readonly identity: Client<typeof IdentityService>;
  readonly tenantData: Client<typeof TenantDataService>;
  readonly secrets: Client<typeof SecretsService>;
  /** integrations makes tool calls (absent: tools are refused as unavailable). */
  readonly integrations?: Client<typeof IntegrationsService>;
  /** audit records the calls the orchestrator places and transfers (absent: they are logged only). */
  readonly audit?: Client<typeof AuditService>;
}

// The subject with this external reference or phone number, recorded when there is none yet.
async function findOrCreateSubject(c: PeerClients, tenantId: string, by: { externalRef: string } | { phone: string }): Promise<Subject> {
  try {
    const { subject } = await c.tenantData.findSubject({ tenantId, ...by }, { timeoutMs: TIMEOUT_MS });
    if (subject !== undefined) return subject;
  } catch (err) {
    if (!(err instanceof ConnectError) || err.code !== Code.NotFound) throw err;
  }
  try {
    const { subject } = await c.tenantData.createSubject({ tenantId, ...by }, { timeoutMs: TIMEOUT_MS });
    if (subject === undefined) throw new Error('tenant-data answered CreateSubject without a subject');
    return subject;
  } catch (err) {
    // Another connection recorded the same end user first.
    if (!(err instanceof ConnectError) || err.code !== Code.AlreadyExists) throw err;
    const { subject } = await c.tenantData.findSubject({ tenantId, ...by }, { timeoutMs: TIMEOUT_MS });
    if (subject === undefined) throw new Error('tenant-data lost a subject it reported as existing', { cause: err });
    return subject;
  }
}

/** createPeers builds Peers over the kernel's mTLS clients. */
export function createPeers(c: PeerClients, clock: () => number = Date.now): Peers {
  const opts = { timeoutMs: TIMEOUT_MS };
  /** recordTurnUnsupportedUntil is when RecordTurn is worth asking for again after tenant-data answered UNIMPLEMENTED. */
  let recordTurnUnsupportedUntil = Number.NEGATIVE_INFINITY;
  return {
    async recordAudit(event) {
      if (c.audit === undefined) throw new Error('no audit service is configured (PARLEY_AUDIT_URL)');
      await c.audit.appendEvents({ events: [buildAuditEvent(event)] }, opts);
    },
    async telephonyAuthToken(tenantId, agentId) {
      const { secret } = await c.secrets.resolveTelephonyCredential({ tenantId, agentId }, opts);
      if (secret === undefined) throw new Error('secrets answered ResolveTelephonyCredential without a secret');
      return secret.value;
    },
    async mintCallSession(tenantId, agentId, callSid, subjectId) {
      // An identity of the previous release ignores subject_id: that call's conversation then has no person.
      const { sessionId, token } = await c.identity.createCallSession({ tenantId, agentId, callSid, subjectId: subjectId ?? '' }, opts);
      return { sessionId, token };
    },
    consumeSession(token, origin) {
      return wrap(
        'identity',
        'the session check',
        async () => {
          const { claims } = await c.identity.verifySession({ token, consume: true, origin }, opts);
          if (claims === undefined) throw new Error('identity answered VerifySession without claims');
          return {
            tenantId: claims.tenantId,
            agentId: claims.agentId,
            sessionId: claims.sessionId,
            origin: claims.origin,
            subjectRef: claims.subjectRef,
            subjectId: claims.subjectId,
            callSid: claims.callSid,
          };
        },
        (err) => (transient(err) ? undefined : tokenRefusal(err)),
      );
    },
    getAgent(tenantId, agentId) {
      return wrap(
        'tenant-data',
        'the agent',
        async () => {
          const { agent } = await c.tenantData.getAgent({ tenantId, agentId }, opts);
          if (agent === undefined) throw new SessionRefusal(CLOSE_CODES.forbidden, 'agent not allowed');
          return {
            id: agent.id,
            prompt: agent.prompt,
            providerSettings: (agent.providerSettings ?? {}) as JsonObject,
            secretRefs: agent.secretRefs,
            guardrailPolicy: (agent.guardrailPolicy ?? {}) as JsonObject,
            policyVersion: agent.policyVersion,
          };
        },
        (err) => (err.code === Code.NotFound ? new SessionRefusal(CLOSE_CODES.forbidden, 'agent not allowed') : undefined),
      );
    },
    subjectFor(tenantId, externalRef) {
      return wrap('tenant-data', 'the subject', async () => (await findOrCreateSubject(c, tenantId, { externalRef })).id);
    },
    subjectForPhone(tenantId, phone) {
      return wrap('tenant-data', 'the subject', async () => {
        // A tenant-data of the previous release sends no do_not_contact: false, as before the list existed.
        const subject = await findOrCreateSubject(c, tenantId, { phone });
        return { id: subject.id, doNotContact: subject.doNotContact };
      });
    },
    startConversation(grant, subjectId) {
      return wrap(
        'tenant-data',
        'the conversation start',
        async () => {
          const { conversation } = await c.tenantData.startConversation(
            { tenantId: grant.tenantId, agentId: grant.agentId, subjectId: subjectId ?? '', conversationId: grant.sessionId },
            opts,
          );
          if (conversation === undefined) throw new Error('tenant-data answered StartConversation without a conversation');
          return { conversationId: conversation.id };
        },
        // The session id is the conversation id: a second conversation for one session is a reused token.
        (err) => (err.code === Code.AlreadyExists ? new SessionRefusal(CLOSE_CODES.unauthenticated, 'token already used') : undefined),
      );
    },
    async endConversation(tenantId, conversationId, reason) {
      await wrap('tenant-data', 'the conversation end', async () => {
        try {
          await c.tenantData.endConversation({ tenantId, conversationId, endReason: reason.slice(0, 200) }, opts);
        } catch (err) {
          // Ended already (by an operator, or another replica): the end is recorded, which is what we want.
          if (err instanceof ConnectError && err.code === Code.FailedPrecondition) return;
          throw err;
        }
      });
    },
    conversationState(tenantId, conversationId) {
      return wrap('tenant-data', 'the conversation state', async () => {
        try {
          const { conversation } = await c.tenantData.getConversation({ tenantId, conversationId }, opts);
          return conversation?.state ?? 'unknown';
        } catch (err) {
          if (err instanceof ConnectError && (err.code === Code.NotFound || err.code === Code.InvalidArgument)) return 'unknown';
          throw err;
        }
      });
    },
    guardrailState(tenantId, conversationId, subjectId) {
      return wrap('tenant-data', 'the guardrail state', async () => {
        const res = await c.tenantData.getGuardrailState({ tenantId, conversationId, subjectId: subjectId ?? '' }, opts);
        // tenant-data validated it on write; checked again, as anything read back is.
        return res.found ? parseGuardrailState(res.state) : undefined;
      });
    },
    personGuardrailState(tenantId, subjectId) {
      return wrap('tenant-data', 'the guardrail state', async () => {
        const res = await c.tenantData.getGuardrailState({ tenantId, conversationId: '', subjectId }, opts);
        return { state: res.found ? parseGuardrailState(res.state) : undefined, revision: res.personRevision };
      });
    },
    savePersonStateIfUnchanged(tenantId, subjectId, state, revision) {
      return wrap('tenant-data', 'the guardrail state', async () => {
        // A tenant-data of the previous release ignores the expected revision and stores: no conflict, as before.
        const res = await c.tenantData.putGuardrailState(
          {
            tenantId,
            conversationId: '',
            subjectId,
            state: JSON.parse(JSON.stringify(state)) as JsonObject,
            expectedPersonRevision: revision,
          },
          opts,
        );
        return !res.personConflict;
      });
    },
    async saveGuardrailState(tenantId, conversationId, subjectId, state) {
      await wrap('tenant-data', 'the guardrail state', () =>
        c.tenantData.putGuardrailState(
          { tenantId, conversationId, subjectId: subjectId ?? '', state: JSON.parse(JSON.stringify(state)) as JsonObject },
          opts,
        ),
      );
    },
    async recordGuardrailDecision(tenantId, conversationId, d) {
      await wrap('tenant-data', 'a guardrail decision', () =>
        c.tenantData.recordGuardrailDecision({ tenantId, conversationId, turn: d.turn, rule: d.rule, action: d.action, on: d.on }, opts),
      );
    },
    async recordTurn(tenantId, conversationId, record) {
      if (clock() < recordTurnUnsupportedUntil) throw new TurnRecordUnsupported();
      const state = record.guardrailState;
      return wrap('tenant-data', 'the turn record', async () => {
        try {
          const res = await c.tenantData.recordTurn(
            {
              tenantId,
              conversationId,
              recordId: record.recordId,
              turns: record.turns.map((t) => ({ role: t.role, textRedacted: t.text })),
              decisions: record.decisions.map((d) => ({ turn: d.turn, rule: d.rule, action: d.action, on: d.on })),
              ...(state === undefined
                ? {}
                : { guardrailState: JSON.parse(JSON.stringify(state.state)) as JsonObject, subjectId: state.subjectId ?? '' }),
            },
            opts,
          );
          return res.conversationState === 'live' ? 'live' : 'ended';
        } catch (err) {
          if (!(err instanceof ConnectError)) throw err;
          if (err.code === Code.FailedPrecondition) return 'ended';
          if (err.code === Code.Unimplemented) {
            recordTurnUnsupportedUntil = clock() + RECORD_TURN_RETRY_MS;
            throw new TurnRecordUnsupported({ cause: err });
          }
          throw err;
        }
      });
    },
    async appendTurn(tenantId, conversationId, role, text) {
      await wrap('tenant-data', 'a transcript turn', () =>
        c.tenantData.appendTranscriptTurn({ tenantId, conversationId, role, textRedacted: text }, opts),
      );
    },
    resolveKeys(tenantId, conversationId, agentId, secretIds) {
      return wrap(
        'secrets',
        'the provider keys',
        async () => {
          const res = await c.secrets.resolveForConversation({ tenantId, conversationId, agentId, secretIds: [...secretIds] }, opts);
          return res.secrets.map((s) => ({ secretId: s.secretId, purposes: s.purposes, value: s.value }));
        },
        (err) =>
          err.code === Code.NotFound || err.code === Code.PermissionDenied
            ? new SessionRefusal(
                CLOSE_CODES.internal,
                "the agent's provider keys are misconfigured; the workspace must fix the agent's secrets",
              )
            : undefined,
      );
    },
    async describeTools(tenantId, names) {
      const integrations = c.integrations;
      if (integrations === undefined || names.length === 0) return [];
      return wrap('integrations', 'the tool descriptions', async () => {
        const res = await integrations.describeTools({ tenantId, names: [...names] }, opts);
        return res.tools.map((t) => ({ name: t.name, description: t.description, parameters: t.argumentsSchema ?? { type: 'object' } }));
      });
    },
    async recordToolRefusal(refusal) {
      const integrations = c.integrations;
      if (integrations === undefined) return;
      await wrap('integrations', 'the tool refusal record', () => integrations.recordToolRefusal(refusal, opts));
    },
    async callTool(call) {
      if (c.integrations === undefined) {
        return {
          ok: false,
          status: 0,
          content: JSON.stringify({ error: 'unavailable', message: 'tools are not configured (no integrations service)' }),
        };
      }
      try {
        const res = await c.integrations.callTool(call, { timeoutMs: TOOL_CALL_TIMEOUT_MS });
        return { ok: res.status >= 200 && res.status < 300, status: res.status, content: res.body };
      } catch (err) {
        const e = ConnectError.from(err);
        // A refusal's message says what is wrong (grant, argument, limit) and never holds the
        // credential; it goes to the model, which may repeat it to the caller. Anything else (the
        // integrations service unreachable or failing) says no more than that: its message can name
        // internal addresses, certificates and variables.
        const message = isCallerMistake(e.code) ? e.rawMessage.slice(0, 500) : 'the tool service is unavailable; try again later';
        return { ok: false, status: 0, content: JSON.stringify({ error: Code[e.code], message }) };
      }
    },
    issueRecordingKey(tenantId, conversationId, subjectId, recordingId) {
      return wrap('secrets', 'the recording key', async () => {
        const res = await c.secrets.issueRecordingKey({ tenantId, conversationId, subjectId: subjectId ?? '', recordingId }, opts);
        return { dataKey: res.dataKey, wrappedKey: res.wrappedKey };
      });
    },
    async addRecording(r) {
      const res = await wrap('tenant-data', 'the recording reference', () =>
        c.tenantData.addRecording(
          {
            tenantId: r.tenantId,
            conversationId: r.conversationId,
            id: r.recordingId,
            blobKey: r.blobKey,
            durationMs: r.durationMs,
            sizeBytes: BigInt(r.sizeBytes),
            wrappedKey: r.wrappedKey,
            dataClass: 'audio_full',
          },
          opts,
        ),
      );
      // A tenant-data of an older release drops the fields it does not know (the id, the size, the
      // sealed key) and stores a reference nobody could decrypt: say so rather than count it stored.
      if (res.recording?.id !== r.recordingId || res.recording.keyRef === '')
        throw new ConnectError(
          "tenant-data did not keep the recording's id and key reference: it runs an older release than this orchestrator. " +
            'Upgrade tenant-data first, then turn call recording on',
          Code.FailedPrecondition,
        );
    },
    sealForSubject(tenantId, subjectId, purpose, plaintext) {
      return wrap('secrets', 'subject encryption', async () => {
        const res = await c.secrets.encryptForSubject({ tenantId, subjectId, purpose, plaintext: Buffer.from(plaintext, 'utf8') }, opts);
        return res.ciphertext;
      });
    },
  };
}
