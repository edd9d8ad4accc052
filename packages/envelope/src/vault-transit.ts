import { readFile } from 'node:fs/promises';
import NodeVault from 'node-vault';
import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from '@parley/platform';
import { DATA_KEY_BYTES } from './aes-gcm.js';
import type { GeneratedDataKey, KekProvider, KekVersions, RewrappedDataKey } from './kek-provider.js';
import { parseWrappedKey } from './kek-provider.js';
import { checkMinDecryptionVersion } from './local-keyring.js';
import type { EnvelopeLogger } from './log.js';

/** VaultAuth selects how the secrets service logs in to Vault. */
export type VaultAuth =
  | {
      /** method kubernetes: log in with the pod's service-account JWT (the in-cluster default). */
      readonly method: 'kubernetes';
      /** role is the Vault Kubernetes auth role bound to the service account. */
      readonly role: string;
      /** jwtPath is read at every login, because projected service-account tokens rotate. */
      readonly jwtPath: string;
      /** mountPath is where the Kubernetes auth method is mounted (default `kubernetes`). */
      readonly mountPath?: string;
    }
  | {
      /** method approle: log in with a role id and secret id. */
      readonly method: 'approle';
      /** roleId is the AppRole's role_id. */
      readonly roleId: string;
      /** secretId is the AppRole's secret_id; never logged. */
      readonly secretId: string;
      /** mountPath is where the AppRole auth method is mounted (default `approle`). */
      readonly mountPath?: string;
    }
  | {
      /** method token: use a token given from outside; renewed if renewable, never re-obtained. */
      readonly method: 'token';
      /** token is the Vault token; never logged. */
      readonly token: string;
    };

/** VaultTransitOptions configure VaultTransitKekProvider.create. */
export interface VaultTransitOptions {
  /** address is Vault's base URL, e.g. `https://vault.vault.svc:8200`. */
  readonly address: string;
  /** transitMount is the transit engine's mount path (default `transit`). */
  readonly transitMount?: string;
  /** keyName is the transit key that is the KEK (default `parley-kek`). */
  readonly keyName?: string;
  /** auth selects the login method. */
  readonly auth: VaultAuth;
  /** namespace is the Vault Enterprise namespace, if any. */
  readonly namespace?: string;
  /** caCertPem is the CA bundle that signed Vault's TLS certificate, when not a public CA. */
  readonly caCertPem?: string;
  /** requestTimeoutMs bounds every Vault call; a hung Vault fails with UnavailableError (default 5,000). */
  readonly requestTimeoutMs?: number;
  /** renewAtFraction is the share of the token TTL after which it is renewed (default 2/3). */
  readonly renewAtFraction?: number;
  /** logger receives login, renewal and failure events (never tokens or keys). */
  readonly logger: EnvelopeLogger;
}

type VaultClient = NodeVault.client;
type Headers = Record<string, string>;

interface VaultAuthResponse {
  auth?: { client_token?: string; lease_duration?: number; renewable?: boolean };
}

interface TokenState {
  readonly token: string;
  /** expiresAt is Date.now()-based; undefined for tokens without a TTL (root-like). */
  readonly expiresAt: number | undefined;
  readonly ttlSeconds: number;
  readonly renewable: boolean;
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MOUNT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9][A-Za-z0-9_.-]*)*$/;

/**
 * VaultTransitKekProvider keeps the KEK in Vault's transit engine through the node-vault client:
 * data keys from `<mount>/datakey/plaintext/<key>`, unwrap with `<mount>/decrypt/<key>`,
 * `<mount>/rewrap/<key>`, rotation and `min_decryption_version` on `<mount>/keys/<key>`.
 * It logs in with Kubernetes, AppRole or a static token, renews the token at 2/3 of its TTL and
 * logs in again when renewal fails or a call is refused with 403. Every call has a deadline; an
 * unreachable, sealed or hung Vault is an UnavailableError and there is no plaintext fallback.
 *
 * Note: Vault returns the plaintext data key as a base64 string inside a JSON body. JavaScript
 * strings cannot be wiped, so that copy lives until garbage collection; the Buffers this class
 * hands out can and must be wiped by the caller.
 */
export class VaultTransitKekProvider implements KekProvider {
  /** kind is 'vault-transit'. */
  readonly kind = 'vault-transit' as const;
  private readonly client: VaultClient;
  private readonly mount: string;
  private readonly keyName: string;
  private readonly timeoutMs: number;
  private readonly renewAtFraction: number;
  private current: TokenState | undefined;
  private loginInFlight: Promise<TokenState> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(private readonly options: VaultTransitOptions) {
    this.mount = options.transitMount ?? 'transit';
    this.keyName = options.keyName ?? 'parley-kek';
    this.timeoutMs = options.requestTimeoutMs ?? 5_000;
    this.renewAtFraction = options.renewAtFraction ?? 2 / 3;
    validateOptions(options, this.mount, this.keyName, this.timeoutMs, this.renewAtFraction);
    this.client = NodeVault({
      endpoint: options.address,
      apiVersion: 'v1',
      ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
      requestOptions: { timeout: this.timeoutMs, ...(options.caCertPem !== undefined ? { ca: options.caCertPem } : {}) },
      // node-vault reads VAULT_SKIP_VERIFY from the environment; TLS verification is not optional here.
      rpDefaults: { strictSSL: true },
    } as NodeVault.VaultOptions & { rpDefaults: object });
    // node-vault also falls back to VAULT_TOKEN, VAULT_PREFIX and VAULT_NAMESPACE from the
    // environment. Configuration is explicit here, and the token is sent per request instead.
    this.client.token = '';
    (this.client as unknown as { pathPrefix: string }).pathPrefix = '';
    (this.client as unknown as { namespace: string | undefined }).namespace = options.namespace;
  }

  /**
   * create logs in (or checks the static token), reads the transit key to fail fast on a wrong
   * mount, key name or policy, and starts token renewal.
   */
  static async create(options: VaultTransitOptions): Promise<VaultTransitKekProvider> {
    const provider = new VaultTransitKekProvider(options);
    try {
      await provider.token();
      const versions = await provider.readKekVersions();
      options.logger.info(
        { kekProvider: 'vault-transit', address: options.address, mount: provider.mount, key: provider.keyName, ...versions },
        'Vault transit KEK provider ready',
      );
    } catch (err) {
      await provider.close();
      throw err;
    }
    return provider;
  }

  /** generateDataKey asks transit for a new 256-bit data key, returned in plaintext and wrapped. */
  async generateDataKey(): Promise<GeneratedDataKey> {
    const path = `${this.mount}/datakey/plaintext/${this.keyName}`;
    const body = await this.send('generate a data key', 'POST', path, { bits: DATA_KEY_BYTES * 8 });
    const data = dataOf(body, path);
    const wrappedKey = stringField(data, 'ciphertext', path);
    const plaintextKey = decodeDataKey(stringField(data, 'plaintext', path), path);
    return { plaintextKey, wrappedKey, kekVersion: versionOf(data, wrappedKey) };
  }

  /** unwrapDataKey sends the wrapped key to transit decrypt; the caller must wipe the result. */
  async unwrapDataKey(wrappedKey: string): Promise<Buffer> {
    this.requireVaultWrapped(wrappedKey);
    const path = `${this.mount}/decrypt/${this.keyName}`;
    const body = await this.send('unwrap a data key', 'POST', path, { ciphertext: wrappedKey });
    return decodeDataKey(stringField(dataOf(body, path), 'plaintext', path), path);
  }

  /** rewrapDataKey has transit re-encrypt the wrapped key under the latest version (plaintext stays in Vault). */
  async rewrapDataKey(wrappedKey: string): Promise<RewrappedDataKey> {
    this.requireVaultWrapped(wrappedKey);
    const path = `${this.mount}/rewrap/${this.keyName}`;
    const body = await this.send('rewrap a data key', 'POST', path, { ciphertext: wrappedKey });
    const data = dataOf(body, path);
    const rewrapped = stringField(data, 'ciphertext', path);
    return { wrappedKey: rewrapped, kekVersion: versionOf(data, rewrapped) };
  }

  /** rotateKek adds a transit key version; earlier versions keep decrypting. */
  async rotateKek(): Promise<KekVersions> {
    await this.send('rotate the KEK', 'POST', `${this.mount}/keys/${this.keyName}/rotate`, {});
    const versions = await this.readKekVersions();
    this.options.logger.info({ kekProvider: 'vault-transit', key: this.keyName, ...versions }, 'Vault transit KEK rotated');
    return versions;
  }

  /** readKekVersions reads latest_version and min_decryption_version of the transit key. */
  async readKekVersions(): Promise<KekVersions> {
    const path = `${this.mount}/keys/${this.keyName}`;
    const data = dataOf(await this.send('read the KEK versions', 'GET', path), path);
    return {
      latestVersion: numberField(data, 'latest_version', path),
      minDecryptionVersion: numberField(data, 'min_decryption_version', path),
    };
  }

  /** raiseMinDecryptionVersion sets min_decryption_version on the transit key config. */
  async raiseMinDecryptionVersion(version: number): Promise<KekVersions> {
    const before = await this.readKekVersions();
    checkMinDecryptionVersion(version, before.minDecryptionVersion, before.latestVersion);
    if (version !== before.minDecryptionVersion) {
      await this.send('raise the minimum decryption version', 'POST', `${this.mount}/keys/${this.keyName}/config`, {
        min_decryption_version: version,
      });
    }
    const after = await this.readKekVersions();
    this.options.logger.info(
      { kekProvider: 'vault-transit', key: this.keyName, ...after },
      'Vault transit minimum decryption version raised',
    );
    return after;
  }

  /** close stops token renewal; calls after close fail. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.renewTimer !== undefined) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    this.current = undefined;
  }

  private requireVaultWrapped(wrappedKey: string): void {
    if (parseWrappedKey(wrappedKey).scheme !== 'vault') {
      throw new FailedPreconditionError(
        'this data key was wrapped by the local keyring ("local:" prefix); Vault transit cannot unwrap it: rewrap it with the local keyring provider first',
      );
    }
  }

  /**
   * send makes one authenticated call. A 403 may mean the token expired or was revoked early,
   * so with a login method it logs in once more and retries; everything else is translated.
   */
  private async send(operation: string, method: 'GET' | 'POST', path: string, body?: object): Promise<unknown> {
    if (this.closed) throw new FailedPreconditionError('the Vault transit KEK provider is closed');
    let state = await this.token();
    try {
      return await this.raw(method, path, body, state.token);
    } catch (err) {
      if (statusOf(err) !== 403 || this.options.auth.method === 'token') throw this.translate(err, operation, method, path);
      this.options.logger.warn({ kekProvider: 'vault-transit', path, status: 403 }, 'Vault refused the token; logging in again');
    }
    state = await this.login('token refused');
    try {
      return await this.raw(method, path, body, state.token);
    } catch (err) {
      throw this.translate(err, operation, method, path);
    }
  }

  /** raw is one node-vault request with this provider's deadline; a hung Vault cannot hold a caller. */
  private async raw(method: 'GET' | 'POST', path: string, body: object | undefined, token: string | undefined): Promise<unknown> {
    const attempt = (): Promise<unknown> => {
      const headers: Headers = token !== undefined ? { 'X-Vault-Token': token } : {};
      const requestOptions = { headers, timeout: this.timeoutMs };
      const call = method === 'GET' ? this.client.read(path, requestOptions) : this.client.write(path, body ?? {}, requestOptions);
      return withDeadline(call, this.timeoutMs);
    };
    try {
      return await attempt();
    } catch (err) {
      // A kept-alive connection that the server (or a load balancer) closed while idle fails
      // with a reset on reuse; one fresh attempt tells that apart from Vault being down. Every
      // call made here is safe to repeat.
      const code = (err as { code?: unknown } | null)?.code;
      if (code !== 'ECONNRESET' && code !== 'EPIPE') throw err;
      return attempt();
    }
  }

  /** token returns a usable token, logging in first when there is none or it has expired. */
  private async token(): Promise<TokenState> {
    const state = this.current;
    if (state !== undefined && (state.expiresAt === undefined || Date.now() < state.expiresAt - 500)) return state;
    return this.login(state === undefined ? 'start' : 'token expired');
  }

  /** login obtains a token; concurrent callers share one login. */
  private login(reason: string): Promise<TokenState> {
    this.loginInFlight ??= this.performLogin(reason).finally(() => {
      this.loginInFlight = undefined;
    });
    return this.loginInFlight;
  }

  private async performLogin(reason: string): Promise<TokenState> {
    const auth = this.options.auth;
    let state: TokenState;
    if (auth.method === 'token') {
      state = await this.lookupStaticToken(auth.token);
    } else {
      const mount = auth.mountPath ?? auth.method;
      const path = `auth/${mount}/login`;
      const credentials =
        auth.method === 'kubernetes'
          ? { role: auth.role, jwt: await readServiceAccountJwt(auth.jwtPath) }
          : { role_id: auth.roleId, secret_id: auth.secretId };
      let body: unknown;
      try {
        body = await this.raw('POST', path, credentials, undefined);
      } catch (err) {
        throw this.translate(err, `log in with ${auth.method} auth`, 'POST', path);
      }
      state = tokenFromAuth(body, path);
    }
    if (this.closed) return state;
    this.current = state;
    this.scheduleRenewal(state);
    this.options.logger.info(
      { kekProvider: 'vault-transit', authMethod: auth.method, reason, ttlSeconds: state.ttlSeconds, renewable: state.renewable },
      'Vault login succeeded',
    );
    return state;
  }

  private async lookupStaticToken(token: string): Promise<TokenState> {
    const path = 'auth/token/lookup-self';
    let body: unknown;
    try {
      body = await this.raw('GET', path, undefined, token);
    } catch (err) {
      throw this.translate(err, 'look up the configured Vault token', 'GET', path);
    }
    const data = dataOf(body, path);
    const ttlSeconds = typeof data.ttl === 'number' ? data.ttl : 0;
    return {
      token,
      ttlSeconds,
      renewable: data.renewable === true,
      expiresAt: ttlSeconds > 0 ? Date.now() + ttlSeconds * 1000 : undefined,
    };
  }

  private scheduleRenewal(state: TokenState): void {
    if (this.renewTimer !== undefined) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    if (state.expiresAt === undefined || this.closed) return;
    const delay = Math.max(100, state.ttlSeconds * 1000 * this.renewAtFraction);
    this.renewTimer = setTimeout(() => void this.renewOrLogin(state), delay);
    this.renewTimer.unref();
  }

  /**
   * renewOrLogin renews the token with renew-self; when Vault refuses (token revoked, not
   * renewable, max TTL reached) it logs in again. When Vault is unreachable it retries shortly,
   * and the next call after expiry logs in anyway.
   */
  private async renewOrLogin(state: TokenState): Promise<void> {
    if (this.closed || this.current !== state) return;
    const canLogin = this.options.auth.method !== 'token';
    try {
      if (!state.renewable) throw new NotRenewable();
      const body = await this.raw('POST', 'auth/token/renew-self', {}, state.token);
      const renewed = tokenFromAuth(body, 'auth/token/renew-self', state.token);
      // Near the max TTL Vault grants less than asked; a short lease is better replaced by a login.
      if (canLogin && renewed.ttlSeconds < Math.max(1, state.ttlSeconds * (1 - this.renewAtFraction))) {
        await this.login('token near its max TTL');
        return;
      }
      if (this.closed || this.current !== state) return;
      this.current = renewed;
      this.scheduleRenewal(renewed);
      this.options.logger.info({ kekProvider: 'vault-transit', ttlSeconds: renewed.ttlSeconds }, 'Vault token renewed');
    } catch (err) {
      if (this.closed) return;
      const status = statusOf(err);
      if (status === undefined && !(err instanceof NotRenewable)) {
        // Vault unreachable: try again soon; the token may still be valid for a while.
        this.options.logger.warn({ kekProvider: 'vault-transit', error: describe(err) }, 'Vault token renewal failed; retrying');
        this.renewTimer = setTimeout(() => void this.renewOrLogin(state), Math.max(200, Math.min(5_000, state.ttlSeconds * 100)));
        this.renewTimer.unref();
        return;
      }
      if (!canLogin) {
        this.options.logger.warn({ kekProvider: 'vault-transit', status }, 'the configured Vault token cannot be renewed; it will expire');
        return;
      }
      this.options.logger.warn({ kekProvider: 'vault-transit', status }, 'Vault token renewal refused; logging in again');
      try {
        await this.login('renewal refused');
      } catch (loginErr) {
        this.options.logger.warn(
          { kekProvider: 'vault-transit', error: describe(loginErr) },
          'Vault login after refused renewal failed; the next call will retry',
        );
      }
    }
  }

  /** translate turns a node-vault or network failure into a domain error that says what to fix. */
  private translate(err: unknown, operation: string, method: 'GET' | 'POST', path: string): Error {
    if (err instanceof UnavailableError || err instanceof FailedPreconditionError || err instanceof InvalidArgumentError) return err;
    const where = `Vault at ${this.options.address}`;
    const status = statusOf(err);
    if (status === undefined) {
      return new UnavailableError(
        `${where} is unreachable (${describe(err)}), so the secrets service cannot ${operation}; nothing is decrypted without it, retry once Vault is reachable`,
      );
    }
    const vaultMessage = vaultErrorOf(err);
    if (status === 403) {
      const capability = method === 'GET' ? 'read' : 'update';
      return new UnavailableError(
        `${where} refused to ${operation} (403 ${vaultMessage}): the token is invalid or its policy lacks "${capability}" on "${path}"; apply the policy from the @parley/envelope README`,
      );
    }
    if (status === 400 && /too old|disallowed by policy|min(imum)?[ _]decryption/i.test(vaultMessage)) {
      return new FailedPreconditionError(
        `${where} refused to ${operation}: the data key is wrapped with a KEK version below min_decryption_version (${vaultMessage}); it should have been rewrapped before the minimum was raised`,
      );
    }
    if (status === 404 || (status === 400 && /not found/i.test(vaultMessage))) {
      return new FailedPreconditionError(
        `${where} has no transit key "${this.keyName}" at mount "${this.mount}" (${status} ${vaultMessage}): enable transit and create the key with "vault write -f ${this.mount}/keys/${this.keyName}", or fix the mount and key name`,
      );
    }
    if (status === 400) {
      return new FailedPreconditionError(`${where} rejected the request to ${operation} (400 ${vaultMessage})`);
    }
    return new UnavailableError(
      `${where} failed to ${operation} (${status} ${vaultMessage})${status === 503 ? ': Vault is sealed or not the active node' : ''}; retry once Vault is healthy`,
    );
  }
}

class NotRenewable extends Error {}

class VaultDeadlineError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** withDeadline settles within timeoutMs whatever the transport does. */
function withDeadline<T>(call: Promise<T>, timeoutMs: number): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new VaultDeadlineError(timeoutMs));
    signal.addEventListener('abort', onAbort, { once: true });
    call.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function statusOf(err: unknown): number | undefined {
  const response = (err as { response?: { statusCode?: unknown } } | null)?.response;
  return typeof response?.statusCode === 'number' ? response.statusCode : undefined;
}

function vaultErrorOf(err: unknown): string {
  const body = (err as { response?: { body?: { errors?: unknown } } }).response?.body;
  const errors = body?.errors;
  if (Array.isArray(errors) && errors.length > 0) return errors.map(String).join('; ').slice(0, 300);
  return 'no error message';
}

/** describe names a transport failure without echoing request details (they carry the token). */
function describe(err: unknown): string {
  if (err instanceof VaultDeadlineError) return err.message;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code === 'ECONNABORTED' ? 'request timed out' : code;
  const status = statusOf(err);
  if (status !== undefined) return `HTTP ${status}`;
  return err instanceof Error ? err.name : 'unknown error';
}

async function readServiceAccountJwt(path: string): Promise<string> {
  try {
    const jwt = (await readFile(path, 'utf8')).trim();
    if (jwt.length === 0) throw new Error('file is empty');
    return jwt;
  } catch (err) {
    throw new FailedPreconditionError(
      `cannot read the Kubernetes service-account token at ${path} (${(err as Error).message}): mount a projected service-account token there or set PARLEY_VAULT_K8S_JWT_PATH`,
    );
  }
}

function tokenFromAuth(body: unknown, path: string, fallbackToken?: string): TokenState {
  const auth = (body as VaultAuthResponse | null)?.auth;
  const token = auth?.client_token ?? fallbackToken;
  if (typeof token !== 'string' || token.length === 0 || typeof auth?.lease_duration !== 'number') {
    throw new UnavailableError(`Vault's answer to ${path} has no auth.client_token or auth.lease_duration: is this a Vault server?`);
  }
  const ttlSeconds = auth.lease_duration;
  return { token, ttlSeconds, renewable: auth.renewable === true, expiresAt: ttlSeconds > 0 ? Date.now() + ttlSeconds * 1000 : undefined };
}

function dataOf(body: unknown, path: string): Record<string, unknown> {
  const data = (body as { data?: unknown } | null)?.data;
  if (typeof data !== 'object' || data === null)
    throw new UnavailableError(`Vault's answer to ${path} has no "data" object: is this a Vault server?`);
  return data as Record<string, unknown>;
}

function stringField(data: Record<string, unknown>, name: string, path: string): string {
  const value = data[name];
  if (typeof value !== 'string' || value.length === 0) throw new UnavailableError(`Vault's answer to ${path} has no "${name}" string`);
  return value;
}

function numberField(data: Record<string, unknown>, name: string, path: string): number {
  const value = data[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value))
    throw new UnavailableError(`Vault's answer to ${path} has no "${name}" number`);
  return value;
}

function versionOf(data: Record<string, unknown>, wrappedKey: string): number {
  // key_version is in newer Vault answers; the `vault:vN:` prefix is there in all of them.
  return typeof data.key_version === 'number' ? data.key_version : parseWrappedKey(wrappedKey).kekVersion;
}

function decodeDataKey(base64: string, path: string): Buffer {
  const key = Buffer.from(base64, 'base64');
  if (key.length !== DATA_KEY_BYTES) {
    key.fill(0);
    throw new FailedPreconditionError(
      `Vault's answer to ${path} is not a 256-bit data key: is the transit key of type aes256-gcm96 and bits=256?`,
    );
  }
  return key;
}

function validateOptions(options: VaultTransitOptions, mount: string, keyName: string, timeoutMs: number, renewAtFraction: number): void {
  let url: URL;
  try {
    url = new URL(options.address);
  } catch {
    throw new InvalidArgumentError(`Vault address "${options.address}" is not an absolute URL`, { field: 'address' });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new InvalidArgumentError('Vault address must be http or https', { field: 'address' });
  if (!MOUNT_PATTERN.test(mount)) throw new InvalidArgumentError(`transit mount "${mount}" is not a Vault path`, { field: 'transitMount' });
  if (!NAME_PATTERN.test(keyName))
    throw new InvalidArgumentError(`transit key name "${keyName}" is not a Vault key name`, { field: 'keyName' });
  if (!Number.isFinite(timeoutMs) || timeoutMs < 50)
    throw new InvalidArgumentError('requestTimeoutMs must be at least 50', { field: 'requestTimeoutMs' });
  if (!(renewAtFraction > 0 && renewAtFraction < 1))
    throw new InvalidArgumentError('renewAtFraction must be between 0 and 1', { field: 'renewAtFraction' });
  const auth = options.auth;
  if (auth.method !== 'token' && auth.mountPath !== undefined && !MOUNT_PATTERN.test(auth.mountPath)) {
    throw new InvalidArgumentError(`auth mount "${auth.mountPath}" is not a Vault path`, { field: 'auth.mountPath' });
  }
}
