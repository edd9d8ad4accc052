import { auditDetails, changeActor } from '@parley/audit-outbox';
import { nextPageToken, pageRequestOf } from '@parley/db';
import { InvalidArgumentError, requestTenant } from '@parley/platform';
import { randomUUID } from 'node:crypto';
import { agentChanged, agentCreated, agentDeleted } from '../audit.js';
import { createAgent, deleteAgent, getAgent, listAgents, updateAgent, type AgentPatch } from '../agent.store.js';
import { requireOwnSecrets } from '../secret-directory.js';
import { ensureWorkspaceCreated, getWorkspace } from '../workspace.store.js';
import { tenantScopes, type TenantDataDeps, type TenantDataHandlers } from './deps.js';
import { agentMessage, workspaceMessage } from './messages.js';

/** agentHandlers create and manage workspaces and their agents; each change records its audit event in the same transaction. */
export function agentHandlers(
  deps: TenantDataDeps,
): TenantDataHandlers<'createWorkspace' | 'getWorkspace' | 'createAgent' | 'getAgent' | 'listAgents' | 'updateAgent' | 'deleteAgent'> {
  const { inTenant, audited } = tenantScopes(deps);
  return {
    async createWorkspace(req, ctx) {
      const tenantId = req.tenantId === '' ? randomUUID() : req.tenantId;
      const workspace = await audited(tenantId, ctx, async (trx, record, tenant) => {
        const { workspace: w, created } = await ensureWorkspaceCreated(trx, { name: req.name });
        // A retried bootstrap finds its workspace: one creation, one event.
        if (created) {
          await record({
            ...changeActor(ctx, tenant),
            action: 'workspace.create',
            target: { type: 'workspace', id: w.id },
            details: auditDetails({ name: w.name }, ['name']),
          });
        }
        return w;
      });
      return { workspace: workspaceMessage(workspace) };
    },

    async getWorkspace(req, ctx) {
      return { workspace: workspaceMessage(await inTenant(req.tenantId, ctx, (trx) => getWorkspace(trx))) };
    },

    async createAgent(req, ctx) {
      await requireOwnSecrets(deps.secrets, requestTenant(ctx, req.tenantId), req.secretRefs);
      const agent = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const created = await createAgent(trx, {
          name: req.name,
          prompt: req.prompt,
          ...(req.voice === undefined ? {} : { voice: req.voice }),
          ...(req.providerSettings === undefined ? {} : { providerSettings: req.providerSettings }),
          secretRefs: req.secretRefs,
          ...(req.guardrailPolicy === undefined ? {} : { guardrailPolicy: req.guardrailPolicy }),
        });
        await record({
          ...changeActor(ctx, tenant),
          action: 'agent.create',
          target: { type: 'agent', id: created.id },
          details: agentCreated(created),
        });
        return created;
      });
      return { agent: agentMessage(agent) };
    },

    async getAgent(req, ctx) {
      return { agent: agentMessage(await inTenant(req.tenantId, ctx, (trx) => getAgent(trx, req.agentId))) };
    },

    async listAgents(req, ctx) {
      const page = await inTenant(req.tenantId, ctx, (trx) => listAgents(trx, pageRequestOf(req)));
      return { agents: page.items.map(agentMessage), nextPageToken: nextPageToken(page) };
    },

    async updateAgent(req, ctx) {
      if (!req.replaceSecretRefs && Object.keys(req.secretRefs).length > 0) {
        throw new InvalidArgumentError(
          'secret_refs is set but replace_secret_refs is false: set replace_secret_refs to replace the whole map',
          { field: 'replace_secret_refs' },
        );
      }
      if (req.replaceSecretRefs) await requireOwnSecrets(deps.secrets, requestTenant(ctx, req.tenantId), req.secretRefs);
      const patch: AgentPatch = {
        ...(req.name === undefined ? {} : { name: req.name }),
        ...(req.prompt === undefined ? {} : { prompt: req.prompt }),
        ...(req.voice === undefined ? {} : { voice: req.voice }),
        ...(req.providerSettings === undefined ? {} : { providerSettings: req.providerSettings }),
        ...(req.replaceSecretRefs ? { secretRefs: req.secretRefs } : {}),
      };
      const agent = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const before = await getAgent(trx, req.agentId, { forUpdate: true });
        const after = await updateAgent(trx, before.id, patch);
        await record({
          ...changeActor(ctx, tenant),
          action: 'agent.update',
          target: { type: 'agent', id: after.id },
          details: agentChanged(before, after),
        });
        return after;
      });
      return { agent: agentMessage(agent) };
    },

    async deleteAgent(req, ctx) {
      await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const agent = await getAgent(trx, req.agentId, { forUpdate: true });
        await deleteAgent(trx, agent.id);
        await record({
          ...changeActor(ctx, tenant),
          action: 'agent.delete',
          target: { type: 'agent', id: agent.id },
          details: agentDeleted(agent),
        });
      });
      return {};
    },
  };
}
