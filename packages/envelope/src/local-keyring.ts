import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FailedPreconditionError } from '@parley/platform';
import { aesGcmDecrypt, aesGcmEncrypt, DATA_KEY_BYTES, NONCE_BYTES } from './aes-gcm.js';
import { encodeAssociatedData } from './associated-data.js';
import type { GeneratedDataKey, KekProvider, KekVersions, RewrappedDataKey } from './kek-provider.js';
import { checkMinDecryptionVersion, parseWrappedKey } from './kek-provider.js';
import type { EnvelopeLogger } from './log.js';

/** LocalKeyringOptions configure LocalKeyringKekProvider.open. */
export interface LocalKeyringOptions {
  /** path is the keyring JSON file; keep it outside the repository (default ~/.parley/keyring.json). */
  readonly path: string;
  /** logger receives the one-time "not for production" notice and rotation events. */
  readonly logger: EnvelopeLogger;
}

interface KeyringFile {
  format: typeof KEYRING_FORMAT;
  warning: string;
  minDecryptionVersion: number;
  versions: Record<string, { key: string; createdAt: string }>;
}

const KEYRING_FORMAT = 'parley-local-keyring/1';
const WRAP_AAD_LABEL = 'parley.local-keyring.v1';

/**
 * LocalKeyringKekProvider keeps versioned AES-256 KEKs in a JSON file, for the one-machine dev
 * stack where no Vault runs. It has Vault transit's semantics (versions, rewrap, minimum
 * decryption version) and a matching wrapped-key format, `local:v<N>:<base64>`, so the code
 * above it is the same. It is not for production: the KEKs sit on the same disk as the data.
 * The file is created with mode 0600 and refused when group or others can read it.
 */
export class LocalKeyringKekProvider implements KekProvider {
  /** kind is 'local-keyring'. */
  readonly kind = 'local-keyring' as const;
  private keyring: KeyringFile;
  private readonly keys = new Map<number, Buffer>();
  private mutation: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly path: string,
    private readonly logger: EnvelopeLogger,
    keyring: KeyringFile,
  ) {
    this.keyring = keyring;
    this.loadKeys(keyring);
  }

  /** open creates the keyring file (mode 0600, one KEK version) if missing, checks its mode and loads it. */
  static async open(options: LocalKeyringOptions): Promise<LocalKeyringKekProvider> {
    const created = await createKeyringIfMissing(options.path);
    const keyring = await readKeyring(options.path);
    const provider = new LocalKeyringKekProvider(options.path, options.logger, keyring);
    options.logger.warn(
      { kekProvider: 'local-keyring', path: options.path, created, latestVersion: provider.latestVersion() },
      'local keyring KEK provider in use: it is for development on one machine only and NOT for production; configure Vault transit (PARLEY_KEK_PROVIDER=vault) in production',
    );
    return provider;
  }

  /** generateDataKey returns a fresh random data key wrapped with the latest keyring version. */
  async generateDataKey(): Promise<GeneratedDataKey> {
    this.assertOpen();
    const plaintextKey = randomBytes(DATA_KEY_BYTES);
    const kekVersion = this.latestVersion();
    return { plaintextKey, wrappedKey: this.wrap(plaintextKey, kekVersion), kekVersion };
  }

  /** unwrapDataKey decrypts a `local:vN:` wrapped key; versions below the minimum are refused. */
  async unwrapDataKey(wrappedKey: string): Promise<Buffer> {
    this.assertOpen();
    const parts = parseWrappedKey(wrappedKey);
    if (parts.scheme !== 'local') {
      throw new FailedPreconditionError(
        'this data key was wrapped by Vault transit ("vault:" prefix); the local keyring cannot unwrap it: configure the Vault KEK provider',
      );
    }
    if (parts.kekVersion < this.keyring.minDecryptionVersion) {
      throw new FailedPreconditionError(
        `data key is wrapped with KEK version ${parts.kekVersion}, below the minimum decryption version ${this.keyring.minDecryptionVersion}: it should have been rewrapped before the minimum was raised`,
      );
    }
    const kek = await this.keyFor(parts.kekVersion);
    const raw = Buffer.from(parts.payload, 'base64');
    const dataKey = aesGcmDecrypt(
      kek,
      { nonce: raw.subarray(0, NONCE_BYTES), ciphertext: raw.subarray(NONCE_BYTES) },
      wrapAad(parts.kekVersion),
    );
    if (dataKey === undefined || dataKey.length !== DATA_KEY_BYTES) {
      dataKey?.fill(0);
      throw new FailedPreconditionError(
        `data key does not unwrap with local KEK version ${parts.kekVersion} of ${this.path}: it was wrapped by another keyring (was the file replaced?)`,
      );
    }
    return dataKey;
  }

  /** rewrapDataKey re-encrypts a wrapped key under the latest version; the plaintext is wiped at once. */
  async rewrapDataKey(wrappedKey: string): Promise<RewrappedDataKey> {
    const dataKey = await this.unwrapDataKey(wrappedKey);
    try {
      const kekVersion = this.latestVersion();
      return { wrappedKey: this.wrap(dataKey, kekVersion), kekVersion };
    } finally {
      dataKey.fill(0);
    }
  }

  /** rotateKek appends a new random KEK version to the file (atomic replace, mode 0600). */
  rotateKek(): Promise<KekVersions> {
    return this.mutate((keyring) => {
      const next = Math.max(...Object.keys(keyring.versions).map(Number)) + 1;
      keyring.versions[String(next)] = { key: randomBytes(DATA_KEY_BYTES).toString('base64'), createdAt: new Date().toISOString() };
      this.logger.info({ kekProvider: 'local-keyring', latestVersion: next }, 'local keyring KEK rotated');
    });
  }

  /** readKekVersions reads the versions from the file, so a rotation by another process is seen. */
  async readKekVersions(): Promise<KekVersions> {
    this.assertOpen();
    await this.reload();
    return this.versions();
  }

  /** raiseMinDecryptionVersion stores a higher minimum; lowering or going past the latest is refused. */
  raiseMinDecryptionVersion(version: number): Promise<KekVersions> {
    return this.mutate((keyring) => {
      const latest = Math.max(...Object.keys(keyring.versions).map(Number));
      checkMinDecryptionVersion(version, keyring.minDecryptionVersion, latest);
      keyring.minDecryptionVersion = version;
      this.logger.info({ kekProvider: 'local-keyring', minDecryptionVersion: version }, 'local keyring minimum decryption version raised');
    });
  }

  /** close wipes the KEKs held in memory. */
  async close(): Promise<void> {
    this.closed = true;
    for (const key of this.keys.values()) key.fill(0);
    this.keys.clear();
  }

  private latestVersion(): number {
    return Math.max(...this.keys.keys());
  }

  private versions(): KekVersions {
    return { latestVersion: this.latestVersion(), minDecryptionVersion: this.keyring.minDecryptionVersion };
  }

  private wrap(dataKey: Buffer, kekVersion: number): string {
    const kek = this.keys.get(kekVersion);
    if (kek === undefined) throw new Error(`local keyring lost KEK version ${kekVersion}`);
    const sealed = aesGcmEncrypt(kek, dataKey, wrapAad(kekVersion));
    return `local:v${kekVersion}:${Buffer.concat([sealed.nonce, sealed.ciphertext]).toString('base64')}`;
  }

  private async keyFor(version: number): Promise<Buffer> {
    let key = this.keys.get(version);
    if (key === undefined) {
      // Another process sharing the file may have rotated; look once more before giving up.
      await this.reload();
      key = this.keys.get(version);
    }
    if (key === undefined) {
      throw new FailedPreconditionError(
        `KEK version ${version} is not in the local keyring ${this.path} (latest is ${this.latestVersion()}): the data was encrypted with another keyring file`,
      );
    }
    return key;
  }

  private async reload(): Promise<void> {
    const keyring = await readKeyring(this.path);
    this.keyring = keyring;
    this.loadKeys(keyring);
  }

  private loadKeys(keyring: KeyringFile): void {
    for (const [version, entry] of Object.entries(keyring.versions)) {
      const n = Number(version);
      if (!this.keys.has(n)) this.keys.set(n, Buffer.from(entry.key, 'base64'));
    }
  }

  private mutate(change: (keyring: KeyringFile) => void): Promise<KekVersions> {
    this.assertOpen();
    // Mutations run one at a time and start from the file, not from memory.
    const run = this.mutation.then(async () => {
      const keyring = await readKeyring(this.path);
      change(keyring);
      await writeKeyringAtomically(this.path, keyring);
      this.keyring = keyring;
      this.loadKeys(keyring);
      return this.versions();
    });
    this.mutation = run.catch(() => undefined);
    return run;
  }

  private assertOpen(): void {
    if (this.closed) throw new FailedPreconditionError('the local keyring KEK provider is closed');
  }
}

function wrapAad(kekVersion: number): Buffer {
  return encodeAssociatedData(WRAP_AAD_LABEL, [String(kekVersion)]);
}

async function createKeyringIfMissing(path: string): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const keyring: KeyringFile = {
    format: KEYRING_FORMAT,
    warning: 'Development KEKs for Parley. Not for production. Anyone who can read this file can decrypt every stored secret.',
    minDecryptionVersion: 1,
    versions: { '1': { key: randomBytes(DATA_KEY_BYTES).toString('base64'), createdAt: new Date().toISOString() } },
  };
  // The whole keyring is written under a private name first and then linked to its path: link()
  // fails when the path exists, so two processes starting together never overwrite each other's
  // KEK, and neither ever reads the other's file half-written (created empty, then filled: a
  // sibling that read it in between refused to start with "not valid JSON").
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(keyring, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(temp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new FailedPreconditionError(`cannot create the local keyring ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    await rm(temp, { force: true });
  }
}

async function readKeyring(path: string): Promise<KeyringFile> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new FailedPreconditionError(`cannot read the local keyring ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!info.isFile()) throw new FailedPreconditionError(`the local keyring ${path} is not a regular file`);
  const mode = info.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new FailedPreconditionError(
      `refusing the local keyring ${path}: its mode is ${mode.toString(8).padStart(4, '0')}, readable by group or others; run "chmod 600 ${path}"`,
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw new FailedPreconditionError(
      `refusing the local keyring ${path}: it is owned by uid ${info.uid}, not by this process (uid ${uid})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new FailedPreconditionError(`the local keyring ${path} is not valid JSON`, { cause: err });
  }
  return validateKeyring(parsed, path);
}

function validateKeyring(value: unknown, path: string): KeyringFile {
  const bad = (why: string): never => {
    throw new FailedPreconditionError(`the local keyring ${path} is damaged: ${why}`);
  };
  if (typeof value !== 'object' || value === null) return bad('not a JSON object');
  const file = value as Partial<KeyringFile>;
  if (file.format !== KEYRING_FORMAT) bad(`format is not "${KEYRING_FORMAT}"`);
  if (typeof file.versions !== 'object' || file.versions === null) return bad('no "versions"');
  const versions = Object.keys(file.versions);
  if (versions.length === 0) bad('no KEK versions');
  for (const version of versions) {
    const entry = file.versions[version];
    if (!/^[1-9]\d*$/.test(version)) bad(`"${version}" is not a version number`);
    if (typeof entry?.key !== 'string' || Buffer.from(entry.key, 'base64').length !== DATA_KEY_BYTES)
      bad(`version ${version} is not a 32-byte key`);
  }
  const latest = Math.max(...versions.map(Number));
  const min = file.minDecryptionVersion;
  if (typeof min !== 'number' || !Number.isSafeInteger(min) || min < 1 || min > latest) bad('minDecryptionVersion is out of range');
  return file as KeyringFile;
}

async function writeKeyringAtomically(path: string, keyring: KeyringFile): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(keyring, null, 2)}\n`);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  // rename() replaces the file in one step: a crash leaves either the old or the new keyring.
  await rename(temp, path);
}
