// Which KEK the dev stack gives the services that seal keys (secrets, identity, audit): the local
// keyrings by default, or Vault when the caller's environment says PARLEY_KEK_PROVIDER=vault.
import { join } from 'node:path';
import { describeKek, loadKekProviderConfig, loadOwnKekProviderConfig } from '@parley/envelope';
import { envEnum, type Env } from '@parley/platform';

/** KEK_SERVICES are the services that keep keys sealed under a KEK. */
export const KEK_SERVICES = ['secrets', 'identity', 'audit'] as const;

/** KekService is one of KEK_SERVICES. */
export type KekService = (typeof KEK_SERVICES)[number];

/** DevKek is the dev stack's KEK choice: local keyrings, or Vault with the caller's PARLEY_VAULT_* variables. */
export type DevKek = { readonly provider: 'local' } | { readonly provider: 'vault'; readonly vaultEnv: Readonly<Record<string, string>> };

/** loadDevKek reads PARLEY_KEK_PROVIDER and, for Vault, every PARLEY_VAULT_* variable of the caller's environment. */
export function loadDevKek(env: Env): DevKek {
  const provider = envEnum(env, 'PARLEY_KEK_PROVIDER', ['local', 'vault'] as const, 'local');
  if (provider === 'local') return { provider };
  const vaultEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (name.startsWith('PARLEY_VAULT_') && value !== undefined) vaultEnv[name] = value;
  return { provider, vaultEnv: Object.freeze(vaultEnv) };
}

/**
 * kekEnvFor is the KEK part of a service's environment. With Vault every KEK service gets the
 * caller's PARLEY_VAULT_* variables except PARLEY_VAULT_TRANSIT_KEY, which names the secrets
 * service's key only: identity and audit keep their own (parley-identity-kek, parley-audit-kek),
 * so that one service's credentials never open another's keys.
 */
export function kekEnvFor(kek: DevKek, service: KekService, devDir: string): Record<string, string> {
  if (kek.provider === 'local')
    return service === 'secrets' ? { PARLEY_KEK_PROVIDER: 'local', PARLEY_LOCAL_KEYRING_PATH: join(devDir, 'keyring.json') } : {};
  const { PARLEY_VAULT_TRANSIT_KEY: secretsKey, ...shared } = kek.vaultEnv;
  return {
    PARLEY_KEK_PROVIDER: 'vault',
    ...shared,
    ...(service === 'secrets' && secretsKey !== undefined ? { PARLEY_VAULT_TRANSIT_KEY: secretsKey } : {}),
  };
}

/** describeServiceKek reads a service's KEK configuration the way the service will (so a bad variable stops the stack here, named) and says which KEK it uses. */
export function describeServiceKek(service: KekService, env: Env): string {
  const config = service === 'secrets' ? loadKekProviderConfig(env) : loadOwnKekProviderConfig(env, service);
  return `KEK ${service}: ${describeKek(config)}`;
}
