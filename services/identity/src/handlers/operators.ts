import { createHash } from 'node:crypto';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { auditedTransactions, noDetails } from '@parley/audit-outbox';
import { isUuid, withTenant } from '@parley/db';
import {
  InvalidArgumentError,
  PermissionDeniedError,
  recordThrottleBlock,
  ResourceExhaustedError,
  UnauthenticatedError,
} from '@parley/platform';
import { OperatorSessionKind, type OperatorService } from '@parley/proto/parley/identity/v1/operators_pb.js';
import { DEPLOYMENT_SCOPES, isRole, ROLE_SCOPES } from '@parley/scopes';
import { SYSTEM_TENANT } from '../system-tenant.js';
import { addMember } from '../member.store.js';
import { findWorkspaces, isWorkspaceSuspended } from '../workspace.store.js';
import { hashApiKey, sameHash } from '../api-key-format.js';
import type { MemberRow } from '../db/tables.js';
import { generateOperatorToken, parseOperatorToken, type OperatorTokenKind } from '../operator-token.js';
import * as store from '../operator-session.store.js';
import { countFailedAttempt } from '../throttle.store.js';
import { timestampOf, type IdentityDeps } from './deps.js';

/** CLI_CODE_MS is how long a CLI's one-time sign-in code may wait for its exchange. */
const CLI_CODE_MS = 60_000;
/** CLI_ACCESS_MS is the lifetime of a CLI bearer token; the refresh token renews it. */
const CLI_ACCESS_MS = 3_600_000;
/** CLI_REFRESH_MS is the lifetime of a CLI refresh token; each refresh replaces it. */
const CLI_REFRESH_MS = 30 * 86_400_000;
/** CLI_SESSION_MAX_MS is a CLI session's absolute lifetime from sign-in: no refresh extends it. */
const CLI_SESSION_MAX_MS = 30 * 86_400_000;

type OperatorTokensInit = { accessToken: string; refreshToken: string; expiresAt?: Timestamp; refreshExpiresAt?: Timestamp };

const ENDED = 'this operator session is not valid or has ended; sign in again';

function memberMessage(row: MemberRow) {
  return { id: row.id, email: row.email, displayName: row.display_name, role: row.role, createdAt: timestampOf(row.created_at) };
}

/**
 * principalOfMember is an operator's principal: the member, with the scopes of their current role,
 * plus deployment:admin for a deployment administrator. An administrator with no workspace signs in
 * as a member of the system partition, where a role gives nothing.
 */
function principalOfMember(tenantId: string, member: MemberRow, deploymentAdmin: boolean) {
  const scopes: string[] = tenantId !== SYSTEM_TENANT && isRole(member.role) ? [...ROLE_SCOPES[member.role]] : [];
  if (deploymentAdmin) scopes.push(...DEPLOYMENT_SCOPES);
  return { tenantId, kind: 'member', id: member.id, scopes };
}

/** s256 is the PKCE S256 challenge of a verifier (RFC 7636). */
function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/**
 * operatorHandlers serve OperatorService for the edge, which has verified the ID token (issuer,
 * audience, signature, nonce, verified e-mail, allowed domain) before it calls. Identity decides
 * who the person is in Parley: the e-mail selects the membership, the issuer and subject are bound
 * to it at the first sign-in, and the session is a row that ends at sign-out, expiry or the
 * member's removal.
 */
export function operatorHandlers(deps: IdentityDeps): ServiceImpl<typeof OperatorService> {
  const { db } = deps;
  const audited = auditedTransactions(db, deps.onAudit);
  const hash = (token: string) => hashApiKey(deps.config.apiKeyPepper, token);
  const tenantOf = (token: string, kind: OperatorTokenKind, field: string) => {
    const parsed = parseOperatorToken(token);
    if (parsed === undefined || parsed.kind !== kind) throw new UnauthenticatedError(`${field} is not a Parley operator credential`);
    return parsed.tenantId;
  };
  // A refused operator credential counts against its source like a failed API key, so tokens,
  // codes and refresh tokens cannot be guessed at any faster than keys.
  const refused = async (source: string, reason: string, message: string): Promise<Error> => {
    const from = (source || 'unknown').slice(0, 128);
    const result = await countFailedAttempt(db, from, deps.config.throttle);
    deps.logger.warn(
      { source: from, reason, failures: result.failures, blocked: result.blockedUntil !== undefined },
      'operator authentication failed',
    );
    if (result.refused && result.blockedUntil !== undefined) {
      recordThrottleBlock('operator_source');
      const seconds = Math.max(1, Math.ceil((result.blockedUntil.getTime() - Date.now()) / 1000));
      return new ResourceExhaustedError(`too many failed sign-in credentials from this address; retry in ${seconds} s`);
    }
    return new UnauthenticatedError(message);
  };
  const checkedTenantOf = async (token: string, kind: OperatorTokenKind, field: string, source: string) => {
    try {
      return tenantOf(token, kind, field);
    } catch (err) {
      throw err instanceof UnauthenticatedError ? await refused(source, 'malformed', err.message) : err;
    }
  };
  // A CLI's new access and refresh tokens (an exchange or a refresh): the hashes and expiries to
  // store, and the tokens to hand out.
  const issueCliTokens = (tenantId: string, maxExpiresAt: Date | null) => {
    const now = Date.now();
    const end = maxExpiresAt?.getTime() ?? Infinity;
    const access = generateOperatorToken('po', tenantId);
    const refresh = generateOperatorToken('pr', tenantId);
    const expiresAt = new Date(Math.min(now + CLI_ACCESS_MS, end));
    const refreshExpiresAt = new Date(Math.min(now + CLI_REFRESH_MS, end));
    return {
      stored: { token_hash: hash(access), refresh_hash: hash(refresh), expires_at: expiresAt, refresh_expires_at: refreshExpiresAt },
      tokens: {
        accessToken: access,
        refreshToken: refresh,
        expiresAt: timestampOf(expiresAt),
        refreshExpiresAt: timestampOf(refreshExpiresAt),
      } satisfies OperatorTokensInit,
    };
  };

  return {
    async signInOperator(req) {
      const email = req.email.trim().toLowerCase();
      if (req.issuer === '' || req.subject === '') throw new InvalidArgumentError('issuer and subject are required', { field: 'subject' });
      if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 320)
        throw new InvalidArgumentError('email must be an e-mail address', { field: 'email' });
      if (req.workspaceId !== '' && !isUuid(req.workspaceId))
        throw new InvalidArgumentError('workspace_id must be a workspace id (UUID)', { field: 'workspace_id' });
      const kind = req.kind === OperatorSessionKind.CONSOLE ? 'console' : req.kind === OperatorSessionKind.CLI ? 'cli' : undefined;
      if (kind === undefined) throw new InvalidArgumentError('kind must be CONSOLE or CLI', { field: 'kind' });
      if (kind === 'cli' && !/^[A-Za-z0-9_-]{43}$/.test(req.codeChallenge))
        throw new InvalidArgumentError('code_challenge must be an S256 PKCE challenge (43 base64url characters)', {
          field: 'code_challenge',
        });
      const memberships = (await store.findMembershipsByEmail(db, email)).filter(
        (m) => req.workspaceId === '' || m.tenantId === req.workspaceId.toLowerCase(),
      );
      const live: typeof memberships = [];
      // Real workspaces first; the system partition only for a current deployment administrator.
      for (const m of memberships) if (m.tenantId !== SYSTEM_TENANT && !(await isWorkspaceSuspended(db, m.tenantId))) live.push(m);
      if (req.deploymentAdmin && req.workspaceId === '') live.push(...memberships.filter((m) => m.tenantId === SYSTEM_TENANT));
      let chosen = live[0];
      // A deployment administrator with no workspace signs in to the system partition.
      if (chosen === undefined && req.deploymentAdmin && req.workspaceId === '') {
        const memberId = await withTenant(db, SYSTEM_TENANT, async (trx) => {
          const known = await trx.selectFrom('members').select('id').where('email', '=', email).executeTakeFirst();
          return known?.id ?? (await addMember(trx, { email, displayName: '', role: 'owner' })).id;
        });
        chosen = { tenantId: SYSTEM_TENANT, memberId, createdAt: new Date(), oidcIssuer: null, oidcSubject: null };
      }
      if (chosen === undefined && memberships.some((m) => m.tenantId !== SYSTEM_TENANT))
        throw new PermissionDeniedError("your workspace is suspended; ask the deployment's administrators");
      if (chosen === undefined)
        throw new PermissionDeniedError(
          req.workspaceId === ''
            ? `no Parley workspace has a member with the e-mail ${email}; ask a workspace owner to add you`
            : `you are not a member of workspace ${req.workspaceId}`,
        );
      const now = Date.now();
      const picked = chosen;
      return audited(picked.tenantId, async (trx, record) => {
        const member = await store.bindOidcIdentity(trx, picked.memberId, req.issuer, req.subject);
        if (member === undefined) throw new PermissionDeniedError('the member was removed while signing in; ask a workspace owner');
        if (member.oidc_issuer !== req.issuer || member.oidc_subject !== req.subject)
          throw new PermissionDeniedError(
            `the member ${email} is bound to another account at the identity provider; ask a workspace owner to re-add you`,
          );
        const token = kind === 'console' ? generateOperatorToken('po', picked.tenantId) : undefined;
        const code = kind === 'cli' ? generateOperatorToken('pc', picked.tenantId) : undefined;
        const expiresAt = new Date(now + (kind === 'console' ? deps.config.operatorSessionHours * 3_600_000 : CLI_CODE_MS));
        await store.insertOperatorSession(trx, {
          member_id: member.id,
          kind,
          token_hash: token === undefined ? null : hash(token),
          code_hash: code === undefined ? null : hash(code),
          code_challenge: kind === 'cli' ? req.codeChallenge : null,
          code_expires_at: kind === 'cli' ? expiresAt : null,
          expires_at: expiresAt,
          max_expires_at: kind === 'cli' ? new Date(now + CLI_SESSION_MAX_MS) : expiresAt,
          deployment_admin: req.deploymentAdmin,
        });
        await record({
          tenantId: picked.tenantId,
          actor: { kind: 'member', id: member.id },
          action: 'operator.sign_in',
          target: { type: 'member', id: member.id },
          details: noDetails(),
        });
        return {
          principal: principalOfMember(picked.tenantId, member, req.deploymentAdmin),
          token: token ?? '',
          code: code ?? '',
          expiresAt: timestampOf(expiresAt),
          member: memberMessage(member),
        };
      });
    },

    async authenticateOperator(req) {
      const tenantId = await checkedTenantOf(req.token, 'po', 'token', req.source);
      const found = await withTenant(db, tenantId, (trx) => store.findOperatorSession(trx, 'token_hash', hash(req.token)));
      if (found === undefined || found.session.expires_at.getTime() <= Date.now()) throw await refused(req.source, 'unknown', ENDED);
      if (tenantId !== SYSTEM_TENANT && (await isWorkspaceSuspended(db, tenantId)))
        throw new UnauthenticatedError("this workspace is suspended; ask the deployment's administrators");
      return {
        principal: principalOfMember(tenantId, found.member, found.session.deployment_admin),
        member: memberMessage(found.member),
        expiresAt: timestampOf(found.session.expires_at),
      };
    },

    async listOperatorWorkspaces(req) {
      const tenantId = await checkedTenantOf(req.token, 'po', 'token', req.source);
      const found = await withTenant(db, tenantId, (trx) => store.findOperatorSession(trx, 'token_hash', hash(req.token)));
      if (found === undefined || found.session.expires_at.getTime() <= Date.now()) throw await refused(req.source, 'unknown', ENDED);
      const me = found.member;
      // Only memberships this person could sign in to: the same account at the identity provider,
      // or not bound to any yet (a sign-in there binds it), in a live workspace.
      const mine = (await store.findMembershipsByEmail(db, me.email)).filter(
        (m) =>
          m.tenantId !== SYSTEM_TENANT &&
          (m.oidcSubject === null || (m.oidcIssuer === me.oidc_issuer && m.oidcSubject === me.oidc_subject)),
      );
      const registry = await withTenant(db, SYSTEM_TENANT, (trx) =>
        findWorkspaces(
          trx,
          mine.map((m) => m.tenantId),
        ),
      );
      const names = new Map(registry.map((w) => [w.id, w]));
      return {
        workspaces: mine
          .filter((m) => names.get(m.tenantId)?.suspended_at == null)
          .map((m) => ({ id: m.tenantId, name: names.get(m.tenantId)?.name ?? '' })),
      };
    },

    async exchangeOperatorCode(req) {
      const tenantId = await checkedTenantOf(req.code, 'pc', 'code', req.source);
      if (!/^[A-Za-z0-9._~-]{43,128}$/.test(req.codeVerifier))
        throw new InvalidArgumentError('code_verifier must be 43 to 128 unreserved characters (RFC 7636)', { field: 'code_verifier' });
      const outcome = await withTenant(db, tenantId, async (trx): Promise<{ refused?: string; tokens?: OperatorTokensInit }> => {
        const found = await store.findOperatorSession(trx, 'code_hash', hash(req.code));
        if (found === undefined) return { refused: 'this sign-in code is not valid or was already used; sign in again' };
        const { session } = found;
        const challenge = session.code_challenge ?? '';
        const expired = (session.code_expires_at?.getTime() ?? 0) <= Date.now();
        if (expired || !sameHash(Buffer.from(s256(req.codeVerifier)), Buffer.from(challenge))) {
          // One try: a wrong verifier ends the sign-in (committed, then refused), so a stolen code
          // cannot be guessed at.
          await store.updateOperatorSession(trx, session.id, { code_hash: null, revoked_at: new Date() });
          return {
            refused: expired
              ? 'this sign-in code has expired; sign in again'
              : 'the code_verifier does not match the sign-in; sign in again',
          };
        }
        const issued = issueCliTokens(tenantId, session.max_expires_at);
        await store.updateOperatorSession(trx, session.id, {
          ...issued.stored,
          code_hash: null,
          code_challenge: null,
          code_expires_at: null,
        });
        return { tokens: issued.tokens };
      });
      if (outcome.refused !== undefined) throw await refused(req.source, 'code', outcome.refused);
      return { tokens: outcome.tokens };
    },

    async refreshOperatorToken(req) {
      const tenantId = await checkedTenantOf(req.refreshToken, 'pr', 'refresh_token', req.source);
      if (tenantId !== SYSTEM_TENANT && (await isWorkspaceSuspended(db, tenantId)))
        throw new UnauthenticatedError("this workspace is suspended; ask the deployment's administrators");
      const outcome = await withTenant(db, tenantId, async (trx): Promise<{ refused?: string; tokens?: OperatorTokensInit }> => {
        const presented = hash(req.refreshToken);
        const found = await store.findOperatorSession(trx, 'refresh_hash', presented);
        if (found === undefined) {
          // A refresh token that was already used: someone holds a copy. End the session it
          // belonged to (committed, then refused), so neither copy goes on working.
          const reused = await store.findSessionByReplacedRefresh(trx, presented);
          if (reused !== undefined) {
            await store.updateOperatorSession(trx, reused.id, { revoked_at: new Date() });
            return { refused: 'this refresh token was already used, so the session has been ended; run `parley login` again' };
          }
          return { refused: 'this refresh token is not valid or has expired; run `parley login` again' };
        }
        const now = Date.now();
        const maxExpiresAt = found.session.max_expires_at;
        if ((found.session.refresh_expires_at?.getTime() ?? 0) <= now || (maxExpiresAt !== null && maxExpiresAt.getTime() <= now))
          return { refused: 'this refresh token is not valid or has expired; run `parley login` again' };
        const issued = issueCliTokens(tenantId, maxExpiresAt);
        // deployment:admin comes from the identity provider at sign-in only (a group claim or
        // the edge's admin e-mail list, neither known here): a refresh drops it, so a revoked
        // administrator loses it within one access-token lifetime; `parley login` brings it back.
        await store.updateOperatorSession(trx, found.session.id, {
          ...issued.stored,
          previous_refresh_hash: presented,
          deployment_admin: false,
        });
        return { tokens: issued.tokens };
      });
      if (outcome.refused !== undefined) throw await refused(req.source, 'refresh', outcome.refused);
      return { tokens: outcome.tokens };
    },

    async signOutOperator(req) {
      const parsed = parseOperatorToken(req.token);
      if (parsed === undefined || parsed.kind === 'pc') throw new UnauthenticatedError('token is not a Parley operator token');
      await audited(parsed.tenantId, async (trx, record) => {
        const found = await store.findOperatorSession(trx, parsed.kind === 'po' ? 'token_hash' : 'refresh_hash', hash(req.token));
        if (found === undefined) return;
        await store.updateOperatorSession(trx, found.session.id, { revoked_at: new Date() });
        await record({
          tenantId: parsed.tenantId,
          actor: { kind: 'member', id: found.member.id },
          action: 'operator.sign_out',
          target: { type: 'member', id: found.member.id },
          details: noDetails(),
        });
      });
      return {};
    },
  };
}
