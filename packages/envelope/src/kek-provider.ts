import { FailedPreconditionError, InvalidArgumentError } from '@parley/platform';

/**
 * GeneratedDataKey is a fresh data-encryption key (DEK) from a KEK provider. The caller owns
 * plaintextKey and must wipe it (`fill(0)`) as soon as it has used it; only wrappedKey and
 * kekVersion are ever stored.
 */
export interface GeneratedDataKey {
  /** plaintextKey is the 32-byte AES-256 data key; never log it, never store it. */
  readonly plaintextKey: Buffer;
  /** wrappedKey is the data key encrypted under the KEK, e.g. `vault:v3:…` or `local:v3:…`. */
  readonly wrappedKey: string;
  /** kekVersion is the KEK version that wrapped the key (the N of `vN`). */
  readonly kekVersion: number;
}

/** RewrappedDataKey is a wrapped data key re-encrypted under the newest KEK version. */
export interface RewrappedDataKey {
  /** wrappedKey is the new wrapped form; the plaintext data key is unchanged. */
  readonly wrappedKey: string;
  /** kekVersion is the KEK version of the new wrapped form. */
  readonly kekVersion: number;
}

/** KekVersions is the version state of a KEK: which version wraps, which versions may unwrap. */
export interface KekVersions {
  /** latestVersion is the version new data keys are wrapped with, and rewrap targets. */
  readonly latestVersion: number;
  /** minDecryptionVersion is the oldest version still allowed to unwrap; older wrapped keys fail. */
  readonly minDecryptionVersion: number;
}

/** KekProviderKind names the implementations of KekProvider (stored with metadata, shown in logs). */
export type KekProviderKind = 'vault-transit' | 'local-keyring';

/**
 * KekProvider holds the key-encryption key (KEK) and never lets it out: it generates data keys
 * (returning them in plaintext and wrapped), unwraps them, rewraps them to the newest KEK
 * version, and manages the KEK's versions. Vault transit in production, a local keyring file on
 * one machine. Errors are @parley/platform domain errors; an unreachable backend is always an
 * UnavailableError, never a silent fallback.
 */
export interface KekProvider {
  /** kind tells which backend this is. */
  readonly kind: KekProviderKind;

  /** generateDataKey creates a fresh 256-bit data key wrapped with the latest KEK version. */
  generateDataKey(): Promise<GeneratedDataKey>;

  /** unwrapDataKey decrypts a wrapped data key; the caller must wipe the returned buffer. */
  unwrapDataKey(wrappedKey: string): Promise<Buffer>;

  /** rewrapDataKey re-encrypts a wrapped data key under the latest KEK version without exposing it. */
  rewrapDataKey(wrappedKey: string): Promise<RewrappedDataKey>;

  /** rewrapDataKeys, when the backend has a batch call (Vault's batch_input), rewraps several keys in one round trip, in order. */
  rewrapDataKeys?(wrappedKeys: readonly string[]): Promise<RewrappedDataKey[]>;

  /** rotateKek adds a new KEK version; new data keys use it, old wrapped keys stay readable. */
  rotateKek(): Promise<KekVersions>;

  /** readKekVersions reads the latest and the minimum decryption version. */
  readKekVersions(): Promise<KekVersions>;

  /**
   * raiseMinDecryptionVersion forbids unwrapping keys wrapped with versions below `version`.
   * Rewrap everything first (see rewrapAllDataKeys). Lowering is refused: that is a deliberate
   * recovery step for an operator, not something a service does.
   */
  raiseMinDecryptionVersion(version: number): Promise<KekVersions>;

  /** close stops background work (token renewal); the provider is unusable afterwards. */
  close(): Promise<void>;
}

const WRAPPED_KEY_PATTERN = /^(vault|local):v([1-9]\d{0,8}):([A-Za-z0-9+/]+={0,2})$/;

/** WrappedKeyParts is a wrapped data key split into its prefix, KEK version and payload. */
export interface WrappedKeyParts {
  /** scheme is `vault` (Vault transit) or `local` (local keyring). */
  readonly scheme: 'vault' | 'local';
  /** kekVersion is the KEK version that wrapped the key. */
  readonly kekVersion: number;
  /** payload is the base64 ciphertext after the prefix. */
  readonly payload: string;
}

/** parseWrappedKey splits `vault:vN:<base64>` or `local:vN:<base64>`; anything else is invalid. */
export function parseWrappedKey(wrappedKey: string): WrappedKeyParts {
  const match = WRAPPED_KEY_PATTERN.exec(wrappedKey);
  if (match === null) {
    throw new InvalidArgumentError('wrapped data key is malformed: expected "vault:v<N>:<base64>" or "local:v<N>:<base64>"', {
      field: 'wrappedKey',
    });
  }
  return { scheme: match[1] as 'vault' | 'local', kekVersion: Number(match[2]), payload: match[3] as string };
}

/** kekVersionOf reads the KEK version from a wrapped data key without unwrapping it. */
export function kekVersionOf(wrappedKey: string): number {
  return parseWrappedKey(wrappedKey).kekVersion;
}

/** checkMinDecryptionVersion enforces 1 <= current <= version <= latest for raiseMinDecryptionVersion. */
export function checkMinDecryptionVersion(version: number, current: number, latest: number): void {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new InvalidArgumentError(`minimum decryption version must be a positive whole number, got ${String(version)}`, {
      field: 'version',
    });
  }
  if (version < current) {
    throw new FailedPreconditionError(
      `minimum decryption version is already ${current}; lowering it to ${version} is an operator's recovery step, not done by the service`,
    );
  }
  if (version > latest) {
    throw new FailedPreconditionError(`minimum decryption version ${version} is above the latest KEK version ${latest}: rotate first`);
  }
}
