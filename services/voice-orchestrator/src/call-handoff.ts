// Hand-off of a live phone call to a human: when a guardrail rule hands off during a Twilio Media
// Streams call, the call's TwiML is replaced through Twilio's REST API ("update a call") with a
// <Dial> to the number the agent's telephony settings give for the rule's target. The auth token
// is the agent's telephony secret (secrets, audited there as a resolve), the request goes through
// the egress client, and the transfer is audited (`call.handoff`) and written in the transcript.
import { auditDetails, serviceActor } from '@parley/audit-outbox';
import type { Logger } from '@parley/platform';
import type { HandOffRequest } from './conversation.js';
import type { Peers } from './peers.js';
import type { ProviderFetch } from './provider-fetch.js';
import { dialTwiml, handoffNumber, maskNumber, TwilioRestError, updateCallTwiml } from './twilio-rest.js';

/** CallHandOffDeps are what a hand-off needs. */
export interface CallHandOffDeps {
  readonly peers: Peers;
  readonly fetch: ProviderFetch;
  readonly logger: Logger;
}

/** createCallHandOff returns the Media Streams channel's hand-off: it transfers the call and says what happened (never throws). */
export function createCallHandOff(deps: CallHandOffDeps): (call: { callSid: string; request: HandOffRequest }) => Promise<string> {
  return async ({ callSid, request }) => {
    const log = deps.logger.child({ conversation_id: request.conversationId, tenant_id: request.tenantId });
    const target = request.target ?? 'a human';
    const settings = request.telephony;
    const audit = async (outcome: 'success' | 'failure', details: Record<string, unknown>) => {
      try {
        await deps.peers.recordAudit({
          tenantId: request.tenantId,
          actor: serviceActor('voice-orchestrator'),
          action: 'call.handoff',
          target: { type: 'conversation', id: request.conversationId },
          outcome,
          details: auditDetails({ agent_id: request.agentId, rule: request.rule ?? '', target, ...details }, [
            'agent_id',
            'rule',
            'target',
            'number',
            'reason',
          ]),
        });
      } catch (err) {
        log.error({ err: err instanceof Error ? err.message : 'unknown' }, 'the call hand-off could not be audited');
      }
    };
    if (settings === undefined) {
      await audit('failure', { reason: 'the agent has no telephony settings' });
      return `hand-off to ${target} not made: the agent has no telephony settings`;
    }
    const number = handoffNumber(settings, request.target);
    if (number === undefined) {
      await audit('failure', { reason: 'no number for the target and no humanNumber' });
      return `hand-off to ${target} not made: the agent's telephony settings have no number for it (handoffNumbers or humanNumber)`;
    }
    const masked = maskNumber(number);
    try {
      const authToken = await deps.peers.telephonyAuthToken(request.tenantId, request.agentId);
      await updateCallTwiml(deps.fetch, { settings, authToken }, callSid, dialTwiml(number));
    } catch (err) {
      const reason = err instanceof TwilioRestError ? err.message : 'the telephony provider or the credential was unavailable';
      log.warn({ err: err instanceof Error ? err.message : 'unknown', rule: request.rule }, 'call hand-off failed');
      await audit('failure', { number: masked, reason });
      return `hand-off to ${target} at ${masked} failed: ${reason}`;
    }
    log.info({ rule: request.rule, target }, 'call handed off to a human');
    await audit('success', { number: masked });
    return `call handed off to ${target} at ${masked}`;
  };
}
