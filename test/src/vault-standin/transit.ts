// The transit secrets engine as the stand-in runs it: aes256-gcm96 keys with versions, derived
// keys (HKDF-SHA256 per context), encrypt, decrypt, rewrap, data keys, rotation and key config.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { Route } from './route.js';
import { batched, decodeBase64, envelope, integerField, requireMethod, VaultHttpError } from './wire.js';

/** TransitKey is one named key and its versions. */
export interface TransitKey {
  readonly versions: Map<number, { key: Buffer; createdAt: number }>;
  latestVersion: number;
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  deletionAllowed: boolean;
  /** derived keys derive a key per `context` (HKDF-SHA256 here) and refuse calls without one. */
  readonly derived: boolean;
}

const MISSING_CONTEXT =
  "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

const CIPHERTEXT_PATTERN = /^vault:v(\d+):(.*)$/s;

/** newTransitKey makes a key with one version. */
export function newTransitKey(derived = false): TransitKey {
  return {
    derived,
    versions: new Map([[1, { key: randomBytes(32), createdAt: Date.now() }]]),
    latestVersion: 1,
    minDecryptionVersion: 1,
    minEncryptionVersion: 0,
    deletionAllowed: false,
  };
}

/** keyData is what reading a transit key answers. */
export function keyData(name: string, key: TransitKey): object {
  return {
    allow_plaintext_backup: false,
    auto_rotate_period: 0,
    deletion_allowed: key.deletionAllowed,
    derived: key.derived,
    exportable: false,
    imported_key: false,
    // Versions below min_decryption_version are archived by Vault and no longer listed.
    keys: Object.fromEntries(
      [...key.versions].filter(([v]) => v >= key.minDecryptionVersion).map(([v, k]) => [String(v), Math.floor(k.createdAt / 1000)]),
    ),
    latest_version: key.latestVersion,
    min_available_version: 0,
    min_decryption_version: key.minDecryptionVersion,
    min_encryption_version: key.minEncryptionVersion,
    name,
    supports_decryption: true,
    supports_derivation: true,
    supports_encryption: true,
    supports_signing: false,
    type: 'aes256-gcm96',
  };
}

function existingKey(keys: ReadonlyMap<string, TransitKey>, name: string): TransitKey {
  const key = keys.get(name);
  if (key === undefined) throw new VaultHttpError(400, ['encryption key not found']);
  return key;
}

// A derived key's material is HKDF-SHA256 of the version's key with the request's context.
function materialFor(key: TransitKey, version: number, context: unknown): Buffer | undefined {
  const base = key.versions.get(version)?.key;
  if (base === undefined || !key.derived) return base;
  if (typeof context !== 'string' || context === '') throw new VaultHttpError(400, [MISSING_CONTEXT]);
  return Buffer.from(hkdfSync('sha256', base, Buffer.alloc(0), decodeBase64(context, 'context'), 32));
}

function encryptWith(key: TransitKey, plaintext: Buffer, context?: unknown): { ciphertext: string; version: number } {
  const version = key.latestVersion;
  const material = materialFor(key, version, context)!;
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', material, nonce);
  const body = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { ciphertext: `vault:v${version}:${body.toString('base64')}`, version };
}

function decryptWith(key: TransitKey, ciphertext: unknown, context?: unknown): Buffer {
  if (typeof ciphertext !== 'string' || ciphertext === '') throw new VaultHttpError(400, ['missing ciphertext to decrypt']);
  const match = CIPHERTEXT_PATTERN.exec(ciphertext);
  if (match === null) throw new VaultHttpError(400, ['invalid ciphertext: no prefix']);
  const version = Number(match[1]);
  if (!Number.isSafeInteger(version) || version < 1)
    throw new VaultHttpError(400, ['invalid ciphertext: version number could not be decoded']);
  if (version < key.minDecryptionVersion)
    throw new VaultHttpError(400, ['ciphertext or signature version is disallowed by policy (too old)']);
  const material = materialFor(key, version, context);
  if (material === undefined) throw new VaultHttpError(400, ['invalid ciphertext: version is too new']);
  const raw = Buffer.from(match[2] ?? '', 'base64');
  if (raw.length < 12 + 16) throw new VaultHttpError(400, ['invalid ciphertext: could not decode']);
  try {
    const decipher = createDecipheriv('aes-256-gcm', material, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
  } catch {
    throw new VaultHttpError(400, ['cipher: message authentication failed']);
  }
}

/** transitRoute matches a path under the transit mount (`path` without the mount) against the engine's endpoints. */
export function transitRoute(method: string, path: string, keys: Map<string, TransitKey>): Route {
  const rest = path.split('/');
  const [action, second, third, fourth] = rest;

  if (action === 'keys' && second !== undefined && rest.length === 2) {
    const name = second;
    if (method === 'GET') {
      return {
        capability: 'read',
        handler: () => {
          const key = keys.get(name);
          if (key === undefined) throw new VaultHttpError(404, []);
          return [200, envelope(keyData(name, key))];
        },
      };
    }
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: ({ body }) => {
        if (body.type !== undefined && body.type !== 'aes256-gcm96')
          throw new VaultHttpError(400, [`the stand-in only supports key type aes256-gcm96, got "${String(body.type)}"`]);
        if (!keys.has(name)) keys.set(name, newTransitKey(body.derived === true || body.derived === 'true'));
        return [200, envelope(keyData(name, keys.get(name)!))];
      },
    };
  }
  if (action === 'keys' && second !== undefined && rest.length === 3 && third === 'rotate') {
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: () => {
        const key = existingKey(keys, second);
        key.latestVersion += 1;
        key.versions.set(key.latestVersion, { key: randomBytes(32), createdAt: Date.now() });
        return [200, envelope(keyData(second, key))];
      },
    };
  }
  if (action === 'keys' && second !== undefined && rest.length === 3 && third === 'config') {
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: ({ body }) => {
        const key = existingKey(keys, second);
        if (body.min_decryption_version !== undefined) {
          const v = integerField(body.min_decryption_version, 'min_decryption_version');
          if (v < 0) throw new VaultHttpError(400, ['min decryption version must be positive']);
          if (v > key.latestVersion)
            throw new VaultHttpError(400, [`cannot set min decryption version of ${v}, latest key version is ${key.latestVersion}`]);
          key.minDecryptionVersion = v === 0 ? 1 : v;
        }
        if (body.min_encryption_version !== undefined) {
          const v = integerField(body.min_encryption_version, 'min_encryption_version');
          if (v < 0 || v > key.latestVersion) throw new VaultHttpError(400, ['min encryption version out of range']);
          key.minEncryptionVersion = v;
        }
        if (body.deletion_allowed !== undefined) key.deletionAllowed = body.deletion_allowed === true;
        return [200, envelope(keyData(second, key))];
      },
    };
  }
  if (action === 'datakey' && second !== undefined && third !== undefined && fourth === undefined) {
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: ({ body }) => {
        if (second !== 'plaintext' && second !== 'wrapped') throw new VaultHttpError(400, [`invalid type "${second}"`]);
        const key = existingKey(keys, third);
        const bits = body.bits === undefined ? 256 : integerField(body.bits, 'bits');
        if (bits !== 128 && bits !== 256 && bits !== 512) throw new VaultHttpError(400, ['invalid bits value']);
        const dataKey = randomBytes(bits / 8);
        const { ciphertext, version } = encryptWith(key, dataKey, body.context);
        const data: Record<string, unknown> = { ciphertext, key_version: version };
        if (second === 'plaintext') data.plaintext = dataKey.toString('base64');
        return [200, envelope(data)];
      },
    };
  }
  if (action === 'encrypt' && second !== undefined && third === undefined) {
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: ({ body }) => {
        if (!keys.has(second)) keys.set(second, newTransitKey()); // Vault upserts on encrypt
        const key = keys.get(second)!;
        return batched(body, (item) => {
          if (typeof item.plaintext !== 'string') throw new VaultHttpError(400, ['missing plaintext to encrypt']);
          const { ciphertext, version } = encryptWith(key, decodeBase64(item.plaintext, 'plaintext'), item.context);
          return { ciphertext, key_version: version };
        });
      },
    };
  }
  if (action === 'decrypt' && second !== undefined && third === undefined) {
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: ({ body }) => {
        const key = existingKey(keys, second);
        return batched(body, (item) => ({ plaintext: decryptWith(key, item.ciphertext, item.context).toString('base64') }));
      },
    };
  }
  if (action === 'rewrap' && second !== undefined && third === undefined) {
    requireMethod(method, 'write');
    return {
      capability: 'update',
      handler: ({ body }) => {
        const key = existingKey(keys, second);
        return batched(body, (item) => {
          const plaintext = decryptWith(key, item.ciphertext, item.context);
          const { ciphertext, version } = encryptWith(key, plaintext, item.context);
          plaintext.fill(0);
          return { ciphertext, key_version: version };
        });
      },
    };
  }
  throw new VaultHttpError(404, ['1 error occurred:\n\t* unsupported path\n\n']);
}
