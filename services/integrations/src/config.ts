import { createEgressPolicy, parseEgressPolicyList, type EgressPolicy } from '@parley/egress';
import { ConfigError, envInt, envString, type Env } from '@parley/platform';

/** IntegrationsConfig is the integrations service's own configuration (the kernel reads the rest). */
export interface IntegrationsConfig {
  /** databaseUrl logs in as the service's role (parley_integrations); never logged, it holds the password. */
  readonly databaseUrl: string;
  /** dbPoolMax is the size of the connection pool. */
  readonly dbPoolMax: number;
  /** egressPolicy is the port list and private allow-list every customer-configured URL is checked against. */
  readonly egressPolicy: EgressPolicy;
  /** webhookMaxAgeMs is how long a delivery is retried before it is dead-lettered. */
  readonly webhookMaxAgeMs: number;
}

/**
 * loadIntegrationsConfig reads DATABASE_URL, PARLEY_DB_POOL_MAX, PARLEY_EGRESS_ALLOWED_PORTS,
 * PARLEY_EGRESS_ALLOW_PRIVATE and PARLEY_WEBHOOK_MAX_AGE_SECONDS. Errors name the variable and never echo the database URL.
 */
export function loadIntegrationsConfig(env: Env = process.env): IntegrationsConfig {
  const databaseUrl = envString(env, 'DATABASE_URL');
  let protocol = '';
  try {
    protocol = new URL(databaseUrl).protocol;
  } catch {
    // reported below without the value
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new ConfigError('DATABASE_URL', 'must be a postgres:// URL of the parley_integrations role');
  }
  const ports = parseEgressPolicyList(env.PARLEY_EGRESS_ALLOWED_PORTS ?? '443').map(Number);
  let egressPolicy: EgressPolicy;
  try {
    egressPolicy = createEgressPolicy({ allowedPorts: ports, allowPrivate: parseEgressPolicyList(env.PARLEY_EGRESS_ALLOW_PRIVATE) });
  } catch (error) {
    const variable = /allowPrivate/.test(String(error)) ? 'PARLEY_EGRESS_ALLOW_PRIVATE' : 'PARLEY_EGRESS_ALLOWED_PORTS';
    throw new ConfigError(variable, (error as Error).message.replace(/^egress \w+: /, ''));
  }
  return Object.freeze({
    databaseUrl,
    dbPoolMax: envInt(env, 'PARLEY_DB_POOL_MAX', 10, 1, 200),
    egressPolicy,
    // Three days by default, like the Standard Webhooks example schedule (about 75 hours).
    webhookMaxAgeMs: envInt(env, 'PARLEY_WEBHOOK_MAX_AGE_SECONDS', 259_200, 60, 2_592_000) * 1000,
  });
}
