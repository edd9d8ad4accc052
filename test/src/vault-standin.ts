// A STAND-IN for HashiCorp Vault, for tests only: no Vault binary can run where Parley's tests
// run, so this node:http server answers the part of Vault's HTTP API that Parley uses, in
// Vault's documented wire format, closely enough for the real node-vault client. It is not
// Vault and not a security boundary. See test/vault-standin/README.md.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** VaultStandinMode is how the stand-in answers: normally, not at all, never, or sealed. */
export type VaultStandinMode =
  /** up answers normally. */
  | 'up'
  /** down resets every connection (as if Vault's host were gone). */
  | 'down'
  /** hang accepts requests and never answers (a stuck Vault or network). */
  | 'hang'
  /** sealed answers 503 `Vault is sealed` to everything, like a sealed Vault. */
  | 'sealed';

/** VaultStandinPolicyRule is one `path` block of an ACL policy: a path (may end in `*`) and its capabilities. */
export interface VaultStandinPolicyRule {
  /** path is a Vault API path without /v1/; a trailing `*` matches any suffix, `+` one segment. */
  readonly path: string;
  /** capabilities: read (GET), update (POST/PUT), create, delete, list. */
  readonly capabilities: readonly string[];
}

/** VaultStandinOptions configure startVaultStandin; everything has a test-friendly default. */
export interface VaultStandinOptions {
  /** tokenTtlSeconds is the TTL of tokens from logins (default 3600). */
  readonly tokenTtlSeconds?: number;
  /** tokenMaxTtlSeconds caps renewals of login tokens (default 0: no cap). */
  readonly tokenMaxTtlSeconds?: number;
  /** rootToken has every capability (default: random `hvs.` token). */
  readonly rootToken?: string;
  /** transitMount is where the transit engine is mounted (default `transit`). */
  readonly transitMount?: string;
  /** keys are transit keys (aes256-gcm96) that exist at start (default `parley-secrets`). */
  readonly keys?: readonly string[];
  /** kubernetes enables Kubernetes auth: role name -> accepted JWT and policies. */
  readonly kubernetes?: {
    readonly mount?: string;
    readonly roles: Readonly<Record<string, { readonly jwt: string; readonly policies: readonly string[] }>>;
  };
  /** approle enables AppRole auth: role_id -> secret_id and policies. */
  readonly approle?: {
    readonly mount?: string;
    readonly roles: Readonly<Record<string, { readonly secretId: string; readonly policies: readonly string[] }>>;
  };
  /** policies are ACL policies by name; `root` is built in. */
  readonly policies?: Readonly<Record<string, readonly VaultStandinPolicyRule[]>>;
}

/** VaultStandinToken describes a token to mint directly with issueToken. */
export interface VaultStandinToken {
  /** ttlSeconds is the token's TTL; 0 means it never expires (like a root token). */
  readonly ttlSeconds: number;
  /** policies are attached to the token. */
  readonly policies: readonly string[];
  /** renewable tells whether renew-self may extend it (default true). */
  readonly renewable?: boolean;
  /** periodSeconds makes it a periodic token: each renewal sets the TTL to the period, whatever the increment, with no max TTL. */
  readonly periodSeconds?: number;
  /** maxTtlSeconds is its explicit max TTL (default: the stand-in's tokenMaxTtlSeconds; 0 none). */
  readonly maxTtlSeconds?: number;
}

/** VaultStandin is a running stand-in with its test controls. */
export interface VaultStandin {
  /** address is the base URL, e.g. http://127.0.0.1:41234 (port chosen by the OS). */
  readonly address: string;
  /** rootToken has every capability. */
  readonly rootToken: string;
  /** setMode switches between up, down, hang and sealed; switching away from up drops open connections. */
  setMode(mode: VaultStandinMode): void;
  /** callCount is how many requests reached a path (without /v1/), in any mode. */
  callCount(path: string): number;
  /** callCounts returns all counters by path. */
  callCounts(): ReadonlyMap<string, number>;
  /** resetCallCounts zeroes the counters. */
  resetCallCounts(): void;
  /** expireTokens makes every token except the root token expire now. */
  expireTokens(): void;
  /** refuseRenewals makes renew-self answer 403 while on (as for a revoked token). */
  refuseRenewals(on: boolean): void;
  /** issueToken mints a token directly (for static-token tests). */
  issueToken(token: VaultStandinToken): string;
  /** liveTokenCount counts tokens that have not expired. */
  liveTokenCount(): number;
  /** keyVersions reads a transit key's latest and minimum decryption version. */
  keyVersions(name: string): { latestVersion: number; minDecryptionVersion: number } | undefined;
  /** close stops the server and drops all connections. */
  close(): Promise<void>;
}

interface TokenEntry {
  readonly accessor: string;
  readonly policies: readonly string[];
  readonly creationTtl: number;
  readonly issuedAt: number;
  readonly renewable: boolean;
  readonly maxExpiresAt: number | undefined;
  readonly period: number | undefined;
  readonly path: string;
  expiresAt: number | undefined;
}

interface TransitKey {
  readonly versions: Map<number, { key: Buffer; createdAt: number }>;
  latestVersion: number;
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  deletionAllowed: boolean;
  /** derived keys derive a key per `context` (HKDF-SHA256 here) and refuse calls without one. */
  readonly derived: boolean;
}

class VaultHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
    /** noRoute marks "no mount here": 404 for a root token, a policy denial (403) for any other, as Vault checks the ACL first. */
    readonly noRoute = false,
  ) {
    super(errors.join('; '));
  }
}

/** ACL_DENIED is how Vault words a request its policies do not allow (a multierror, in Vault's own format). */
const ACL_DENIED = '1 error occurred:\n\t* permission denied\n\n';
const MISSING_CONTEXT =
  "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

const CIPHERTEXT_PATTERN = /^vault:v(\d+):(.*)$/s;
const DEFAULT_POLICY: readonly VaultStandinPolicyRule[] = [
  { path: 'auth/token/lookup-self', capabilities: ['read'] },
  { path: 'auth/token/renew-self', capabilities: ['update'] },
  { path: 'auth/token/revoke-self', capabilities: ['update'] },
];

/** startVaultStandin starts a Vault stand-in on 127.0.0.1 with an OS-chosen port. */
export async function startVaultStandin(options: VaultStandinOptions = {}): Promise<VaultStandin> {
  const rootToken = options.rootToken ?? newToken();
  const transitMount = (options.transitMount ?? 'transit').replace(/^\/+|\/+$/g, '');
  const k8sMount = options.kubernetes?.mount ?? 'kubernetes';
  const approleMount = options.approle?.mount ?? 'approle';
  const tokenTtl = options.tokenTtlSeconds ?? 3600;
  const tokenMaxTtl = options.tokenMaxTtlSeconds ?? 0;
  const policies = new Map<string, readonly VaultStandinPolicyRule[]>(Object.entries(options.policies ?? {}));
  const tokens = new Map<string, TokenEntry>();
  const keys = new Map<string, TransitKey>();
  const counts = new Map<string, number>();
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let mode: VaultStandinMode = 'up';
  let renewalsRefused = false;

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
  for (const name of options.keys ?? ['parley-secrets']) keys.set(name, newTransitKey());

  function issue(
    policyNames: readonly string[],
    ttlSeconds: number,
    path: string,
    renewable = true,
    extra: { periodSeconds?: number | undefined; maxTtlSeconds?: number | undefined } = {},
  ): string {
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
  }

  function liveToken(header: string | string[] | undefined): [string, TokenEntry] {
    const token = typeof header === 'string' ? header : undefined;
    const entry = token === undefined ? undefined : tokens.get(token);
    if (token === undefined || entry === undefined) throw new VaultHttpError(403, ['permission denied']);
    if (entry.expiresAt !== undefined && Date.now() >= entry.expiresAt) {
      tokens.delete(token);
      throw new VaultHttpError(403, ['permission denied']);
    }
    return [token, entry];
  }

  function authorize(entry: TokenEntry, path: string, capability: string): void {
    if (entry.policies.includes('root')) return;
    const rules = [...DEFAULT_POLICY, ...entry.policies.flatMap((name) => policies.get(name) ?? [])];
    const allowed = rules.some((rule) => pathMatches(rule.path, path) && rule.capabilities.includes(capability));
    if (!allowed) throw new VaultHttpError(403, [ACL_DENIED]);
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

  function keyData(name: string, key: TransitKey): object {
    return {
      allow_plaintext_backup: false,
      auto_rotate_period: 0,
      deletion_allowed: key.deletionAllowed,
      derived: key.derived,
      exportable: false,
      imported_key: false,
      // Versions below min_decryption_version are archived by Vault and no longer listed.
      keys: Object.fromEntries(
        [...key.versions].filter(([v]) => v >= key.minDecryptionVersion).map(([v, k]) => [String(v), Math.floor(k.createdAt / 1000)]),
      ),
      latest_version: key.latestVersion,
      min_available_version: 0,
      min_decryption_version: key.minDecryptionVersion,
      min_encryption_version: key.minEncryptionVersion,
      name,
      supports_decryption: true,
      supports_derivation: true,
      supports_encryption: true,
      supports_signing: false,
      type: 'aes256-gcm96',
    };
  }

  function existingKey(name: string): TransitKey {
    const key = keys.get(name);
    if (key === undefined) throw new VaultHttpError(400, ['encryption key not found']);
    return key;
  }

  // A derived key's material is HKDF-SHA256 of the version's key with the request's context.
  function materialFor(key: TransitKey, version: number, context: unknown): Buffer | undefined {
    const base = key.versions.get(version)?.key;
    if (base === undefined || !key.derived) return base;
    if (typeof context !== 'string' || context === '') throw new VaultHttpError(400, [MISSING_CONTEXT]);
    return Buffer.from(hkdfSync('sha256', base, Buffer.alloc(0), decodeBase64(context, 'context'), 32));
  }

  function encryptWith(key: TransitKey, plaintext: Buffer, context?: unknown): { ciphertext: string; version: number } {
    const version = key.latestVersion;
    const material = materialFor(key, version, context)!;
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', material, nonce);
    const body = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return { ciphertext: `vault:v${version}:${body.toString('base64')}`, version };
  }

  function decryptWith(key: TransitKey, ciphertext: unknown, context?: unknown): Buffer {
    if (typeof ciphertext !== 'string' || ciphertext === '') throw new VaultHttpError(400, ['missing ciphertext to decrypt']);
    const match = CIPHERTEXT_PATTERN.exec(ciphertext);
    if (match === null) throw new VaultHttpError(400, ['invalid ciphertext: no prefix']);
    const version = Number(match[1]);
    if (!Number.isSafeInteger(version) || version < 1)
      throw new VaultHttpError(400, ['invalid ciphertext: version number could not be decoded']);
    if (version < key.minDecryptionVersion)
      throw new VaultHttpError(400, ['ciphertext or signature version is disallowed by policy (too old)']);
    const material = materialFor(key, version, context);
    if (material === undefined) throw new VaultHttpError(400, ['invalid ciphertext: version is too new']);
    const raw = Buffer.from(match[2] ?? '', 'base64');
    if (raw.length < 12 + 16) throw new VaultHttpError(400, ['invalid ciphertext: could not decode']);
    try {
      const decipher = createDecipheriv('aes-256-gcm', material, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
    } catch {
      throw new VaultHttpError(400, ['cipher: message authentication failed']);
    }
  }

  type Handler = (ctx: {
    method: string;
    body: Record<string, unknown>;
    token: () => [string, TokenEntry];
    path: string;
  }) => [number, object | null];

  function route(method: string, path: string): { handler: Handler; capability: string; unauthenticated?: boolean } {
    const write = method === 'POST' || method === 'PUT';
    const requireWrite = (): void => {
      if (!write) throw new VaultHttpError(405, ['1 error occurred:\n\t* unsupported operation\n\n']);
    };
    const requireRead = (): void => {
      if (method !== 'GET') throw new VaultHttpError(405, ['1 error occurred:\n\t* unsupported operation\n\n']);
    };

    if (path === 'sys/health') {
      requireRead();
      return { capability: 'read', unauthenticated: true, handler: () => [200, healthBody(false)] };
    }
    if (options.kubernetes !== undefined && path === `auth/${k8sMount}/login`) {
      requireWrite();
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
          const token = issue(role.policies, tokenTtl, `auth/${k8sMount}/login`);
          return [
            200,
            envelope(null, authBody(token, tokens.get(token)!, tokenTtl, { role: body.role, service_account_name: 'parley-secrets' })),
          ];
        },
      };
    }
    if (options.approle !== undefined && path === `auth/${approleMount}/login`) {
      requireWrite();
      const roles = options.approle.roles;
      return {
        capability: 'update',
        unauthenticated: true,
        handler: ({ body }) => {
          if (typeof body.role_id !== 'string' || body.role_id === '') throw new VaultHttpError(400, ['missing role_id']);
          const role = roles[body.role_id];
          if (role === undefined || role.secretId !== body.secret_id) throw new VaultHttpError(400, ['invalid role or secret ID']);
          const token = issue(role.policies, tokenTtl, `auth/${approleMount}/login`);
          return [200, envelope(null, authBody(token, tokens.get(token)!, tokenTtl, { role_name: 'parley-secrets' }))];
        },
      };
    }
    if (path === 'auth/token/lookup-self') {
      requireRead();
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
      requireWrite();
      return {
        capability: 'update',
        handler: ({ token, body }) => {
          const [id, entry] = token();
          if (renewalsRefused) throw new VaultHttpError(403, ['permission denied']);
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
      requireWrite();
      return {
        capability: 'update',
        handler: ({ token }) => {
          tokens.delete(token()[0]);
          return [204, null];
        },
      };
    }

    const prefix = `${transitMount}/`;
    if (!path.startsWith(prefix)) throw new VaultHttpError(404, [`no handler for route "${path}". route entry not found.`], true);
    const rest = path.slice(prefix.length).split('/');
    const [action, second, third, fourth] = rest;

    if (action === 'keys' && second !== undefined && rest.length === 2) {
      const name = second;
      if (method === 'GET') {
        return {
          capability: 'read',
          handler: () => {
            const key = keys.get(name);
            if (key === undefined) throw new VaultHttpError(404, []);
            return [200, envelope(keyData(name, key))];
          },
        };
      }
      requireWrite();
      return {
        capability: 'update',
        handler: ({ body }) => {
          if (body.type !== undefined && body.type !== 'aes256-gcm96')
            throw new VaultHttpError(400, [`the stand-in only supports key type aes256-gcm96, got "${String(body.type)}"`]);
          if (!keys.has(name)) keys.set(name, newTransitKey(body.derived === true || body.derived === 'true'));
          return [200, envelope(keyData(name, keys.get(name)!))];
        },
      };
    }
    if (action === 'keys' && second !== undefined && rest.length === 3 && third === 'rotate') {
      requireWrite();
      return {
        capability: 'update',
        handler: () => {
          const key = existingKey(second);
          key.latestVersion += 1;
          key.versions.set(key.latestVersion, { key: randomBytes(32), createdAt: Date.now() });
          return [200, envelope(keyData(second, key))];
        },
      };
    }
    if (action === 'keys' && second !== undefined && rest.length === 3 && third === 'config') {
      requireWrite();
      return {
        capability: 'update',
        handler: ({ body }) => {
          const key = existingKey(second);
          if (body.min_decryption_version !== undefined) {
            const v = integerField(body.min_decryption_version, 'min_decryption_version');
            if (v < 0) throw new VaultHttpError(400, ['min decryption version must be positive']);
            if (v > key.latestVersion)
              throw new VaultHttpError(400, [`cannot set min decryption version of ${v}, latest key version is ${key.latestVersion}`]);
            key.minDecryptionVersion = v === 0 ? 1 : v;
          }
          if (body.min_encryption_version !== undefined) {
            const v = integerField(body.min_encryption_version, 'min_encryption_version');
            if (v < 0 || v > key.latestVersion) throw new VaultHttpError(400, ['min encryption version out of range']);
            key.minEncryptionVersion = v;
          }
          if (body.deletion_allowed !== undefined) key.deletionAllowed = body.deletion_allowed === true;
          return [200, envelope(keyData(second, key))];
        },
      };
    }
    if (action === 'datakey' && second !== undefined && third !== undefined && fourth === undefined) {
      requireWrite();
      return {
        capability: 'update',
        handler: ({ body }) => {
          if (second !== 'plaintext' && second !== 'wrapped') throw new VaultHttpError(400, [`invalid type "${second}"`]);
          const key = existingKey(third);
          const bits = body.bits === undefined ? 256 : integerField(body.bits, 'bits');
          if (bits !== 128 && bits !== 256 && bits !== 512) throw new VaultHttpError(400, ['invalid bits value']);
          const dataKey = randomBytes(bits / 8);
          const { ciphertext, version } = encryptWith(key, dataKey, body.context);
          const data: Record<string, unknown> = { ciphertext, key_version: version };
          if (second === 'plaintext') data.plaintext = dataKey.toString('base64');
          return [200, envelope(data)];
        },
      };
    }
    if (action === 'encrypt' && second !== undefined && third === undefined) {
      requireWrite();
      return {
        capability: 'update',
        handler: ({ body }) => {
          if (!keys.has(second)) keys.set(second, newTransitKey()); // Vault upserts on encrypt
          const key = keys.get(second)!;
          return batched(body, (item) => {
            if (typeof item.plaintext !== 'string') throw new VaultHttpError(400, ['missing plaintext to encrypt']);
            const { ciphertext, version } = encryptWith(key, decodeBase64(item.plaintext, 'plaintext'), item.context);
            return { ciphertext, key_version: version };
          });
        },
      };
    }
    if (action === 'decrypt' && second !== undefined && third === undefined) {
      requireWrite();
      return {
        capability: 'update',
        handler: ({ body }) => {
          const key = existingKey(second);
          return batched(body, (item) => ({ plaintext: decryptWith(key, item.ciphertext, item.context).toString('base64') }));
        },
      };
    }
    if (action === 'rewrap' && second !== undefined && third === undefined) {
      requireWrite();
      return {
        capability: 'update',
        handler: ({ body }) => {
          const key = existingKey(second);
          return batched(body, (item) => {
            const plaintext = decryptWith(key, item.ciphertext, item.context);
            const { ciphertext, version } = encryptWith(key, plaintext, item.context);
            plaintext.fill(0);
            return { ciphertext, key_version: version };
          });
        },
      };
    }
    throw new VaultHttpError(404, ['1 error occurred:\n\t* unsupported path\n\n']);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://standin');
    const method = (req.method ?? 'GET').toUpperCase();
    const apiPath = url.pathname.startsWith('/v1/') ? url.pathname.slice(4).replace(/\/+$/, '') : undefined;
    counts.set(apiPath ?? url.pathname, (counts.get(apiPath ?? url.pathname) ?? 0) + 1);
    const raw = await readBody(req);

    if (mode === 'down') {
      req.socket.destroy();
      return;
    }
    if (mode === 'hang') {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    try {
      if (apiPath === undefined) throw new VaultHttpError(404, ['not found']);
      if (mode === 'sealed') {
        if (apiPath === 'sys/health') return send(res, 503, healthBody(true));
        throw new VaultHttpError(503, ['Vault is sealed']);
      }
      let body: Record<string, unknown> = {};
      if (raw.length > 0) {
        try {
          const parsed: unknown = JSON.parse(raw.toString('utf8'));
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
          body = parsed as Record<string, unknown>;
        } catch (err) {
          throw new VaultHttpError(400, [`failed to parse JSON input: ${(err as Error).message}`]);
        }
      }
      const token = (): [string, TokenEntry] => liveToken(req.headers['x-vault-token']);
      // Like Vault, a request without a valid token is refused before routing, except on login and health paths.
      const unauthenticatedPaths = ['sys/health', `auth/${k8sMount}/login`, `auth/${approleMount}/login`];
      if (!unauthenticatedPaths.includes(apiPath)) token();
      let found: ReturnType<typeof route>;
      try {
        found = route(method, apiPath);
      } catch (err) {
        // Vault checks the token's policies before it looks for a mount: only root learns there is none.
        if (err instanceof VaultHttpError && err.noRoute && !token()[1].policies.includes('root'))
          throw new VaultHttpError(403, [ACL_DENIED]);
        throw err;
      }
      if (found.unauthenticated !== true) authorize(token()[1], apiPath, found.capability);
      const [status, payload] = found.handler({ method, body, token, path: apiPath });
      send(res, status, payload);
    } catch (err) {
      if (err instanceof VaultHttpError) return send(res, err.status, { errors: err.errors });
      send(res, 500, { errors: ['internal error'] });
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  server.on('connection', (socket) => {
    if (mode === 'down') {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const dropConnections = (): void => {
    for (const res of hanging) res.destroy();
    hanging.clear();
    for (const socket of sockets) socket.destroy();
  };

  return {
    address: `http://127.0.0.1:${port}`,
    rootToken,
    setMode(next) {
      // Going down drops every open connection; leaving hang releases the requests it held.
      if (next === 'down') dropConnections();
      if (mode === 'hang' && next !== 'hang') {
        for (const res of hanging) res.destroy();
        hanging.clear();
      }
      mode = next;
    },
    callCount: (path) => counts.get(path.replace(/^\/?(v1\/)?/, '')) ?? 0,
    callCounts: () => new Map(counts),
    resetCallCounts: () => counts.clear(),
    expireTokens() {
      for (const entry of tokens.values()) if (!entry.policies.includes('root')) entry.expiresAt = Date.now() - 1;
    },
    refuseRenewals(on) {
      renewalsRefused = on;
    },
    issueToken: (spec) =>
      issue(spec.policies, spec.ttlSeconds, 'auth/token/create', spec.renewable ?? true, {
        periodSeconds: spec.periodSeconds,
        maxTtlSeconds: spec.maxTtlSeconds,
      }),
    liveTokenCount: () => [...tokens.values()].filter((t) => t.expiresAt === undefined || t.expiresAt > Date.now()).length,
    keyVersions(name) {
      const key = keys.get(name);
      return key === undefined ? undefined : { latestVersion: key.latestVersion, minDecryptionVersion: key.minDecryptionVersion };
    },
    async close() {
      dropConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function newToken(): string {
  return `hvs.${randomBytes(18).toString('base64url')}`;
}

function newTransitKey(derived = false): TransitKey {
  return {
    derived,
    versions: new Map([[1, { key: randomBytes(32), createdAt: Date.now() }]]),
    latestVersion: 1,
    minDecryptionVersion: 1,
    minEncryptionVersion: 0,
    deletionAllowed: false,
  };
}

function envelope(data: object | null, auth: object | null = null): object {
  return {
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: null,
    auth,
    mount_type: '',
  };
}

function healthBody(sealed: boolean): object {
  return {
    initialized: true,
    sealed,
    standby: false,
    performance_standby: false,
    replication_performance_mode: 'disabled',
    replication_dr_mode: 'disabled',
    server_time_utc: Math.floor(Date.now() / 1000),
    version: '1.17.0+standin',
    cluster_name: 'vault-standin',
    cluster_id: '00000000-0000-4000-8000-000000000000',
  };
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

function integerField(value: unknown, name: string): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n))
    throw new VaultHttpError(400, [`error converting input ${String(value)} for field "${name}"`]);
  return n;
}

function decodeBase64(value: string, field: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new VaultHttpError(400, [`failed to base64-decode ${field}`]);
  return Buffer.from(value, 'base64');
}

/**
 * batched runs one transit operation on the request itself or, with `batch_input`, on each item
 * in order: an item that fails gets `error` in its place in `batch_results`, and any failure makes
 * the answer 400 (Vault's default `partial_failure_response_code`).
 */
function batched(body: Record<string, unknown>, one: (item: Record<string, unknown>) => object): [number, object] {
  if (body.batch_input === undefined) return [200, envelope(one(body))];
  if (!Array.isArray(body.batch_input) || body.batch_input.length === 0) throw new VaultHttpError(400, ['missing batch input to process']);
  let failed = false;
  const results = (body.batch_input as unknown[]).map((item) => {
    try {
      if (typeof item !== 'object' || item === null) throw new VaultHttpError(400, ['batch input item is not an object']);
      return one(item as Record<string, unknown>);
    } catch (err) {
      if (!(err instanceof VaultHttpError)) throw err;
      failed = true;
      return { error: err.errors.join('; ') };
    }
  });
  const partialStatus =
    body.partial_failure_response_code === undefined
      ? 400
      : integerField(body.partial_failure_response_code, 'partial_failure_response_code');
  return [failed ? partialStatus : 200, envelope({ batch_results: results })];
}

function send(res: ServerResponse, status: number, payload: object | null): void {
  if (status === 204 || payload === null) {
    res.writeHead(204, { 'Cache-Control': 'no-store' });
    res.end();
    return;
  }
  const body = JSON.stringify(payload);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.alloc(0)));
    req.on('close', () => resolve(Buffer.concat(chunks)));
  });
}
