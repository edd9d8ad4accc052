import type { MessageInitShape } from '@bufbuild/protobuf';
import { AgentService, type AgentSchema } from '@parley/proto/parley/api/v1/agents_pb.js';
import {
  TenantDataService,
  type Agent as StoredAgent,
  type GuardrailDecision as StoredDecision,
} from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { forward, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

function agentOf(a: StoredAgent | undefined): MessageInitShape<typeof AgentSchema> | undefined {
  if (a === undefined) return undefined;
  return {
    id: a.id,
    name: a.name,
    prompt: a.prompt,
    voice: a.voice,
    providerSettings: a.providerSettings,
    secretRefs: a.secretRefs,
    guardrailPolicy: a.guardrailPolicy,
    policyVersion: a.policyVersion,
    createdAt: a.createdAt,
    updatedAt: a.updatedAt,
  };
}

/** agentsModule serves parley.api.v1.AgentService, forwarded to tenant-data for the caller's tenant. */
export const agentsModule = definePublicModule(
  AgentService,
  {
    createAgent: 'agents:write',
    getAgent: 'agents:read',
    listAgents: 'agents:read',
    updateAgent: 'agents:write',
    deleteAgent: 'agents:write',
    getGuardrailPolicy: 'agents:read',
    setGuardrailPolicy: 'agents:write',
    // A dry run changes nothing: whoever may read the policy may try it.
    testGuardrailPolicy: 'agents:read',
  },
  (router, deps: PublicDeps) => {
    const tenantData = deps.client('tenant-data', TenantDataService);
    // No tenant_id: tenant-data takes the tenant from the forwarded principal (the authenticated
    // key), never from the request.
    router.service(AgentService, {
      async createAgent(req, ctx) {
        const res = await tenantData.createAgent(
          {
            name: req.name,
            prompt: req.prompt,
            voice: req.voice,
            providerSettings: req.providerSettings,
            secretRefs: req.secretRefs,
            guardrailPolicy: req.guardrailPolicy,
          },
          forward(ctx),
        );
        return { agent: agentOf(res.agent) };
      },
      async getAgent(req, ctx) {
        return { agent: agentOf((await tenantData.getAgent({ agentId: req.agentId }, forward(ctx))).agent) };
      },
      async listAgents(req, ctx) {
        const res = await tenantData.listAgents({ pageSize: req.pageSize, pageToken: req.pageToken }, forward(ctx));
        return { agents: res.agents.map((a) => agentOf(a)!), nextPageToken: res.nextPageToken };
      },
      async updateAgent(req, ctx) {
        const res = await tenantData.updateAgent(
          {
            agentId: req.agentId,
            ...(req.name !== undefined ? { name: req.name } : {}),
            ...(req.prompt !== undefined ? { prompt: req.prompt } : {}),
            voice: req.voice,
            providerSettings: req.providerSettings,
            replaceSecretRefs: req.replaceSecretRefs,
            secretRefs: req.secretRefs,
          },
          forward(ctx),
        );
        return { agent: agentOf(res.agent) };
      },
      async deleteAgent(req, ctx) {
        await tenantData.deleteAgent({ agentId: req.agentId }, forward(ctx));
        return {};
      },
      async getGuardrailPolicy(req, ctx) {
        const { agent } = await tenantData.getAgent({ agentId: req.agentId }, forward(ctx));
        return { guardrailPolicy: agent?.guardrailPolicy, policyVersion: agent?.policyVersion ?? 0 };
      },
      async setGuardrailPolicy(req, ctx) {
        const res = await tenantData.setGuardrailPolicy(
          {
            agentId: req.agentId,
            guardrailPolicy: req.guardrailPolicy,
            expectedPolicyVersion: req.expectedPolicyVersion,
          },
          forward(ctx),
        );
        return { agent: agentOf(res.agent) };
      },
      async testGuardrailPolicy(req, ctx) {
        const res = await tenantData.testGuardrailPolicy(
          {
            policy: req.policy,
            now: req.now,
            timeZone: req.timeZone,
            state: req.state,
            events: req.events,
          },
          forward(ctx),
        );
        const decision = (d: StoredDecision) => ({ kind: d.kind, ruleId: d.ruleId, reason: d.reason, details: d.details });
        return {
          results: res.results.map((r) => ({
            index: r.index,
            ...(r.decision === undefined ? {} : { decision: decision(r.decision) }),
            decisions: r.decisions.map(decision),
          })),
          state: res.state,
          policyVersion: res.policyVersion,
        };
      },
    });
  },
);
