import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, open, readFile, unlink } from 'node:fs/promises';
import { openSecret, sealSecret, uncachedDataKeys, type KekProvider } from '@parley/envelope';
import { FailedPreconditionError } from '@parley/platform';
import { keyIdOf } from './chain.js';

/** CheckpointPublicKey is a public key verifiers may trust for checkpoints. */
export interface CheckpointPublicKey {
  keyId: string;
  publicKeyPem: string;
  createdAt: Date;
}

/**
 * CheckpointSigner signs checkpoint statements with Ed25519. The private key never leaves the
 * implementation: this service's is sealed under the KEK; a secrets-service-backed one would
 * keep it in the secrets service and sign remotely.
 */
export interface CheckpointSigner {
  /** keyId names the key new checkpoints are signed with. */
  readonly keyId: string;
  /** sign returns the Ed25519 signature of `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** publicKeys lists every key whose checkpoints may still be in the log (current first). */
  publicKeys(): Promise<CheckpointPublicKey[]>;
}

interface SealedKeyRecord {
  keyId: string;
  publicKeyPem: string;
  createdAt: string;
  sealed: { ciphertext: string; nonce: string; wrappedDataKey: string; kekVersion: number };
}

interface SealedKeyFile {
  version: 1;
  keys: SealedKeyRecord[];
}

// The sealing binds the private key to this purpose and key id (envelope AAD), so a sealed blob
// copied from another secret does not open as a signing key.
const SEAL_TENANT = 'parley.audit';
const sealRef = (keyId: string) => ({ tenantId: SEAL_TENANT, secretId: `checkpoint-signing-key/${keyId}`, version: 1 });

/** SealedKeyCheckpointSignerOptions configure SealedKeyCheckpointSigner.open. */
export interface SealedKeyCheckpointSignerOptions {
  /** path of the sealed key file: created (0600) with a fresh key when missing. */
  path: string;
  /** kek is the same KEK provider configuration the secrets service uses (local keyring in dev, Vault transit in production). */
  kek: KekProvider;
}

/**
 * SealedKeyCheckpointSigner keeps Ed25519 signing keys in a file, each private key sealed with
 * @parley/envelope under the KEK (AES-256-GCM with a data key wrapped by the KEK). At start it
 * unseals the newest key once; the file alone, without the KEK, yields nothing. Older keys stay
 * listed (public part only is used) so earlier checkpoints keep verifying after a rotation.
 */
export class SealedKeyCheckpointSigner implements CheckpointSigner {
  private constructor(
    readonly keyId: string,
    private readonly privateKey: KeyObject,
    private readonly records: readonly SealedKeyRecord[],
  ) {}

  /** open loads the key file (creating it with a new key if it does not exist) and unseals the current key. */
  static async open(options: SealedKeyCheckpointSignerOptions): Promise<SealedKeyCheckpointSigner> {
    let file = await readKeyFile(options.path);
    if (file === undefined) {
      file = await writeNewKeyFile(options.path, { version: 1, keys: [await newSealedKey(options.kek)] });
    }
    const current = file.keys[0];
    if (current === undefined) throw new FailedPreconditionError(`${options.path} lists no checkpoint signing key`);
    const sealed = {
      ciphertext: Buffer.from(current.sealed.ciphertext, 'base64'),
      nonce: Buffer.from(current.sealed.nonce, 'base64'),
      wrappedDataKey: current.sealed.wrappedDataKey,
      kekVersion: current.sealed.kekVersion,
    };
    const der = await openSecret(uncachedDataKeys(options.kek), sealRef(current.keyId), sealed);
    try {
      const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
      if (keyIdOf(createPublicKey(privateKey)) !== current.keyId)
        throw new FailedPreconditionError(`${options.path}: the sealed key does not match key id ${current.keyId}`);
      return new SealedKeyCheckpointSigner(current.keyId, privateKey, file.keys);
    } finally {
      der.fill(0);
    }
  }

  /** sign signs with the current key. */
  sign(message: Uint8Array): Promise<Uint8Array> {
    return Promise.resolve(sign(null, message, this.privateKey));
  }

  /** publicKeys lists the current and earlier keys. */
  publicKeys(): Promise<CheckpointPublicKey[]> {
    return Promise.resolve(this.records.map((r) => ({ keyId: r.keyId, publicKeyPem: r.publicKeyPem, createdAt: new Date(r.createdAt) })));
  }
}

async function newSealedKey(kek: KekProvider): Promise<SealedKeyRecord> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdOf(publicKey);
  const der = privateKey.export({ type: 'pkcs8', format: 'der' });
  try {
    const sealed = await sealSecret(kek, sealRef(keyId), der);
    return {
      keyId,
      publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      createdAt: new Date().toISOString(),
      sealed: {
        ciphertext: sealed.ciphertext.toString('base64'),
        nonce: sealed.nonce.toString('base64'),
        wrappedDataKey: sealed.wrappedDataKey,
        kekVersion: sealed.kekVersion,
      },
    };
  } finally {
    der.fill(0);
  }
}

async function readKeyFile(path: string): Promise<SealedKeyFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FailedPreconditionError(`cannot read the checkpoint signing key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = JSON.parse(text) as Partial<SealedKeyFile>;
  if (parsed.version !== 1 || !Array.isArray(parsed.keys))
    throw new FailedPreconditionError(`${path} is not a Parley audit signing key file (version 1)`);
  return parsed as SealedKeyFile;
}

// link() fails if the file exists: two replicas starting at once against an empty volume must not
// both install a key; the loser uses the winner's file.
async function writeNewKeyFile(path: string, file: SealedKeyFile): Promise<SealedKeyFile> {
  const temp = `${path}.${process.pid}.tmp`;
  const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await handle.writeFile(JSON.stringify(file, null, 2));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temp, path);
    return file;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const winner = await readKeyFile(path);
    if (winner === undefined) throw err;
    return winner;
  } finally {
    await unlink(temp);
  }
}
