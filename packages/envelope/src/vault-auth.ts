// Vault login and token renewal for the transit KEK provider: Kubernetes, AppRole or a static
// token; renewal at a share of the TTL; a fresh login when renewal is refused.
import { readFile } from 'node:fs/promises';
import { FailedPreconditionError, UnavailableError } from '@parley/platform';
import type { EnvelopeLogger } from './log.js';
import { dataOf, describeFailure, statusOf, type VaultMethod, type VaultRequest } from './vault-http.js';

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

/** VaultTokenState is the token in use and when it runs out. */
export interface VaultTokenState {
  readonly token: string;
  /** expiresAt is Date.now()-based; undefined for tokens without a TTL (root-like). */
  readonly expiresAt: number | undefined;
  readonly ttlSeconds: number;
  readonly renewable: boolean;
}

/** VaultSessionOptions configure a VaultSession. */
export interface VaultSessionOptions {
  readonly auth: VaultAuth;
  readonly request: VaultRequest;
  /** translate turns a failed call into the provider's domain error. */
  readonly translate: (err: unknown, operation: string, method: VaultMethod, path: string) => Error;
  /** renewAtFraction is the share of the token TTL after which it is renewed. */
  readonly renewAtFraction: number;
  readonly logger: EnvelopeLogger;
}

interface VaultAuthResponse {
  auth?: { client_token?: string; lease_duration?: number; renewable?: boolean };
}

class NotRenewable extends Error {}

/**
 * VaultSession keeps a usable Vault token: it logs in on first use and after expiry, shares one
 * login between concurrent callers, renews the token at renewAtFraction of its TTL and logs in
 * again when renewal is refused (a static token is renewed if renewable, never re-obtained).
 */
export class VaultSession {
  private current: VaultTokenState | undefined;
  private loginInFlight: Promise<VaultTokenState> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: VaultSessionOptions) {}

  /** canLogin is false for a static token: a refused token cannot be replaced. */
  get canLogin(): boolean {
    return this.options.auth.method !== 'token';
  }

  /** token returns a usable token, logging in first when there is none or it has expired. */
  async token(): Promise<VaultTokenState> {
    const state = this.current;
    if (state !== undefined && (state.expiresAt === undefined || Date.now() < state.expiresAt - 500)) return state;
    return this.login(state === undefined ? 'start' : 'token expired');
  }

  /** login obtains a token; concurrent callers share one login. */
  login(reason: string): Promise<VaultTokenState> {
    this.loginInFlight ??= this.performLogin(reason).finally(() => {
      this.loginInFlight = undefined;
    });
    return this.loginInFlight;
  }

  /** close stops renewal and forgets the token. */
  close(): void {
    this.closed = true;
    if (this.renewTimer !== undefined) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    this.current = undefined;
  }

  private async performLogin(reason: string): Promise<VaultTokenState> {
    const auth = this.options.auth;
    let state: VaultTokenState;
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
        body = await this.options.request('POST', path, credentials, undefined);
      } catch (err) {
        throw this.options.translate(err, `log in with ${auth.method} auth`, 'POST', path);
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

  private async lookupStaticToken(token: string): Promise<VaultTokenState> {
    const path = 'auth/token/lookup-self';
    let body: unknown;
    try {
      body = await this.options.request('GET', path, undefined, token);
    } catch (err) {
      throw this.options.translate(err, 'look up the configured Vault token', 'GET', path);
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

  private scheduleRenewal(state: VaultTokenState): void {
    if (this.renewTimer !== undefined) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    if (state.expiresAt === undefined || this.closed) return;
    const delay = Math.max(100, state.ttlSeconds * 1000 * this.options.renewAtFraction);
    this.renewTimer = setTimeout(() => void this.renewOrLogin(state), delay);
    this.renewTimer.unref();
  }

  /**
   * renewOrLogin renews the token with renew-self; when Vault refuses (token revoked, not
   * renewable, max TTL reached) it logs in again. When Vault is unreachable it retries shortly,
   * and the next call after expiry logs in anyway.
   */
  private async renewOrLogin(state: VaultTokenState): Promise<void> {
    if (this.closed || this.current !== state) return;
    const { logger, renewAtFraction } = this.options;
    try {
      if (!state.renewable) throw new NotRenewable();
      const body = await this.options.request('POST', 'auth/token/renew-self', {}, state.token);
      const renewed = tokenFromAuth(body, 'auth/token/renew-self', state.token);
      // Near the max TTL Vault grants less than asked; a short lease is better replaced by a login.
      if (this.canLogin && renewed.ttlSeconds < Math.max(1, state.ttlSeconds * (1 - renewAtFraction))) {
        await this.login('token near its max TTL');
        return;
      }
      if (this.closed || this.current !== state) return;
      this.current = renewed;
      this.scheduleRenewal(renewed);
      logger.info({ kekProvider: 'vault-transit', ttlSeconds: renewed.ttlSeconds }, 'Vault token renewed');
    } catch (err) {
      if (this.closed) return;
      const status = statusOf(err);
      if (status === undefined && !(err instanceof NotRenewable)) {
        // Vault unreachable: try again soon; the token may still be valid for a while.
        logger.warn({ kekProvider: 'vault-transit', error: describeFailure(err) }, 'Vault token renewal failed; retrying');
        this.renewTimer = setTimeout(() => void this.renewOrLogin(state), Math.max(200, Math.min(5_000, state.ttlSeconds * 100)));
        this.renewTimer.unref();
        return;
      }
      if (!this.canLogin) {
        logger.warn({ kekProvider: 'vault-transit', status }, 'the configured Vault token cannot be renewed; it will expire');
        return;
      }
      logger.warn({ kekProvider: 'vault-transit', status }, 'Vault token renewal refused; logging in again');
      try {
        await this.login('renewal refused');
      } catch (loginErr) {
        logger.warn(
          { kekProvider: 'vault-transit', error: describeFailure(loginErr) },
          'Vault login after refused renewal failed; the next call will retry',
        );
      }
    }
  }
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

function tokenFromAuth(body: unknown, path: string, fallbackToken?: string): VaultTokenState {
  const auth = (body as VaultAuthResponse | null)?.auth;
  const token = auth?.client_token ?? fallbackToken;
  if (typeof token !== 'string' || token.length === 0 || typeof auth?.lease_duration !== 'number') {
    throw new UnavailableError(`Vault's answer to ${path} has no auth.client_token or auth.lease_duration: is this a Vault server?`);
  }
  const ttlSeconds = auth.lease_duration;
  return { token, ttlSeconds, renewable: auth.renewable === true, expiresAt: ttlSeconds > 0 ? Date.now() + ttlSeconds * 1000 : undefined };
}
