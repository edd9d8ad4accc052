import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from '@parley/platform';
import { DATA_KEY_BYTES } from './aes-gcm.js';
import type { GeneratedDataKey, KekProvider, KekVersions, RewrappedDataKey } from './kek-provider.js';
import { checkMinDecryptionVersion, parseWrappedKey } from './kek-provider.js';
import type { EnvelopeLogger } from './log.js';
import { VaultSession, type VaultAuth } from './vault-auth.js';
import {
  createVaultRequest,
  dataOf,
  describeFailure,
  numberField,
  statusOf,
  stringField,
  vaultErrorOf,
  vaultStatusText,
  type VaultMethod,
  type VaultRequest,
} from './vault-http.js';

/** VaultTransitOptions configure VaultTransitKekProvider.create. */
export interface VaultTransitOptions {
  /** address is Vault's base URL, e.g. `https://vault.vault.svc:8200`. */
  readonly address: string;
  /** transitMount is the transit engine's mount path (default `transit`). */
  readonly transitMount?: string;
  /** keyName is the transit key that is the KEK (default `parley-kek`). */
  readonly keyName?: string;
  /** serviceName names the service in error messages (secrets, identity or audit; default `secrets`). */
  readonly serviceName?: string;
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
  private readonly request: VaultRequest;
  private readonly session: VaultSession;
  private readonly mount: string;
  private readonly keyName: string;
  private readonly service: string;
  private closed = false;

  private constructor(private readonly options: VaultTransitOptions) {
    this.mount = options.transitMount ?? 'transit';
    this.keyName = options.keyName ?? 'parley-kek';
    this.service = options.serviceName ?? 'secrets';
    const timeoutMs = options.requestTimeoutMs ?? 5_000;
    const renewAtFraction = options.renewAtFraction ?? 2 / 3;
    validateOptions(options, this.mount, this.keyName, timeoutMs, renewAtFraction);
    this.request = createVaultRequest({
      address: options.address,
      timeoutMs,
      ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
      ...(options.caCertPem !== undefined ? { caCertPem: options.caCertPem } : {}),
    });
    this.session = new VaultSession({
      auth: options.auth,
      request: this.request,
      translate: (err, operation, method, path) => this.translate(err, operation, method, path),
      renewAtFraction,
      logger: options.logger,
    });
  }

  /**
   * create logs in (or checks the static token), reads the transit key to fail fast on a wrong
   * mount, key name or policy, and starts token renewal.
   */
  static async create(options: VaultTransitOptions): Promise<VaultTransitKekProvider> {
    const provider = new VaultTransitKekProvider(options);
    try {
      await provider.session.token();
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

  /**
   * rewrapDataKeys rewraps several wrapped keys in one transit call (`batch_input`), in order.
   * One bad item fails the call with a message naming it (Vault answers 400 with per-item errors).
   */
  async rewrapDataKeys(wrappedKeys: readonly string[]): Promise<RewrappedDataKey[]> {
    if (wrappedKeys.length === 0) return [];
    for (const k of wrappedKeys) this.requireVaultWrapped(k);
    const path = `${this.mount}/rewrap/${this.keyName}`;
    let body: unknown;
    try {
      body = await this.send('rewrap data keys', 'POST', path, { batch_input: wrappedKeys.map((ciphertext) => ({ ciphertext })) });
    } catch (err) {
      const results = (err as { batchResults?: unknown }).batchResults;
      if (!Array.isArray(results)) throw err;
      const index = results.findIndex((r) => typeof (r as { error?: unknown } | null)?.error === 'string');
      const why = String((results[index] as { error?: unknown } | undefined)?.error ?? '')
        .replace(/\s+/g, ' ')
        .slice(0, 200);
      throw new FailedPreconditionError(
        `Vault at ${this.options.address} could not rewrap data key ${index} of ${results.length} for the ${this.service} service (${why}); nothing in this batch was rewrapped: fix or remove that stored key`,
      );
    }
    const results = dataOf(body, path).batch_results;
    if (!Array.isArray(results) || results.length !== wrappedKeys.length)
      throw new UnavailableError(
        `Vault's answer to ${path} has no batch_results for each of the ${wrappedKeys.length} keys: is this a Vault server?`,
      );
    return results.map((r: unknown) => {
      const data = (r ?? {}) as Record<string, unknown>;
      const rewrapped = stringField(data, 'ciphertext', path);
      return { wrappedKey: rewrapped, kekVersion: versionOf(data, rewrapped) };
    });
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
    this.session.close();
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
  private async send(operation: string, method: VaultMethod, path: string, body?: object): Promise<unknown> {
    if (this.closed) throw new FailedPreconditionError('the Vault transit KEK provider is closed');
    let state = await this.session.token();
    try {
      return await this.request(method, path, body, state.token);
    } catch (err) {
      const batchResults = batchResultsOf(err);
      if (batchResults !== undefined) throw Object.assign(new Error('a batch item failed'), { batchResults });
      if (statusOf(err) !== 403 || !this.session.canLogin) throw this.translate(err, operation, method, path);
      this.options.logger.warn({ kekProvider: 'vault-transit', path, status: 403 }, 'Vault refused the token; logging in again');
    }
    state = await this.session.login('token refused');
    try {
      return await this.request(method, path, body, state.token);
    } catch (err) {
      throw this.translate(err, operation, method, path);
    }
  }

  /** translate turns a node-vault or network failure into a domain error that says, in one line, what to check. */
  private translate(err: unknown, operation: string, method: VaultMethod, path: string): Error {
    if (err instanceof UnavailableError || err instanceof FailedPreconditionError || err instanceof InvalidArgumentError) return err;
    const where = `Vault at ${this.options.address}`;
    const service = `the ${this.service} service`;
    const status = statusOf(err);
    if (status === undefined) {
      return new UnavailableError(
        `${where} is unreachable (${describeFailure(err)}), so ${service} cannot ${operation}; nothing is decrypted without it, retry once Vault is reachable`,
      );
    }
    const vaultMessage = vaultErrorOf(err);
    const said = vaultStatusText(status, err);
    const auth = this.options.auth;
    if (/^auth\/[^/]+\/login$/.test(path) && (status === 400 || status === 403) && auth.method !== 'token') {
      // A refused login is about the credentials and the role, not about a policy.
      const check =
        auth.method === 'kubernetes'
          ? `check that Vault role "${auth.role}" is bound to this service account (bound_service_account_names and bound_service_account_namespaces) and that ${auth.jwtPath} holds the pod's current service-account token`
          : 'check the role_id and secret_id (a secret_id expires and may be limited in uses; issue a new one) in PARLEY_VAULT_APPROLE_ROLE_ID and PARLEY_VAULT_APPROLE_SECRET_ID_FILE';
      return new UnavailableError(`${where} refused the ${auth.method} login of ${service} (${said}): ${check}`);
    }
    if (status === 403 && path === 'auth/token/lookup-self') {
      return new UnavailableError(
        `${where} refused the configured token of ${service} (${said}): it is expired, revoked or wrong; put a valid token in PARLEY_VAULT_TOKEN_FILE`,
      );
    }
    if (status === 403) {
      const capability = method === 'GET' ? 'read' : 'update';
      return new UnavailableError(
        `${where} refused to ${operation} for ${service} (${said}): the token was revoked or its policy lacks "${capability}" on "${path}"; apply the policy from the @parley/envelope README`,
      );
    }
    if (status === 400 && /too old|disallowed by policy|min(imum)?[ _]decryption/i.test(vaultMessage)) {
      return new FailedPreconditionError(
        `${where} refused to ${operation} for ${service}: the data key is wrapped with a KEK version below min_decryption_version (${said}); it should have been rewrapped before the minimum was raised`,
      );
    }
    if (status === 404 || (status === 400 && /not found/i.test(vaultMessage))) {
      return new FailedPreconditionError(
        `${service} cannot ${operation}: ${where} has no transit key "${this.keyName}" at mount "${this.mount}" (${said}): create it with "vault write -f ${this.mount}/keys/${this.keyName}", or fix PARLEY_VAULT_TRANSIT_MOUNT and PARLEY_VAULT_TRANSIT_KEY`,
      );
    }
    if (status === 400) {
      return new FailedPreconditionError(`${where} rejected the request to ${operation} for ${service} (${said})`);
    }
    return new UnavailableError(
      `${where} failed to ${operation} for ${service} (${said})${status === 503 ? ': Vault is sealed or not the active node' : ''}; retry once Vault is healthy`,
    );
  }
}

// A partly failed batch is a 400 whose body holds every item's result.
function batchResultsOf(err: unknown): unknown[] | undefined {
  if (statusOf(err) !== 400) return undefined;
  const results = (err as { response?: { body?: { data?: { batch_results?: unknown } } } }).response?.body?.data?.batch_results;
  return Array.isArray(results) ? results : undefined;
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
