import { changeActor } from '@parley/audit-outbox';
import type { JsonObject } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { InvalidArgumentError, requestTenant } from '@parley/platform';
import { getAgent, setGuardrailPolicy } from '../agent.store.js';
import { policyReplaced } from '../audit.js';
import { runDryRun } from '../guardrail-dry-run.js';
import { countGuardrailDecisions, recordGuardrailDecision } from '../guardrail-decision.store.js';
import { putGuardrailState, readGuardrailState } from '../guardrail-state.store.js';
import { tenantScopes, type TenantDataDeps, type TenantDataHandlers } from './deps.js';
import { agentMessage } from './messages.js';

/** guardrailHandlers replace and dry-run an agent's guardrail policy, keep the guardrail state of conversations and subjects, and record and count decisions. */
export function guardrailHandlers(
  deps: TenantDataDeps,
): TenantDataHandlers<
  | 'setGuardrailPolicy'
  | 'testGuardrailPolicy'
  | 'getGuardrailState'
  | 'putGuardrailState'
  | 'recordGuardrailDecision'
  | 'countGuardrailDecisions'
> {
  const { inTenant, audited } = tenantScopes(deps);
  return {
    async setGuardrailPolicy(req, ctx) {
      if (req.guardrailPolicy === undefined) {
        throw new InvalidArgumentError('guardrail_policy is required: send the whole policy document ({"version": 1, ...})', {
          field: 'guardrail_policy',
        });
      }
      const policy = req.guardrailPolicy;
      const expected = req.expectedPolicyVersion === 0 ? undefined : req.expectedPolicyVersion;
      const agent = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const before = await getAgent(trx, req.agentId, { forUpdate: true });
        const after = await setGuardrailPolicy(trx, before.id, policy, expected);
        await record({
          ...changeActor(ctx, tenant),
          action: 'guardrail_policy.set',
          target: { type: 'agent', id: after.id },
          details: policyReplaced(before, after),
        });
        return after;
      });
      return { agent: agentMessage(agent) };
    },

    async testGuardrailPolicy(req, ctx) {
      const source = req.policy;
      const tenantId = requestTenant(ctx, req.tenantId);
      const agent = await inTenant(tenantId, ctx, (trx) =>
        source.case === 'agentId' ? getAgent(trx, source.value) : Promise.resolve(undefined),
      );
      if (agent === undefined && source.case !== 'guardrailPolicy') {
        throw new InvalidArgumentError('agent_id or guardrail_policy is required: name a stored agent or send a policy document', {
          field: 'agent_id',
        });
      }
      return runDryRun({
        document: agent?.guardrail_policy ?? source.value,
        documentField: 'guardrail_policy',
        policyVersion: agent?.policy_version ?? 0,
        now: req.now === undefined ? undefined : timestampDate(req.now),
        timeZone: req.timeZone,
        tenantId,
        state: req.state,
        events: req.events,
      });
    },

    async getGuardrailState(req, ctx) {
      const stored = await inTenant(req.tenantId, ctx, (trx) =>
        readGuardrailState(trx, { conversationId: req.conversationId, subjectId: req.subjectId }),
      );
      return stored === undefined
        ? { found: false }
        : { found: true, state: stored.state as unknown as JsonObject, personRevision: stored.personRevision };
    },

    async putGuardrailState(req, ctx) {
      if (req.state === undefined)
        throw new InvalidArgumentError('state is required: the guardrail state ({"version": 1, "conversation": …, "person": …})', {
          field: 'state',
        });
      const state = req.state;
      const outcome = await inTenant(req.tenantId, ctx, (trx) =>
        putGuardrailState(trx, { conversationId: req.conversationId, subjectId: req.subjectId }, state, req.expectedPersonRevision),
      );
      return { personConflict: outcome.conflict, personRevision: outcome.personRevision };
    },

    async recordGuardrailDecision(req, ctx) {
      await inTenant(req.tenantId, ctx, (trx) =>
        recordGuardrailDecision(trx, {
          conversationId: req.conversationId,
          turn: req.turn,
          rule: req.rule,
          action: req.action,
          checked: req.on,
        }),
      );
      return {};
    },

    async countGuardrailDecisions(req, ctx) {
      if (req.since === undefined || req.until === undefined)
        throw new InvalidArgumentError('since and until are required: the range of decision times to count', {
          field: req.since === undefined ? 'since' : 'until',
        });
      const since = timestampDate(req.since);
      const until = timestampDate(req.until);
      const counts = await inTenant(req.tenantId, ctx, (trx) => countGuardrailDecisions(trx, since, until));
      return { counts: counts.map((c) => ({ ...c, count: BigInt(c.count) })) };
    },
  };
}
