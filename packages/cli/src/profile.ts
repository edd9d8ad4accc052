import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UsageError } from './exit-codes.js';

/**
 * ProfileCredentials are what a profile authenticates with: a workspace API key, or an operator's
 * sign-in through the company's identity provider (`parley login`): the edge's refresh token
 * (`pr_…`, replaced at each refresh) and the current bearer token (`po_…`) with their expiries.
 */
export type ProfileCredentials =
  | { readonly kind: 'api_key'; readonly apiKey: string }
  | {
      readonly kind: 'oidc';
      readonly refreshToken: string;
      readonly refreshExpiresAt: string;
      readonly accessToken: string;
      readonly expiresAt: string;
      /** deploymentAdmin is whether the sign-in carried deployment:admin (a refresh drops it). */
      readonly deploymentAdmin?: boolean;
    };

/** Profile is one named target: the API's URL, an optional private CA file, and the credentials. */
export interface Profile {
  readonly url: string;
  readonly caFile?: string;
  readonly credentials: ProfileCredentials;
}

/** ProfileFile is credentials.json: every profile by name. */
export interface ProfileFile {
  readonly profiles: Record<string, Profile>;
}

/**
 * readProfiles reads the profile file (an empty set when there is none). A file that others can
 * read is refused, as ssh refuses a private key: it holds credentials.
 */
export async function readProfiles(file: string): Promise<ProfileFile> {
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { profiles: {} };
    throw err;
  }
  if ((info.mode & 0o077) !== 0)
    throw new UsageError(`${file} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`${file} is not valid JSON (${(err as Error).message}); fix it or run parley login again`);
  }
  const profiles = (parsed as { profiles?: unknown }).profiles;
  if (typeof profiles !== 'object' || profiles === null) throw new UsageError(`${file} has no "profiles" object; run parley login again`);
  return { profiles: profiles as Record<string, Profile> };
}

/** writeProfiles replaces the profile file atomically, mode 0600 in a 0700 folder. */
export async function writeProfiles(file: string, content: ProfileFile): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  // writeFile's mode applies only to a new file and is masked by the umask.
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** removeProfilesFile deletes the profile file (logout of the last profile: no credentials left on disk). */
export async function removeProfilesFile(file: string): Promise<void> {
  await rm(file, { force: true });
}
