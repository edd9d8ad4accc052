import { homedir } from 'node:os';
import { join } from 'node:path';

/** Env is the environment the CLI reads (process.env in main.ts, a plain object in tests). */
export type Env = Readonly<Record<string, string | undefined>>;

/** CliConfig is what the environment says: where the API is, the credentials, the profile file. */
export interface CliConfig {
  /** url is PARLEY_URL (the edge's public URL). */
  readonly url: string | undefined;
  /** apiKey is PARLEY_API_KEY; it wins over a stored profile. */
  readonly apiKey: string | undefined;
  /** caFile is PARLEY_CA: a PEM file of a private CA the edge's certificate chains to (the dev stack's). */
  readonly caFile: string | undefined;
  /** profile is PARLEY_PROFILE (default "default"). */
  readonly profile: string;
  /** profileFile is where `parley login` stores credentials: PARLEY_CONFIG_DIR, else $XDG_CONFIG_HOME/parley, else ~/.config/parley; file credentials.json. */
  readonly profileFile: string;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** loadCliConfig reads PARLEY_URL, PARLEY_API_KEY, PARLEY_CA, PARLEY_PROFILE, PARLEY_CONFIG_DIR and XDG_CONFIG_HOME. */
export function loadCliConfig(env: Env): CliConfig {
  const dir =
    nonEmpty(env.PARLEY_CONFIG_DIR) ?? join(nonEmpty(env.XDG_CONFIG_HOME) ?? join(nonEmpty(env.HOME) ?? homedir(), '.config'), 'parley');
  return Object.freeze({
    url: nonEmpty(env.PARLEY_URL),
    apiKey: nonEmpty(env.PARLEY_API_KEY),
    caFile: nonEmpty(env.PARLEY_CA),
    profile: nonEmpty(env.PARLEY_PROFILE) ?? 'default',
    profileFile: join(dir, 'credentials.json'),
  });
}
