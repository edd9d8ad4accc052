import { randomBytes, randomUUID } from 'node:crypto';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { Client, ServiceImpl } from '@connectrpc/connect';
import { auditChanges, auditDetails, fromPrincipal, noDetails, recordAuditEvent } from '@parley/audit-outbox';
import { isUuid, requireUuid, withTenant, type TenantTransaction } from '@parley/db';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  requirePrincipal,
  type Logger,
  type Principal,
} from '@parley/platform';
import type { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import {
  DEFAULT_SESSION_TTL_SECONDS,
  MAX_SESSION_TTL_SECONDS,
  SessionTokenError,
  signSessionToken,
  type SessionTokenVerifier,
} from '@parley/session-token';
import type { Kysely } from 'kysely';
import { generateApiKey, hashApiKey, parseApiKey, sameHash } from './api-key-format.js';
import * as keys from './api-key.store.js';
import type { IdentityConfig } from './config.js';
import type { ApiKeyRow, IdentityDb, MemberRow } from './db/tables.js';
import * as members from './member.store.js';
import { allowedByRole, isRole, isScope, roleRank, type Role, type Scope } from '@parley/scopes';
import * as sessions from './session.store.js';
import type { SigningKeyRing } from './signing-keys.js';
import { SYSTEM_TENANT } from './system-tenant.js';
import { blockedUntil, recordFailure } from './throttle.store.js';

type Trx = TenantTransaction<IdentityDb>;

/** IdentityDeps are what the identity handlers need. */
export interface IdentityDeps {
  readonly db: Kysely<IdentityDb>;
  readonly config: IdentityConfig;
  readonly ring: SigningKeyRing;
  readonly verifier: SessionTokenVerifier;
  readonly tenantData: Pick<Client<typeof TenantDataService>, 'getAgent'>;
  readonly logger: Logger;
  /** onAudit is told after a transaction with an audit event committed (wakes the outbox relay). */
  readonly onAudit?: () => void;
}

const ts = (d: Date | null | undefined): Timestamp | undefined => (d === null || d === undefined ? undefined : timestampFromDate(d));

function apiKeyMessage(row: ApiKeyRow) {
  return {
    id: row.id,
    name: row.name,
    prefix: `pk_${row.environment}_${row.key_id}`,
    scopes: row.scopes,
    createdByMemberId: row.created_by_member_id ?? '',
    createdAt: ts(row.created_at),
    lastUsedAt: ts(row.last_used_at),
    expiresAt: ts(row.expires_at),
    revokedAt: ts(row.revoked_at),
    rotatedToId: row.rotated_to_id ?? '',
  };
}

function memberMessage(row: MemberRow) {
  return { id: row.id, email: row.email, displayName: row.display_name, role: row.role, createdAt: ts(row.created_at) };
}

function requireScope(p: Principal, scope: Scope): void {
  if (!p.scopes.includes(scope)) throw new PermissionDeniedError(`this API key lacks the "${scope}" scope`);
}

function requireRole(value: string): Role {
  if (!isRole(value)) throw new InvalidArgumentError('role must be one of owner, admin, developer, viewer', { field: 'role' });
  return value;
}

// actingMember is the member a principal acts for: an API key acts for the member who made it.
async function actingMember(trx: Trx, p: Principal): Promise<MemberRow> {
  let memberId: string | null = p.id;
  if (p.kind === 'api_key') {
    memberId = (await keys.getApiKey(trx, p.id))?.created_by_member_id ?? null;
  } else if (p.kind !== 'member') {
    throw new PermissionDeniedError('a session token cannot manage keys or members');
  }
  if (memberId === null || !isUuid(memberId)) throw new PermissionDeniedError('the member behind this credential no longer exists');
  const row = await trx.selectFrom('members').selectAll().where('id', '=', memberId).executeTakeFirst();
  if (row === undefined) throw new PermissionDeniedError('the member behind this credential no longer exists');
  return row;
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
  const creator =
    key.created_by_member_id === null
      ? undefined
      : await trx.selectFrom('members').select('role').where('id', '=', key.created_by_member_id).executeTakeFirst();
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

function parseOrigin(origin: string): string | null {
  if (origin === '') return null;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new InvalidArgumentError('origin must be an origin such as https://app.example.com', { field: 'origin' });
  }
  const local = url.hostname === 'localhost' || url.hostname === '127.0.0.1';
  if (url.origin !== origin || (url.protocol !== 'https:' && !(local && url.protocol === 'http:'))) {
    throw new InvalidArgumentError('origin must be scheme://host[:port] with https (http only for localhost), no path', {
      field: 'origin',
    });
  }
  return origin;
}

/**
 * createIdentityService builds the IdentityService handlers. End-principal RPCs read the
 * principal the edge forwarded and re-check its scopes here, so identity is safe even if a
 * route's scope were mis-set at the edge. Privileged changes record their audit event in the
 * same transaction.
 */
export function createIdentityService(deps: IdentityDeps): ServiceImpl<typeof IdentityService> {
  const { db, config, ring, verifier, logger } = deps;
  const audited = async <T>(tenantId: string, fn: (trx: Trx) => Promise<T>): Promise<T> => {
    const result = await withTenant(db, tenantId, fn);
    deps.onAudit?.();
    return result;
  };

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
        const result = await withTenant(db, SYSTEM_TENANT, async (trx) => {
          const blocked = await blockedUntil(trx, source);
          // While blocked, failures are refused without being counted (no write per attempt).
          if (blocked !== undefined) return { failures: undefined, blockedUntil: blocked, refused: true };
          return { ...(await recordFailure(trx, source, config.throttle)), refused: false };
        });
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
      type Outcome = { reason: 'unknown' | 'revoked' | 'expired' | 'member_removed' } | { row: ApiKeyRow; scopes: string[] };
      const outcome = await withTenant(db, parsed.tenantId, async (trx): Promise<Outcome> => {
        const row = await keys.findApiKeyByKeyId(trx, parsed.keyId);
        // Hash even when no row exists, so that timing does not tell whether a key id exists.
        const presented = hashApiKey(config.apiKeyPepper, req.apiKey);
        if (row === undefined || !sameHash(presented, row.secret_hash)) return { reason: 'unknown' };
        if (row.revoked_at !== null) return { reason: 'revoked' };
        if (row.expires_at !== null && row.expires_at.getTime() <= Date.now()) return { reason: 'expired' };
        const member =
          row.created_by_member_id === null
            ? undefined
            : await trx.selectFrom('members').select('role').where('id', '=', row.created_by_member_id).executeTakeFirst();
        if (member === undefined || !isRole(member.role)) return { reason: 'member_removed' };
        await keys.touchApiKey(trx, row.id);
        const role = member.role;
        return { row, scopes: row.scopes.filter((s) => allowedByRole(role, s)) };
      });
      if ('reason' in outcome) {
        const messages: Record<string, string | undefined> = {
          unknown: undefined,
          revoked: 'API key has been revoked; create or use another key',
          expired: 'API key has expired; rotate it or create a new key',
          member_removed: 'API key belonged to a member who was removed; create a new key',
        };
        throw await fail(outcome.reason, messages[outcome.reason]);
      }
      return { principal: { tenantId: parsed.tenantId, kind: 'api_key', id: outcome.row.id, scopes: outcome.scopes } };
    },

    getJwks() {
      return { jwksJson: ring.jwksJson(), maxAgeSeconds: 60 };
    },

    async createApiKey(req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'api_keys:admin');
      const name = requireName(req.name);
      const expiresAt = req.expiresAt === undefined ? null : timestampDate(req.expiresAt);
      if (expiresAt !== null && expiresAt.getTime() <= Date.now())
        throw new InvalidArgumentError('expires_at must be in the future', { field: 'expires_at' });
      return audited(p.tenantId, async (trx) => {
        const member = await actingMember(trx, p);
        const scopes = parseScopes(req.scopes, p, member.role as Role);
        const { row, secret } = await newKey(trx, p.tenantId, { name, scopes, memberId: member.id, expiresAt });
        await recordAuditEvent<IdentityDb>(trx, {
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
      const p = requirePrincipal(ctx);
      requireScope(p, 'api_keys:admin');
      const rows = await withTenant(db, p.tenantId, (trx) => keys.listApiKeys(trx));
      return { apiKeys: rows.map(apiKeyMessage) };
    },

    async rotateApiKey(req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'api_keys:admin');
      const id = requireUuid(req.apiKeyId, 'api_key_id');
      const overlap = req.overlapSeconds === 0 ? config.defaultRotationOverlapSeconds : req.overlapSeconds;
      if (overlap > 30 * 86_400)
        throw new InvalidArgumentError('overlap_seconds may be at most 2592000 (30 days)', { field: 'overlap_seconds' });
      return audited(p.tenantId, async (trx) => {
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
        await recordAuditEvent<IdentityDb>(trx, {
          ...fromPrincipal(p),
          action: 'api_key.rotate',
          target: { type: 'api_key', id: old.id },
          details: auditDetails({ successor_id: row.id, overlap_seconds: overlap }, ['successor_id', 'overlap_seconds']),
        });
        return { apiKey: apiKeyMessage(row), secret, previous: apiKeyMessage(previous) };
      });
    },

    async revokeApiKey(req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'api_keys:admin');
      const id = requireUuid(req.apiKeyId, 'api_key_id');
      return audited(p.tenantId, async (trx) => {
        const old = await keys.getApiKey(trx, id, true);
        if (old === undefined) throw new NotFoundError(`API key ${id} does not exist in this workspace`);
        await requireMayRevoke(trx, await actingMember(trx, p), old);
        requireCovers(p, old, 'revoke');
        const row = await keys.revokeApiKey(trx, id);
        await recordAuditEvent<IdentityDb>(trx, {
          ...fromPrincipal(p),
          action: 'api_key.revoke',
          target: { type: 'api_key', id },
          details: noDetails(),
        });
        return { apiKey: apiKeyMessage(row ?? old) };
      });
    },

    async addMember(req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'members:admin');
      const role = requireRole(req.role);
      const email = req.email.trim().toLowerCase();
      if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 320)
        throw new InvalidArgumentError('email must be an e-mail address', { field: 'email' });
      if (req.displayName.length > 200)
        throw new InvalidArgumentError('display_name must be at most 200 characters', { field: 'display_name' });
      return audited(p.tenantId, async (trx) => {
        const me = await actingMember(trx, p);
        if (roleRank(role) < roleRank(me.role as Role)) throw new PermissionDeniedError(`a ${me.role} cannot add a member as ${role}`);
        const row = await members.addMember(trx, { email, displayName: req.displayName.trim(), role });
        await recordAuditEvent<IdentityDb>(trx, {
          ...fromPrincipal(p),
          action: 'member.add',
          target: { type: 'member', id: row.id },
          details: auditDetails({ role }, ['role']),
        });
        return { member: memberMessage(row) };
      });
    },

    async listMembers(_req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'members:admin');
      return { members: (await withTenant(db, p.tenantId, (trx) => members.listMembers(trx))).map(memberMessage) };
    },

    async updateMemberRole(req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'members:admin');
      const id = requireUuid(req.memberId, 'member_id');
      const role = requireRole(req.role);
      return audited(p.tenantId, async (trx) => {
        const me = await actingMember(trx, p);
        const target = await members.getMember(trx, id);
        const myRank = roleRank(me.role as Role);
        if (roleRank(role) < myRank || roleRank(target.role as Role) < myRank) {
          throw new PermissionDeniedError(`a ${me.role} cannot change a ${target.role} to ${role}`);
        }
        const row = await members.updateMemberRole(trx, id, role);
        await recordAuditEvent<IdentityDb>(trx, {
          ...fromPrincipal(p),
          action: 'member.role_change',
          target: { type: 'member', id },
          details: auditChanges({ role: target.role }, { role }, ['role']),
        });
        return { member: memberMessage(row) };
      });
    },

    async removeMember(req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'members:admin');
      const id = requireUuid(req.memberId, 'member_id');
      return audited(p.tenantId, async (trx) => {
        const me = await actingMember(trx, p);
        const target = await members.getMember(trx, id);
        if (roleRank(target.role as Role) < roleRank(me.role as Role))
          throw new PermissionDeniedError(`a ${me.role} cannot remove a ${target.role}`);
        const revoked = await keys.revokeKeysOfMember(trx, id);
        await members.removeMember(trx, id);
        await recordAuditEvent<IdentityDb>(trx, {
          ...fromPrincipal(p),
          action: 'member.remove',
          target: { type: 'member', id },
          details: auditDetails({ revoked_keys: revoked }, ['revoked_keys']),
        });
        return {};
      });
    },

    async createSession(req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'sessions:create');
      const agentId = requireUuid(req.agentId, 'agent_id');
      const ttl = req.ttlSeconds === 0 ? DEFAULT_SESSION_TTL_SECONDS : req.ttlSeconds;
      if (ttl < 30 || ttl > MAX_SESSION_TTL_SECONDS)
        throw new InvalidArgumentError(`ttl_seconds must be between 30 and ${MAX_SESSION_TTL_SECONDS}`, { field: 'ttl_seconds' });
      if (req.subjectRef.length > 200)
        throw new InvalidArgumentError('subject_ref must be at most 200 characters', { field: 'subject_ref' });
      const origin = parseOrigin(req.origin);
      // The agent must exist in this workspace (NOT_FOUND from tenant-data passes through).
      await deps.tenantData.getAgent({ tenantId: p.tenantId, agentId }, { signal: ctx.signal });
      const sid = randomUUID();
      const jti = randomBytes(18).toString('base64url');
      const key = ring.current();
      const { token, claims } = await signSessionToken(key.privateKey, key.kid, {
        issuer: config.sessionIssuer,
        audience: config.sessionAudience,
        tenant: p.tenantId,
        agent: agentId,
        sid,
        jti,
        ...(origin !== null ? { origin } : {}),
        ...(req.subjectRef !== '' ? { subjectRef: req.subjectRef } : {}),
        ttlSeconds: ttl,
      });
      const expiresAt = new Date(claims.exp * 1000);
      await withTenant(db, p.tenantId, (trx) =>
        sessions.insertSession(trx, {
          id: sid,
          jti,
          agentId,
          subjectRef: req.subjectRef === '' ? null : req.subjectRef,
          origin,
          createdByKeyId: p.kind === 'api_key' ? p.id : null,
          expiresAt,
        }),
      );
      // The token rides in the fragment: browsers do not send it to servers or in Referer headers.
      const sessionUrl = `${config.sessionUrl}/v1/sessions/${sid}#token=${token}`;
      return { sessionId: sid, token, expiresAt: timestampFromDate(expiresAt), sessionUrl };
    },

    async verifySession(req) {
      const claims = await verifier.verify(req.token, {
        ...(req.tenantId !== '' ? { tenantId: req.tenantId } : {}),
        ...(req.origin !== '' ? { origin: req.origin } : {}),
      });
      const state = await withTenant(db, claims.tenant, (trx) =>
        req.consume ? sessions.consumeSession(trx, claims.sid, claims.jti) : sessions.sessionState(trx, claims.sid, claims.jti),
      );
      if (state === 'replayed') throw new SessionTokenError('replayed', 'this token was already used to connect; create a new session');
      if (state === 'revoked') throw new SessionTokenError('revoked', 'this session was revoked');
      if (state === 'expired') throw new SessionTokenError('expired', 'token has expired; create a new session');
      if (state === 'unknown') throw new SessionTokenError('claims', 'no such session');
      return {
        claims: {
          tenantId: claims.tenant,
          agentId: claims.agent,
          sessionId: claims.sid,
          jti: claims.jti,
          origin: claims.origin ?? '',
          subjectRef: claims.subject_ref ?? '',
          expiresAt: timestampFromDate(new Date(claims.exp * 1000)),
        },
      };
    },

    async revokeSession(req, ctx) {
      const p = requirePrincipal(ctx);
      requireScope(p, 'sessions:create');
      const sid = requireUuid(req.sessionId, 'session_id');
      await audited(p.tenantId, async (trx) => {
        if (!(await sessions.revokeSession(trx, sid))) throw new NotFoundError(`session ${sid} does not exist in this workspace`);
        if (p.kind !== 'session')
          await recordAuditEvent<IdentityDb>(trx, {
            ...fromPrincipal(p),
            action: 'session.revoke',
            target: { type: 'session', id: sid },
            details: noDetails(),
          });
      });
      return {};
    },
  };
}
