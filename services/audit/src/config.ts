import { join } from 'node:path';
import { type DbTimeouts, dbTimeoutsFrom, serviceDatabaseUrlFrom } from '@parley/db';
import { loadOwnKekProviderConfig, type KekProviderConfig } from '@parley/envelope';
import { ConfigError, envInt, envOptional, type Env } from '@parley/platform';

/** AuditConfig is the audit service's own configuration (beyond the kernel's). */
export interface AuditConfig {
  readonly databaseUrl: string;
  /** dbTimeouts bound each statement and idle transaction on the service's connections (PARLEY_DB_STATEMENT_TIMEOUT_MS, PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS). */
  readonly dbTimeouts: DbTimeouts;
  readonly dbPoolMax: number;
  /** checkpointEveryEvents signs a checkpoint after this many events of one tenant. */
  readonly checkpointEveryEvents: number;
  /** checkpointEveryMs signs a checkpoint for a tenant whose unsigned events are this old. */
  readonly checkpointEveryMs: number;
  /** signingKeyPath is the file holding the sealed Ed25519 checkpoint key(s). */
  readonly signingKeyPath: string;
  /** witnessPath is the append-only file every signed checkpoint is also written to (undefined: no file witness). */
  readonly witnessPath: string | undefined;
  /** kek seals the checkpoint signing key: the same provider configuration the secrets service uses. */
  readonly kek: KekProviderConfig;
}

/** loadAuditConfig reads the audit service's variables (main.ts passes ctx.env); errors name the variable. */
export function loadAuditConfig(env: Env): AuditConfig {
  const devDir = envOptional(env, 'PARLEY_DEV_DIR');
  const signingKeyPath =
    envOptional(env, 'PARLEY_AUDIT_SIGNING_KEY_PATH') ?? (devDir === undefined ? undefined : join(devDir, 'audit-signing-key.json'));
  if (signingKeyPath === undefined)
    throw new ConfigError(
      'PARLEY_AUDIT_SIGNING_KEY_PATH',
      'is required (the sealed checkpoint signing key file; created on first start if missing)',
    );
  const witnessPath =
    envOptional(env, 'PARLEY_AUDIT_WITNESS_PATH') ?? (devDir === undefined ? undefined : join(devDir, 'audit-witness.ndjson'));
  return Object.freeze({
    databaseUrl: serviceDatabaseUrlFrom(env, 'audit'),
    dbTimeouts: dbTimeoutsFrom(env),
    dbPoolMax: envInt(env, 'PARLEY_DB_POOL_MAX', 10, 1, 200),
    checkpointEveryEvents: envInt(env, 'PARLEY_AUDIT_CHECKPOINT_EVERY_EVENTS', 1000, 1, 10_000_000),
    checkpointEveryMs: envInt(env, 'PARLEY_AUDIT_CHECKPOINT_EVERY_MS', 60_000, 100, 86_400_000),
    signingKeyPath,
    witnessPath,
    kek: loadOwnKekProviderConfig(env, 'audit'),
  });
}
