// Tokens and the auth methods that issue them: Kubernetes and AppRole logins, the token
// self-service paths (lookup, renew with TTL and max-TTL rules, revoke) and ACL checks.
import { randomBytes, randomUUID } from 'node:crypto';
import type { VaultStandinOptions, VaultStandinPolicyRule } from './options.js';
import type { Route, TokenEntry } from './route.js';
import { ACL_DENIED, envelope, requireMethod, VaultHttpError } from './wire.js';

const DEFAULT_POLICY: readonly VaultStandinPolicyRule[] = [
  { path: 'auth/token/lookup-self', capabilities: ['read'] },
  { path: 'auth/token/renew-self', capabilities: ['update'] },
  { path: 'auth/token/revoke-self', capabilities: ['update'] },
];

function newToken(): string {
  return `hvs.${randomBytes(18).toString('base64url')}`;
}

function pathMatches(pattern: string, path: string): boolean {
  // Vault ACL globs: `+` stands for one path segment, a trailing `*` for any suffix.
  const glob = pattern.endsWith('*') ? pattern.slice(0, -1) : pattern;
  const body = glob
    .split('/')
    .map((part) => (part === '+' ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${body}${pattern.endsWith('*') ? '.*' : ''}$`).test(path);
}

/** TokenStore holds the stand-in's tokens and policies. */
export interface TokenStore {
  readonly rootToken: string;
  readonly tokens: Map<string, TokenEntry>;
  /** renewalsRefused makes renew-self answer 403 while true. */
  renewalsRefused: boolean;
  issue(
    policyNames: readonly string[],
    ttlSeconds: number,
    path: string,
    renewable?: boolean,
    extra?: { periodSeconds?: number | undefined; maxTtlSeconds?: number | undefined },
  ): string;
  /** liveToken finds the request's token, refusing a missing, unknown or expired one as Vault does. */
  liveToken(header: string | string[] | undefined): [string, TokenEntry];
  /** authorize refuses a path and capability the token's policies do not grant. */
  authorize(entry: TokenEntry, path: string, capability: string): void;
}

/** createTokenStore starts with the root token only. */
export function createTokenStore(options: VaultStandinOptions): TokenStore {
  const rootToken = options.rootToken ?? newToken();
  const tokenMaxTtl = options.tokenMaxTtlSeconds ?? 0;
  const policies = new Map<string, readonly VaultStandinPolicyRule[]>(Object.entries(options.policies ?? {}));
  const tokens = new Map<string, TokenEntry>();
  tokens.set(rootToken, {
    accessor: randomUUID(),
    policies: ['root'],
    creationTtl: 0,
    issuedAt: Date.now(),
    renewable: false,
    maxExpiresAt: undefined,
    period: undefined,
    path: 'auth/token/root',
    expiresAt: undefined,
  });

  return {
    rootToken,
    tokens,
    renewalsRefused: false,
    issue(policyNames, ttlSeconds, path, renewable = true, extra = {}) {
      const token = newToken();
      const now = Date.now();
      const maxTtl = extra.maxTtlSeconds ?? (extra.periodSeconds === undefined ? tokenMaxTtl : 0);
      tokens.set(token, {
        accessor: randomUUID(),
        policies: ['default', ...policyNames],
        creationTtl: ttlSeconds,
        issuedAt: now,
        renewable,
        path,
        period: extra.periodSeconds,
        maxExpiresAt: maxTtl > 0 ? now + maxTtl * 1000 : undefined,
        expiresAt: ttlSeconds > 0 ? now + ttlSeconds * 1000 : undefined,
      });
      return token;
    },
    liveToken(header) {
      const token = typeof header === 'string' ? header : undefined;
      const entry = token === undefined ? undefined : tokens.get(token);
      if (token === undefined || entry === undefined) throw new VaultHttpError(403, ['permission denied']);
      if (entry.expiresAt !== undefined && Date.now() >= entry.expiresAt) {
        tokens.delete(token);
        throw new VaultHttpError(403, ['permission denied']);
      }
      return [token, entry];
    },
    authorize(entry, path, capability) {
      if (entry.policies.includes('root')) return;
      const rules = [...DEFAULT_POLICY, ...entry.policies.flatMap((name) => policies.get(name) ?? [])];
      const allowed = rules.some((rule) => pathMatches(rule.path, path) && rule.capabilities.includes(capability));
      if (!allowed) throw new VaultHttpError(403, [ACL_DENIED]);
    },
  };
}

function authBody(token: string, entry: TokenEntry, leaseDuration: number, metadata: Record<string, string> | null): object {
  return {
    client_token: token,
    accessor: entry.accessor,
    policies: entry.policies,
    token_policies: entry.policies,
    metadata,
    lease_duration: leaseDuration,
    renewable: entry.renewable,
    entity_id: '',
    token_type: 'service',
    orphan: true,
    mfa_requirement: null,
    num_uses: 0,
  };
}

/** loginPaths are the auth methods' login paths, reachable without a token. */
export function loginPaths(options: VaultStandinOptions): string[] {
  return [`auth/${options.kubernetes?.mount ?? 'kubernetes'}/login`, `auth/${options.approle?.mount ?? 'approle'}/login`];
}

/** authRoute matches the auth methods' login paths and the token self-service paths, or returns undefined. */
export function authRoute(method: string, path: string, store: TokenStore, options: VaultStandinOptions): Route | undefined {
  const k8sMount = options.kubernetes?.mount ?? 'kubernetes';
  const approleMount = options.approle?.mount ?? 'approle';
  const tokenTtl = options.tokenTtlSeconds ?? 3600;
  if (options.kubernetes !== undefined && path === `auth/${k8sMount}/login`) {
    requireMethod(method, 'write');
    const roles = options.kubernetes.roles;
    return {
      capability: 'update',
      unauthenticated: true,
      handler: ({ body }) => {
        if (typeof body.role !== 'string' || body.role === '') throw new VaultHttpError(400, ['missing role']);
        if (typeof body.jwt !== 'string' || body.jwt === '') throw new VaultHttpError(400, ['missing jwt']);
        const role = roles[body.role];
        if (role === undefined) throw new VaultHttpError(400, [`invalid role name "${body.role}"`]);
        if (role.jwt !== body.jwt) throw new VaultHttpError(403, ['permission denied']);
        const token = store.issue(role.policies, tokenTtl, `auth/${k8sMount}/login`);
        return [
          200,
          envelope(null, authBody(token, store.tokens.get(token)!, tokenTtl, { role: body.role, service_account_name: 'parley-secrets' })),
        ];
      },
    };
  }
  if (options.approle !== undefined && path === `auth/${approleMount}/login`) {
    requireMethod(method, 'write');
    const roles = options.approle.roles;
    return {
      capability: 'update',
      unauthenticated: true,
      handler: ({ body }) => {
        if (typeof body.role_id !== 'string' || body.role_id === '') throw new VaultHttpError(400, ['missing role_id']);
        const role = roles[body.role_id];
        if (role === undefined || role.secretId !== body.secret_id) throw new VaultHttpError(400, ['invalid role or secret ID']);
        const token = store.issue(role.policies, tokenTtl, `auth/${approleMount}/login`);
        return [200, envelope(null, authBody(token, store.tokens.get(token)!, tokenTtl, { role_name: 'parley-secrets' }))];
      },
    };
  }
  if (path === 'auth/token/lookup-self') {
    requireMethod(method, 'read');
    return {
      capability: 'read',
      handler: ({ token }) => {
        const [id, entry] = token();
        const ttl = entry.expiresAt === undefined ? 0 : Math.max(0, Math.ceil((entry.expiresAt - Date.now()) / 1000));
        return [
          200,
          envelope({
            accessor: entry.accessor,
            creation_time: Math.floor(entry.issuedAt / 1000),
            creation_ttl: entry.creationTtl,
            display_name: 'token',
            entity_id: '',
            expire_time: entry.expiresAt === undefined ? null : new Date(entry.expiresAt).toISOString(),
            explicit_max_ttl: 0,
            id,
            issue_time: new Date(entry.issuedAt).toISOString(),
            meta: null,
            num_uses: 0,
            orphan: true,
            path: entry.path,
            ...(entry.period !== undefined ? { period: entry.period } : {}),
            policies: entry.policies,
            renewable: entry.renewable,
            ttl,
            type: 'service',
          }),
        ];
      },
    };
  }
  if (path === 'auth/token/renew-self') {
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: ({ token, body }) => {
        const [id, entry] = token();
        if (store.renewalsRefused) throw new VaultHttpError(403, ['permission denied']);
        if (!entry.renewable || entry.expiresAt === undefined) throw new VaultHttpError(400, ['lease is not renewable']);
        if (entry.period !== undefined) {
          // Periodic: the TTL becomes the period again; the increment is not honoured.
          entry.expiresAt = Date.now() + entry.period * 1000;
          return [200, { ...envelope(null, authBody(id, entry, entry.period, null)), warnings: null }];
        }
        // Vault's lease manager refuses (a plain error, so 500) once the max TTL has passed.
        if (entry.maxExpiresAt !== undefined && Date.now() >= entry.maxExpiresAt)
          throw new VaultHttpError(500, ['past the max TTL, cannot renew']);
        const asked =
          typeof body.increment === 'number'
            ? body.increment
            : typeof body.increment === 'string'
              ? parseInt(body.increment, 10)
              : entry.creationTtl;
        let ttl = Number.isFinite(asked) && asked > 0 ? asked : entry.creationTtl;
        const warnings: string[] = [];
        if (entry.maxExpiresAt !== undefined) {
          const left = Math.max(0, Math.floor((entry.maxExpiresAt - Date.now()) / 1000));
          if (ttl > left) {
            warnings.push(`TTL of "${ttl}s" exceeded the effective max_ttl of "${left}s"; TTL value is capped accordingly`);
            ttl = left;
          }
        }
        entry.expiresAt = Date.now() + ttl * 1000;
        return [200, { ...envelope(null, authBody(id, entry, ttl, null)), warnings: warnings.length > 0 ? warnings : null }];
      },
    };
  }
  if (path === 'auth/token/revoke-self') {
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: ({ token }) => {
        store.tokens.delete(token()[0]);
        return [204, null];
      },
    };
  }
  return undefined;
}
