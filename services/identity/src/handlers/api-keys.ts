import { timestampDate } from '@bufbuild/protobuf/wkt';
import { isWorkspaceSuspended } from '../workspace.store.js';
import { auditDetails, auditedTransactions, fromPrincipal, noDetails } from '@parley/audit-outbox';
import { requireUuid, withTenant } from '@parley/db';
import {
  recordThrottleBlock,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  type Principal,
} from '@parley/platform';
import { allowedByRole, isManagementScope, isRole, isScope, roleRank, scopedPrincipal, type Role, type Scope } from '@parley/scopes';
import { generateApiKey, hashApiKey, parseApiKey, sameHash } from '../api-key-format.js';
import * as keys from '../api-key.store.js';
import type { ApiKeyRow, MemberRow } from '../db/tables.js';
import { findMember } from '../member.store.js';
import { countFailedAttempt } from '../throttle.store.js';
import { actingMember } from './acting-member.js';
import { timestampOf, type IdentityDeps, type IdentityHandlers, type Trx } from './deps.js';

function apiKeyMessage(row: ApiKeyRow) {
  return {
    id: row.id,
    name: row.name,
    prefix: `pk_${row.environment}_${row.key_id}`,
    scopes: row.scopes,
    createdByMemberId: row.created_by_member_id ?? '',
    createdAt: timestampOf(row.created_at),
    lastUsedAt: timestampOf(row.last_used_at),
    expiresAt: timestampOf(row.expires_at),
    revokedAt: timestampOf(row.revoked_at),
    rotatedToId: row.rotated_to_id ?? '',
  };
}

// A principal may only act on keys that carry nothing it does not carry itself.
function requireCovers(p: Principal, row: ApiKeyRow, verb: string): void {
  const missing = row.scopes.filter((s) => !p.scopes.includes(s));
  if (missing.length > 0) throw new PermissionDeniedError(`cannot ${verb} a key with scopes you do not hold: ${missing.join(', ')}`);
}

// A key may be revoked by its creator, by an owner, or by a member who strictly outranks its
// creator, so that a lower role cannot cut off a higher role's integrations.
async function requireMayRevoke(trx: Trx, me: MemberRow, key: ApiKeyRow): Promise<void> {
  if (key.created_by_member_id === me.id || me.role === 'owner') return;
  const creator = key.created_by_member_id === null ? undefined : await findMember(trx, key.created_by_member_id);
  // A removed creator's keys were revoked with them; only an admin (or owner) touches them.
  const creatorRank = creator !== undefined && isRole(creator.role) ? roleRank(creator.role) : roleRank('developer');
  if (isRole(me.role) && roleRank(me.role) < creatorRank) return;
  const by = creator === undefined ? 'a removed member' : `a member with role ${creator.role}`;
  throw new PermissionDeniedError(
    `cannot revoke this key: it was created by ${by}, which your role (${me.role}) does not outrank; ask its creator or an owner`,
  );
}

function parseScopes(requested: readonly string[], p: Principal, role: Role): Scope[] {
  if (requested.length === 0)
    throw new InvalidArgumentError('scopes must name at least one scope (least privilege: only what the key needs)', { field: 'scopes' });
  const out = new Set<Scope>();
  for (const s of requested) {
    if (!isScope(s)) throw new InvalidArgumentError(`unknown scope "${s.slice(0, 64)}"`, { field: 'scopes' });
    if (!allowedByRole(role, s)) throw new PermissionDeniedError(`a ${role} cannot hold the "${s}" scope`);
    if (!p.scopes.includes(s)) throw new PermissionDeniedError(`cannot grant "${s}": the calling key does not hold it`);
    out.add(s);
  }
  return [...out];
}

function requireName(name: string): string {
  const n = name.trim();
  if (n.length < 1 || n.length > 200) throw new InvalidArgumentError('name must be 1-200 characters', { field: 'name' });
  return n;
}

const FAILURE_MESSAGES: Record<string, string | undefined> = {
  unknown: undefined,
  revoked: 'API key has been revoked; create or use another key',
  expired: 'API key has expired; rotate it or create a new key',
  rotated: 'API key was rotated and its overlap has ended; use the key that replaced it',
  member_removed: 'API key belonged to a member who was removed; create a new key',
};

/**
 * apiKeyHandlers authenticate API keys for the edge and manage them for a forwarded principal.
 * Scopes are re-checked here, so identity is safe even if a route's scope were mis-set at the edge.
 */
export function apiKeyHandlers(
  deps: IdentityDeps,
): IdentityHandlers<'authenticateApiKey' | 'createApiKey' | 'listApiKeys' | 'rotateApiKey' | 'revokeApiKey'> {
  const { db, config, logger } = deps;
  const audited = auditedTransactions(db, deps.onAudit);

  const newKey = async (
    trx: Trx,
    tenantId: string,
    input: { name: string; scopes: readonly string[]; memberId: string; expiresAt: Date | null },
  ) => {
    const generated = generateApiKey(tenantId, config.apiKeyEnvironment);
    const row = await keys.insertApiKey(trx, {
      keyId: generated.keyId,
      environment: generated.environment,
      name: input.name,
      secretHash: hashApiKey(config.apiKeyPepper, generated.key),
      scopes: input.scopes,
      createdByMemberId: input.memberId,
      expiresAt: input.expiresAt,
    });
    return { row, secret: generated.key };
  };

  return {
    async authenticateApiKey(req) {
      // The key is checked before the source throttle: a valid key (≈238 secret bits, which is
      // what protects it) is never refused because others behind the same address failed. Only
      // failures are counted, and a blocked source's further failures get RESOURCE_EXHAUSTED.
      const source = (req.source || 'unknown').slice(0, 128);
      const parsed = parseApiKey(req.apiKey);
      const fail = async (reason: string, message = 'API key is not valid: check that you copied the whole key') => {
        const result = await countFailedAttempt(db, source, config.throttle);
        logger.warn(
          {
            source,
            key_prefix: parsed?.prefix,
            reason,
            failures: result.failures,
            blocked: result.blockedUntil !== undefined,
          },
          'api key authentication failed',
        );
        if (result.refused && result.blockedUntil !== undefined) {
          recordThrottleBlock('api_key_source');
          const seconds = Math.max(1, Math.ceil((result.blockedUntil.getTime() - Date.now()) / 1000));
          return new ResourceExhaustedError(`too many failed API key attempts from this address; retry in ${seconds} s`);
        }
        return new UnauthenticatedError(message);
      };
      if (parsed === undefined) throw await fail('malformed');
      if (parsed.environment !== config.apiKeyEnvironment) {
        throw await fail(
          'environment',
          `this is a pk_${parsed.environment} key; this deployment accepts pk_${config.apiKeyEnvironment} keys`,
        );
      }
      type Outcome = { reason: 'unknown' | 'revoked' | 'expired' | 'rotated' | 'member_removed' } | { row: ApiKeyRow; scopes: string[] };
      const outcome = await withTenant(db, parsed.tenantId, async (trx): Promise<Outcome> => {
        const row = await keys.findApiKeyByKeyId(trx, parsed.keyId);
        // Hash even when no row exists, so that timing does not tell whether a key id exists.
        const presented = hashApiKey(config.apiKeyPepper, req.apiKey);
        if (row === undefined || !sameHash(presented, row.secret_hash)) return { reason: 'unknown' };
        if (row.revoked_at !== null) return { reason: 'revoked' };
        if (row.expires_at !== null && row.expires_at.getTime() <= Date.now())
          return { reason: row.rotated_to_id === null ? 'expired' : 'rotated' };
        const member = row.created_by_member_id === null ? undefined : await findMember(trx, row.created_by_member_id);
        if (member === undefined || !isRole(member.role)) return { reason: 'member_removed' };
        await keys.touchApiKey(trx, row.id);
        const role = member.role;
        // A key rotated away is in its overlap: it keeps its data scopes so that deployments
        // can switch over, but never a management scope, so that a leaked old key cannot rotate
        // its successor, mint keys or touch members (actingMember re-checks this per call).
        const rotated = row.rotated_to_id !== null;
        return { row, scopes: row.scopes.filter((s) => allowedByRole(role, s) && !(rotated && isManagementScope(s))) };
      });
      if ('reason' in outcome) throw await fail(outcome.reason, FAILURE_MESSAGES[outcome.reason]);
      // A valid key of a suspended workspace: refused, but not counted as a guess.
      if (await isWorkspaceSuspended(db, parsed.tenantId))
        throw new UnauthenticatedError(
          "this workspace is suspended; its API keys stop working until the deployment's administrators lift it",
        );
      return { principal: { tenantId: parsed.tenantId, kind: 'api_key', id: outcome.row.id, scopes: outcome.scopes } };
    },

    async createApiKey(req, ctx) {
      const p = scopedPrincipal(ctx, 'api_keys:admin');
      const name = requireName(req.name);
      const expiresAt = req.expiresAt === undefined ? null : timestampDate(req.expiresAt);
      if (expiresAt !== null && expiresAt.getTime() <= Date.now())
        throw new InvalidArgumentError('expires_at must be in the future', { field: 'expires_at' });
      return audited(p.tenantId, async (trx, record) => {
        const member = await actingMember(trx, p);
        const scopes = parseScopes(req.scopes, p, member.role as Role);
        const { row, secret } = await newKey(trx, p.tenantId, { name, scopes, memberId: member.id, expiresAt });
        await record({
          ...fromPrincipal(p),
          action: 'api_key.create',
          target: { type: 'api_key', id: row.id },
          details: auditDetails(
            { name, scopes, expires_at: expiresAt?.toISOString() ?? null, prefix: `pk_${row.environment}_${row.key_id}` },
            ['name', 'scopes', 'expires_at', 'prefix'],
          ),
        });
        return { apiKey: apiKeyMessage(row), secret };
      });
    },

    async listApiKeys(_req, ctx) {
      const p = scopedPrincipal(ctx, 'api_keys:admin');
      const rows = await withTenant(db, p.tenantId, async (trx) => {
        await actingMember(trx, p);
        return keys.listApiKeys(trx);
      });
      return { apiKeys: rows.map(apiKeyMessage) };
    },

    async rotateApiKey(req, ctx) {
      const p = scopedPrincipal(ctx, 'api_keys:admin');
      const id = requireUuid(req.apiKeyId, 'api_key_id');
      // 0 (proto3 cannot tell it from unset) is no overlap: the old key stops at once, which is
      // what a rotation after a leak needs. An overlap is always asked for explicitly.
      const overlap = req.overlapSeconds;
      if (overlap > 30 * 86_400)
        throw new InvalidArgumentError('overlap_seconds may be at most 2592000 (30 days)', { field: 'overlap_seconds' });
      return audited(p.tenantId, async (trx, record) => {
        const old = await keys.getApiKey(trx, id, true);
        if (old === undefined) throw new NotFoundError(`API key ${id} does not exist in this workspace`);
        // Rotation hands the new secret to the caller, and the new key acts for the old key's
        // creator: anyone else rotating would get that member's powers (and keep them after
        // their own removal). So only the creator rotates; others may revoke.
        const me = await actingMember(trx, p);
        if (old.created_by_member_id !== me.id)
          throw new PermissionDeniedError('only the member who created a key can rotate it; revoke it and create a new one');
        if (old.revoked_at !== null) throw new FailedPreconditionError('this key is revoked; create a new key instead');
        if (old.rotated_to_id !== null)
          throw new FailedPreconditionError(`this key was already rotated to ${old.rotated_to_id}; rotate that one`);
        if (old.expires_at !== null && old.expires_at.getTime() <= Date.now())
          throw new FailedPreconditionError('this key has expired; create a new key instead');
        requireCovers(p, old, 'rotate');
        const { row, secret } = await newKey(trx, p.tenantId, {
          name: old.name,
          scopes: old.scopes,
          memberId: me.id,
          expiresAt: old.expires_at,
        });
        const previous = await keys.endWithSuccessor(trx, old.id, new Date(Date.now() + overlap * 1000), row.id);
        await record({
          ...fromPrincipal(p),
          action: 'api_key.rotate',
          target: { type: 'api_key', id: old.id },
          details: auditDetails({ successor_id: row.id, overlap_seconds: overlap }, ['successor_id', 'overlap_seconds']),
        });
        return { apiKey: apiKeyMessage(row), secret, previous: apiKeyMessage(previous) };
      });
    },

    async revokeApiKey(req, ctx) {
      const p = scopedPrincipal(ctx, 'api_keys:admin');
      const id = requireUuid(req.apiKeyId, 'api_key_id');
      const result = await audited(p.tenantId, async (trx, record) => {
        const old = await keys.getApiKey(trx, id, true);
        if (old === undefined) throw new NotFoundError(`API key ${id} does not exist in this workspace`);
        await requireMayRevoke(trx, await actingMember(trx, p), old);
        requireCovers(p, old, 'revoke');
        const row = await keys.revokeApiKey(trx, id);
        // The rest of the rotation chain goes too: predecessors only bridged to this key, and
        // successors may have been minted by whoever held a leaked key. They share this key's
        // creator and scopes, so the checks above hold for them as well.
        const chain = await keys.rotationChain(trx, id);
        const alsoRevokedIds = await keys.revokeApiKeys(trx, [...chain.predecessors, ...(req.keepSuccessors ? [] : chain.successors)]);
        await record({
          ...fromPrincipal(p),
          action: 'api_key.revoke',
          target: { type: 'api_key', id },
          details:
            alsoRevokedIds.length === 0 && !req.keepSuccessors
              ? noDetails()
              : auditDetails({ also_revoked_ids: alsoRevokedIds, keep_successors: req.keepSuccessors }, [
                  'also_revoked_ids',
                  'keep_successors',
                ]),
        });
        return { apiKey: apiKeyMessage(row ?? old), alsoRevokedIds };
      });
      // After the commit: one event per key that stopped working, the chain's included.
      for (const apiKeyId of [id, ...result.alsoRevokedIds]) {
        deps.events?.emit({ tenantId: p.tenantId, type: 'api_key.revoked', data: { api_key_id: apiKeyId } });
      }
      return result;
    },
  };
}
