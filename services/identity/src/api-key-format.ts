import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

// A workspace API key: pk_<env>_<key id:12><tenant:22><secret:40><checksum:6>, all base62.
//  - "pk_live_" / "pk_test_" is the fixed prefix with the environment marker;
//  - key id is a random public id selecting the row, tenant is the workspace UUID in base62, so
//    a key is looked up inside its own tenant's RLS partition and never needs a cross-tenant read;
//  - secret is 40 base62 characters from the CSPRNG (≈238 bits);
//  - checksum is CRC32 of everything before it, base62, so a secret scanner can tell a real key
//    from a look-alike offline (as GitHub's tokens do). The checksum is not a security feature.
// Scanner pattern: \bpk_(live|test)_[0-9A-Za-z]{80}\b

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KEY_ID_LEN = 12;
const TENANT_LEN = 22;
const SECRET_LEN = 40;
const CHECKSUM_LEN = 6;
const BODY_LEN = KEY_ID_LEN + TENANT_LEN + SECRET_LEN + CHECKSUM_LEN;

/** API_KEY_PATTERN matches a well-formed key (what secret scanners search for). */
export const API_KEY_PATTERN = new RegExp(`^pk_(live|test)_[0-9A-Za-z]{${BODY_LEN}}$`);

/** ApiKeyEnvironment is the environment marker in a key. */
export type ApiKeyEnvironment = 'live' | 'test';

/** ParsedApiKey is what can be read from a key without the database. */
export interface ParsedApiKey {
  readonly environment: ApiKeyEnvironment;
  readonly keyId: string;
  readonly tenantId: string;
  /** prefix is the displayable, non-secret start: pk_<env>_<key id>. */
  readonly prefix: string;
}

function randomBase62(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(62)];
  return out;
}

function toBase62(value: bigint, length: number): string {
  let out = '';
  let v = value;
  while (v > 0n) {
    out = ALPHABET[Number(v % 62n)] + out;
    v /= 62n;
  }
  return out.padStart(length, '0');
}

function fromBase62(text: string): bigint {
  let v = 0n;
  for (const ch of text) v = v * 62n + BigInt(ALPHABET.indexOf(ch));
  return v;
}

function checksumOf(text: string): string {
  return toBase62(BigInt(crc32(Buffer.from(text, 'ascii'))), CHECKSUM_LEN);
}

/** generateApiKey makes a new key for a tenant; the caller shows it once and stores only its hash. */
export function generateApiKey(tenantId: string, environment: ApiKeyEnvironment): { key: string } & ParsedApiKey {
  const keyId = randomBase62(KEY_ID_LEN);
  const tenant = toBase62(BigInt(`0x${tenantId.replaceAll('-', '')}`), TENANT_LEN);
  const head = `pk_${environment}_${keyId}${tenant}${randomBase62(SECRET_LEN)}`;
  const key = `${head}${checksumOf(head)}`;
  return { key, environment, keyId, tenantId: tenantId.toLowerCase(), prefix: `pk_${environment}_${keyId}` };
}

/** parseApiKey reads a presented key; undefined when it is not a well-formed Parley key (checksum included). */
export function parseApiKey(key: string): ParsedApiKey | undefined {
  if (key.length !== 8 + BODY_LEN || !API_KEY_PATTERN.test(key)) return undefined;
  const head = key.slice(0, -CHECKSUM_LEN);
  if (checksumOf(head) !== key.slice(-CHECKSUM_LEN)) return undefined;
  const environment = key.slice(3, 7) as ApiKeyEnvironment;
  const body = key.slice(8);
  const keyId = body.slice(0, KEY_ID_LEN);
  const tenantValue = fromBase62(body.slice(KEY_ID_LEN, KEY_ID_LEN + TENANT_LEN));
  if (tenantValue >= 1n << 128n) return undefined;
  const hex = tenantValue.toString(16).padStart(32, '0');
  const tenantId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { environment, keyId, tenantId, prefix: `pk_${environment}_${keyId}` };
}

/** hashApiKey is the stored form: HMAC-SHA256 with the server-side pepper (the database never sees the pepper). */
export function hashApiKey(pepper: Buffer, key: string): Buffer {
  return createHmac('sha256', pepper).update(key, 'utf8').digest();
}

/** sameHash compares two hashes in constant time. */
export function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
