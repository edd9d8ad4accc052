import { type DbTimeouts, dbTimeoutsFrom, type ListenConfig, listenConfigFrom, serviceDatabaseUrlFrom } from '@parley/db';
import { loadOwnKekProviderConfig, type KekProviderConfig } from '@parley/envelope';
import { ConfigError, envEnum, envInt, envOptional, envString, envUrl, type Env } from '@parley/platform';
import { DEFAULT_SESSION_AUDIENCE, DEFAULT_SESSION_ISSUER } from '@parley/session-token';
import type { ApiKeyEnvironment } from './api-key-format.js';

/** IdentityConfig is identity's own configuration (beyond the kernel's). */
export interface IdentityConfig {
  readonly databaseUrl: string;
  /** dbTimeouts bound each statement and idle transaction on the service's connections (PARLEY_DB_STATEMENT_TIMEOUT_MS, PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS). */
  readonly dbTimeouts: DbTimeouts;
  /** apiKeyPepper keys the HMAC of stored API keys; it never reaches the database. */
  readonly apiKeyPepper: Buffer;
  readonly apiKeyEnvironment: ApiKeyEnvironment;
  readonly sessionIssuer: string;
  readonly sessionAudience: string;
  /** sessionUrl is the orchestrator's public connect URL used for the signed session URL form. */
  readonly sessionUrl: string;
  readonly signingKeyRotationHours: number;
  /** signingKeyReloadMs is how often each replica re-reads the signing keys: the bound for a new or withdrawn key to reach every replica. */
  readonly signingKeyReloadMs: number;
  /** agentCacheMs is how long "the workspace has this agent" is reused for its next sessions (0: asked on every CreateSession). */
  readonly agentCacheMs: number;
  /** listen is how the agent cache's LISTEN connection reaches Postgres (PARLEY_LISTEN_*). */
  readonly listen: ListenConfig;
  /** kek seals the private halves of the session signing keys (envelope encryption). */
  readonly kek: KekProviderConfig;
  readonly throttle: { readonly maxFailures: number; readonly windowSeconds: number; readonly blockSeconds: number };
  /** bootstrapFile, when set and missing, gets a fresh dev workspace and owner key (dev stack only). */
  readonly bootstrapFile: string | undefined;
  /** operatorSessionHours is how long a console sign-in lasts (PARLEY_OPERATOR_SESSION_HOURS). */
  readonly operatorSessionHours: number;
}

/** loadIdentityConfig reads identity's variables (main.ts passes ctx.env); errors name the variable, never its value. */
export function loadIdentityConfig(env: Env): IdentityConfig {
  const pepper = envString(env, 'PARLEY_API_KEY_PEPPER');
  if (Buffer.byteLength(pepper) < 32)
    throw new ConfigError('PARLEY_API_KEY_PEPPER', 'must be at least 32 bytes of random text (e.g. openssl rand -base64 48)');
  const databaseUrl = serviceDatabaseUrlFrom(env, 'identity');
  return Object.freeze({
    databaseUrl,
    dbTimeouts: dbTimeoutsFrom(env),
    listen: listenConfigFrom(env, 'identity', databaseUrl),
    apiKeyPepper: Buffer.from(pepper, 'utf8'),
    apiKeyEnvironment: envEnum(env, 'PARLEY_API_KEY_ENVIRONMENT', ['live', 'test'] as const, 'live'),
    sessionIssuer: envString(env, 'PARLEY_SESSION_ISSUER', DEFAULT_SESSION_ISSUER),
    sessionAudience: envString(env, 'PARLEY_SESSION_AUDIENCE', DEFAULT_SESSION_AUDIENCE),
    sessionUrl: envUrl(env, 'PARLEY_SESSION_PUBLIC_URL', ['https:', 'http:', 'wss:']) ?? 'https://localhost:7401',
    signingKeyRotationHours: envInt(env, 'PARLEY_SIGNING_KEY_ROTATION_HOURS', 24, 1, 24 * 90),
    signingKeyReloadMs: envInt(env, 'PARLEY_SIGNING_KEY_RELOAD_MS', 60_000, 100, 300_000),
    agentCacheMs: envInt(env, 'PARLEY_IDENTITY_AGENT_CACHE_MS', 2_000, 0, 60_000),
    kek: loadOwnKekProviderConfig(env, 'identity'),
    throttle: Object.freeze({
      maxFailures: envInt(env, 'PARLEY_AUTH_MAX_FAILURES', 10, 1, 10_000),
      windowSeconds: envInt(env, 'PARLEY_AUTH_FAILURE_WINDOW_SECONDS', 60, 1, 86_400),
      blockSeconds: envInt(env, 'PARLEY_AUTH_BLOCK_SECONDS', 60, 1, 86_400),
    }),
    bootstrapFile: envOptional(env, 'PARLEY_BOOTSTRAP_FILE'),
    operatorSessionHours: envInt(env, 'PARLEY_OPERATOR_SESSION_HOURS', 8, 1, 168),
  });
}
