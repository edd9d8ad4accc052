import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { auditDetails, fromPrincipal } from '@parley/audit-outbox';
import { providerSettingsSchema } from '@parley/conversation';
import { requireUuid } from '@parley/db';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  requirePrincipal,
  UnavailableError,
} from '@parley/platform';
import type { Logger } from '@parley/platform';
import type { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { createGuardrailStage } from './guardrail-stage.js';
import type { LiveConversations } from './live-conversations.js';
import {
  admitContactAttempt,
  calleeNumber,
  checkOutboundCall,
  placeOutboundCall,
  refundContactAttempt,
  type PersonStateStore,
} from './outbound-call.js';
import { retrying, type Peers } from './peers.js';
import type { ProviderFetch } from './provider-fetch.js';
import { CLOSE_CODES, SessionRefusal } from './session-refusal.js';
import { OUTBOUND_SUBJECT_PARAM } from './twilio-call-webhook.js';
import { maskNumber } from './twilio-rest.js';

/** OrchestratorServiceDeps are what the internal API needs. */
export interface OrchestratorServiceDeps {
  readonly live: LiveConversations;
  readonly peers: Pick<
    Peers,
    | 'conversationState'
    | 'endConversation'
    | 'getAgent'
    | 'telephonyAuthToken'
    | 'recordAudit'
    | 'subjectForPhone'
    | 'personGuardrailState'
    | 'savePersonStateIfUnchanged'
  >;
  /** fetch reaches the telephony provider through the egress policy (outbound calls). */
  readonly fetch?: ProviderFetch;
  /** publicUrl is the session port's public https URL: outbound calls ask its call webhook for their TwiML. */
  readonly publicUrl?: string;
  /** audited is whether an audit service is configured: without one no call is placed (it could not be audited). */
  readonly audited: boolean;
  /** logger reports a placed call whose audit event could not be appended, and a refund that failed. */
  readonly logger: Pick<Logger, 'error'>;
}

// A placed call's audit event: tried a few times, since the call is already dialled by then.
const AUDIT_ATTEMPTS = 4;
const AUDIT_RETRY_MS = 250;

// The agent of an outbound call: NOT_FOUND for an unknown one (another workspace's looks the same).
async function agentOf(deps: OrchestratorServiceDeps, tenantId: string, agentId: string) {
  try {
    return await deps.peers.getAgent(tenantId, agentId);
  } catch (err) {
    if (err instanceof SessionRefusal && err.closeCode === CLOSE_CODES.forbidden) throw new NotFoundError('no such agent', { cause: err });
    throw err;
  }
}

async function peer<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    // A refusal at the session port means "tenant-data unavailable" here; the kernel maps Unavailable.
    if (err instanceof SessionRefusal) throw new UnavailableError(err.message, { cause: err });
    throw err;
  }
}

/** createOrchestratorService builds parley.orchestrator.v1.OrchestratorService: live conversations of this replica, and ending one. */
export function createOrchestratorService(deps: OrchestratorServiceDeps): ServiceImpl<typeof OrchestratorService> {
  // One outbound call at a time per person on this replica (the count itself is a compare-and-set
  // in tenant-data, which is what holds across replicas).
  const placing = new Map<string, Promise<unknown>>();
  const onePerPerson = async <T>(key: string, run: () => Promise<T>): Promise<T> => {
    const next = (placing.get(key) ?? Promise.resolve()).then(run, run);
    const settled = next.catch(() => undefined);
    placing.set(key, settled);
    try {
      return await next;
    } finally {
      if (placing.get(key) === settled) placing.delete(key);
    }
  };
  return {
    async getConversationStatus(req) {
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const conversationId = requireUuid(req.conversationId, 'conversation_id');
      if (deps.live.get(tenantId, conversationId) !== undefined) return { state: 'live' };
      return { state: await peer(() => deps.peers.conversationState(tenantId, conversationId)) };
    },
    listLiveConversations(req) {
      const tenantId = req.tenantId === '' ? undefined : requireUuid(req.tenantId, 'tenant_id');
      return {
        conversations: deps.live.list(tenantId).map((c) => ({
          tenantId: c.tenantId,
          conversationId: c.conversationId,
          agentId: c.agentId,
          startedAt: timestampFromDate(c.startedAt),
          turns: c.turns,
        })),
      };
    },
    async endConversation(req) {
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const conversationId = requireUuid(req.conversationId, 'conversation_id');
      if (req.reason.length > 200) throw new InvalidArgumentError('reason must be at most 200 characters', { field: 'reason' });
      const reason = req.reason === '' ? 'ended by an operator' : req.reason;
      const held = deps.live.get(tenantId, conversationId);
      if (held !== undefined) {
        await held.end(reason);
        return { endedHere: true };
      }
      // Held by another replica (or none): record the end; its replica sees it at its next check.
      await peer(() => deps.peers.endConversation(tenantId, conversationId, reason));
      return { endedHere: false };
    },
    async placeCall(req, ctx) {
      // Placed for an operator (forwarded by the edge): the audit event names that principal.
      const operator = fromPrincipal(requirePrincipal(ctx));
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      if (operator.tenantId !== tenantId) throw new InvalidArgumentError('tenant_id must be the forwarded principal’s workspace');
      const agentId = requireUuid(req.agentId, 'agent_id');
      const { fetch, publicUrl } = deps;
      if (fetch === undefined || publicUrl === undefined)
        throw new FailedPreconditionError('this orchestrator is not set up to place outbound calls');
      if (!deps.audited)
        throw new FailedPreconditionError(
          'this orchestrator has no audit service (PARLEY_AUDIT_URL), so it places no calls: they could not be audited',
        );
      const agent = await peer(() => agentOf(deps, tenantId, agentId));
      const settings = providerSettingsSchema.safeParse(agent.providerSettings);
      if (!settings.success) throw new FailedPreconditionError("the agent's provider settings are invalid; fix the agent");
      // The person is the number dialled (tenant-data keeps its keyed hash): their contact attempts
      // are stored with them, so a daily limit holds across calls, agents and replicas.
      const to = calleeNumber(req.to);
      const person = await peer(() => deps.peers.subjectForPhone(tenantId, to));
      const now = new Date();
      const start = { conversationId: randomUUID(), turn: 0, now };
      // countedAt is the time the attempt was counted at (the refund takes back that one).
      let countedAt = now.getTime();
      // The count is a compare-and-set on the person's stored state (tenant-data's revision), so
      // two replicas cannot both take the last attempt; on this replica calls to one person also
      // queue, so they do not spend their rounds on each other.
      const store: PersonStateStore = {
        read: () => peer(() => deps.peers.personGuardrailState(tenantId, person.id)),
        writeIfUnchanged: (state, revision) => peer(() => deps.peers.savePersonStateIfUnchanged(tenantId, person.id, state, revision)),
      };
      const callSid = await onePerPerson(`${tenantId}/${person.id}`, () =>
        placeOutboundCall({
          to,
          // The checker runs the outbound start as a conversation's start would, before anything is dialled.
          admit: () => {
            if (person.doNotContact) {
              // Refused before their state is read, and no attempt counted: the policy's own rule
              // names itself when it enforces the list, and the workspace's list binds every agent
              // even when its policy does not.
              try {
                checkOutboundCall(createGuardrailStage(agent.guardrailPolicy), start, { doNotContact: true });
              } catch (err) {
                // Another rule (a sleep window) may have decided first: the list's refusal is the one that holds.
                if (err instanceof PermissionDeniedError) throw err;
              }
              throw new PermissionDeniedError("the call is refused before dialling: the person is on the workspace's do-not-contact list");
            }
            return admitContactAttempt(store, (stored) => {
              // The checker ignores attempts later than its clock, and another replica's clock may
              // run ahead of ours: decide just after the latest attempt stored, so it is counted.
              const latest = (stored?.person.contactAttempts ?? []).reduce((a, b) => Math.max(a, b), 0);
              countedAt = Math.max(now.getTime(), latest + 1);
              const stage = createGuardrailStage(agent.guardrailPolicy, stored);
              checkOutboundCall(stage, { ...start, now: new Date(countedAt) }, {});
              return stage.state;
            });
          },
          refund: async () => {
            try {
              await refundContactAttempt(store, countedAt);
            } catch (err) {
              deps.logger.error(
                { err, tenantId, agentId },
                'a call Twilio did not place keeps its counted contact attempt: the refund failed',
              );
            }
          },
          fetch,
          telephony: settings.data.telephony,
          authToken: () => deps.peers.telephonyAuthToken(tenantId, agentId),
          // Twilio asks the call webhook once the callee answers: identity mints the call's session
          // token then, bound to the CallSid, so no token exists before (or outlives) the call. The
          // URL names the person called (its query is signed by Twilio with the URL), so the
          // answered call's conversation is theirs: sealed for them, erased when they are forgotten.
          webhookUrl: `${publicUrl}/v1/telephony/twilio/voice/${tenantId}/${agentId}?${OUTBOUND_SUBJECT_PARAM}=${person.id}`,
        }),
      );
      // The call is dialled: an error now would invite a retry that dials again, so the audit
      // append is retried and, if audit stays away, the call is still answered and the gap logged.
      const event = {
        ...operator,
        action: 'call.place' as const,
        target: { type: 'agent', id: agentId },
        details: auditDetails({ call_sid: callSid, to: maskNumber(req.to) }, ['call_sid', 'to']),
      };
      await retrying(() => deps.peers.recordAudit(event), {
        attempts: AUDIT_ATTEMPTS,
        delayMs: AUDIT_RETRY_MS,
        retryable: () => true,
      }).catch((err: unknown) =>
        deps.logger.error({ err, tenantId, agentId, callSid }, 'outbound call placed but its call.place audit event was not appended'),
      );
      return { callSid };
    },
  };
}
