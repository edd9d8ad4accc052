import { randomUUID } from 'node:crypto';
import type { ServiceImpl } from '@connectrpc/connect';
import { auditDetails, auditedTransactions, fromPrincipal } from '@parley/audit-outbox';
import { requireUuid, withTenant } from '@parley/db';
import { InvalidArgumentError, NotFoundError } from '@parley/platform';
import type { WorkspaceAdminService } from '@parley/proto/parley/identity/v1/workspaces_pb.js';
import { scopedPrincipal } from '@parley/scopes';
import type { WorkspaceRow } from '../db/tables.js';
import { addMember } from '../member.store.js';
import { SYSTEM_TENANT } from '../system-tenant.js';
import * as registry from '../workspace.store.js';
import { timestampOf, type IdentityDeps } from './deps.js';

function workspaceMessage(row: WorkspaceRow) {
  return { id: row.id, name: row.name, createdAt: timestampOf(row.created_at), suspendedAt: timestampOf(row.suspended_at) };
}

function requireEmail(value: string, field: string): string {
  const email = value.trim().toLowerCase();
  if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 320)
    throw new InvalidArgumentError(`${field} must be an e-mail address`, { field });
  return email;
}

/**
 * workspaceHandlers serve WorkspaceAdminService for principals with deployment:admin (forwarded by
 * the edge). Registry changes are audited in the system tenant; a new owner is audited in the
 * workspace too, so its own log shows who was let in.
 */
export function workspaceHandlers(deps: IdentityDeps): ServiceImpl<typeof WorkspaceAdminService> {
  const { db } = deps;
  const audited = auditedTransactions(db, deps.onAudit);
  const addOwner = async (p: ReturnType<typeof scopedPrincipal>, workspaceId: string, email: string, displayName: string) =>
    audited(workspaceId, async (trx, record) => {
      const owner = await addMember(trx, { email, displayName, role: 'owner' });
      await record({
        ...fromPrincipal(p),
        tenantId: workspaceId,
        action: 'member.add',
        target: { type: 'member', id: owner.id },
        details: auditDetails({ role: 'owner', by: 'deployment admin' }, ['role', 'by']),
      });
      return owner;
    });

  return {
    async createWorkspace(req, ctx) {
      const p = scopedPrincipal(ctx, 'deployment:admin');
      const name = req.name.trim();
      if (name.length < 1 || name.length > 200) throw new InvalidArgumentError('name must be 1 to 200 characters', { field: 'name' });
      const email = requireEmail(req.ownerEmail, 'owner_email');
      if (req.ownerDisplayName.length > 200)
        throw new InvalidArgumentError('owner_display_name must be at most 200 characters', { field: 'owner_display_name' });
      if (deps.workspaces === undefined) throw new InvalidArgumentError('this identity has no tenant-data peer to create workspaces in');
      const id = randomUUID();
      // tenant-data first (its workspace row anchors every tenant table there), then the registry
      // and the first owner here; a failure in between leaves an empty workspace nobody can use.
      await deps.workspaces.createWorkspace({ tenantId: id, name });
      const row = await audited(SYSTEM_TENANT, async (trx, record) => {
        await registry.registerWorkspace(trx, id, name);
        await record({
          ...fromPrincipal(p),
          tenantId: SYSTEM_TENANT,
          action: 'workspace.create',
          target: { type: 'workspace', id },
          details: auditDetails({ name }, ['name']),
        });
        return registry.findWorkspace(trx, id);
      });
      const owner = await addOwner(p, id, email, req.ownerDisplayName.trim());
      return { workspace: row === undefined ? undefined : workspaceMessage(row), ownerMemberId: owner.id };
    },

    async listWorkspaces(_req, ctx) {
      scopedPrincipal(ctx, 'deployment:admin');
      const rows = await withTenant(db, SYSTEM_TENANT, (trx) => registry.listWorkspaces(trx));
      return { workspaces: rows.map(workspaceMessage) };
    },

    async suspendWorkspace(req, ctx) {
      const p = scopedPrincipal(ctx, 'deployment:admin');
      const id = requireUuid(req.workspaceId, 'workspace_id');
      const row = await audited(SYSTEM_TENANT, async (trx, record) => {
        const found = await registry.suspendWorkspace(trx, id);
        if (found === undefined) throw new NotFoundError(`workspace ${id} does not exist`);
        await record({
          ...fromPrincipal(p),
          tenantId: SYSTEM_TENANT,
          action: 'workspace.suspend',
          target: { type: 'workspace', id },
          details: auditDetails({}, []),
        });
        return found;
      });
      return { workspace: workspaceMessage(row) };
    },

    async addWorkspaceOwner(req, ctx) {
      const p = scopedPrincipal(ctx, 'deployment:admin');
      const id = requireUuid(req.workspaceId, 'workspace_id');
      const email = requireEmail(req.email, 'email');
      const known = await withTenant(db, SYSTEM_TENANT, (trx) => registry.findWorkspace(trx, id));
      if (known === undefined) throw new NotFoundError(`workspace ${id} does not exist`);
      const owner = await addOwner(p, id, email, req.displayName.trim());
      return { memberId: owner.id };
    },
  };
}
