import { auditChanges, auditDetails, auditedTransactions, fromPrincipal } from '@parley/audit-outbox';
import { requireUuid, withTenant } from '@parley/db';
import { InvalidArgumentError, PermissionDeniedError } from '@parley/platform';
import { isRole, roleRank, scopedPrincipal, type Role } from '@parley/scopes';
import * as keys from '../api-key.store.js';
import type { MemberRow } from '../db/tables.js';
import * as members from '../member.store.js';
import { actingMember } from './acting-member.js';
import { timestampOf, type IdentityDeps, type IdentityHandlers } from './deps.js';

function memberMessage(row: MemberRow) {
  return { id: row.id, email: row.email, displayName: row.display_name, role: row.role, createdAt: timestampOf(row.created_at) };
}

function requireRole(value: string): Role {
  if (!isRole(value)) throw new InvalidArgumentError('role must be one of owner, admin, developer, viewer', { field: 'role' });
  return value;
}

/**
 * memberHandlers manage a workspace's members for a forwarded principal with members:admin. No
 * one adds, promotes or removes anyone above their own role.
 */
export function memberHandlers(deps: IdentityDeps): IdentityHandlers<'addMember' | 'listMembers' | 'updateMemberRole' | 'removeMember'> {
  const { db } = deps;
  const audited = auditedTransactions(db, deps.onAudit);
  return {
    async addMember(req, ctx) {
      const p = scopedPrincipal(ctx, 'members:admin');
      const role = requireRole(req.role);
      const email = req.email.trim().toLowerCase();
      if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 320)
        throw new InvalidArgumentError('email must be an e-mail address', { field: 'email' });
      if (req.displayName.length > 200)
        throw new InvalidArgumentError('display_name must be at most 200 characters', { field: 'display_name' });
      return audited(p.tenantId, async (trx, record) => {
        const me = await actingMember(trx, p);
        if (roleRank(role) < roleRank(me.role as Role)) throw new PermissionDeniedError(`a ${me.role} cannot add a member as ${role}`);
        const row = await members.addMember(trx, { email, displayName: req.displayName.trim(), role });
        await record({
          ...fromPrincipal(p),
          action: 'member.add',
          target: { type: 'member', id: row.id },
          details: auditDetails({ role }, ['role']),
        });
        return { member: memberMessage(row) };
      });
    },

    async listMembers(_req, ctx) {
      const p = scopedPrincipal(ctx, 'members:admin');
      const rows = await withTenant(db, p.tenantId, async (trx) => {
        await actingMember(trx, p); // refuses a rotated or revoked key the edge may still have cached
        return members.listMembers(trx);
      });
      return { members: rows.map(memberMessage) };
    },

    async updateMemberRole(req, ctx) {
      const p = scopedPrincipal(ctx, 'members:admin');
      const id = requireUuid(req.memberId, 'member_id');
      const role = requireRole(req.role);
      return audited(p.tenantId, async (trx, record) => {
        const me = await actingMember(trx, p);
        const target = await members.getMember(trx, id);
        const myRank = roleRank(me.role as Role);
        if (roleRank(role) < myRank || roleRank(target.role as Role) < myRank) {
          throw new PermissionDeniedError(`a ${me.role} cannot change a ${target.role} to ${role}`);
        }
        const row = await members.updateMemberRole(trx, id, role);
        await record({
          ...fromPrincipal(p),
          action: 'member.role_change',
          target: { type: 'member', id },
          details: auditChanges({ role: target.role }, { role }, ['role']),
        });
        return { member: memberMessage(row) };
      });
    },

    async removeMember(req, ctx) {
      const p = scopedPrincipal(ctx, 'members:admin');
      const id = requireUuid(req.memberId, 'member_id');
      return audited(p.tenantId, async (trx, record) => {
        const me = await actingMember(trx, p);
        const target = await members.getMember(trx, id);
        if (roleRank(target.role as Role) < roleRank(me.role as Role))
          throw new PermissionDeniedError(`a ${me.role} cannot remove a ${target.role}`);
        const revoked = await keys.revokeKeysOfMember(trx, id);
        await members.removeMember(trx, id);
        await record({
          ...fromPrincipal(p),
          action: 'member.remove',
          target: { type: 'member', id },
          details: auditDetails({ revoked_keys: revoked }, ['revoked_keys']),
        });
        return {};
      });
    },
  };
}
