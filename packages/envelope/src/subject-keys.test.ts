import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataKeyCache } from './data-key-cache.js';
import { CiphertextMismatchError } from './errors.js';
import { LocalKeyringKekProvider } from './local-keyring.js';
import { silentLogger } from './log.js';
import { createSubjectKey, decryptForSubject, encryptForSubject, type SubjectKey } from './subject-keys.js';

let dir: string;
let kek: LocalKeyringKekProvider;
let cache: DataKeyCache;
const alice = { tenantId: 'tenant-a', subjectId: 'alice', purpose: 'transcript-turn:1' };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-subject-'));
  kek = await LocalKeyringKekProvider.open({ path: join(dir, 'keyring.json'), logger: silentLogger });
  cache = new DataKeyCache(kek);
});

afterEach(async () => {
  cache.clear();
  await kek.close();
  await rm(dir, { recursive: true, force: true });
});

describe('subject keys', () => {
  it('encrypts and decrypts a subject record with the subject key', async () => {
    const key = await createSubjectKey(kek);
    expect(key.wrappedKey).toMatch(/^local:v1:/);
    const blob = await encryptForSubject(cache, key, alice, Buffer.from('my card ends 4242'));
    expect(blob.includes(Buffer.from('4242'))).toBe(false);
    expect((await decryptForSubject(cache, key, alice, blob)).toString()).toBe('my card ends 4242');
  });

  it.each([
    ['another subject', { ...alice, subjectId: 'bob' }],
    ['another tenant', { ...alice, tenantId: 'tenant-b' }],
    ['another record', { ...alice, purpose: 'transcript-turn:2' }],
  ])('refuses a record moved to %s', async (_label, scope) => {
    const key = await createSubjectKey(kek);
    const blob = await encryptForSubject(cache, key, alice, Buffer.from('hello'));
    await expect(decryptForSubject(cache, key, scope, blob)).rejects.toBeInstanceOf(CiphertextMismatchError);
  });

  it('shredding the subject key makes its ciphertexts undecryptable, with any remaining key', async () => {
    // The store of wrapped subject keys; the secrets service keeps it in Postgres.
    const store = new Map<string, SubjectKey>([
      ['alice', await createSubjectKey(kek)],
      ['bob', await createSubjectKey(kek)],
    ]);
    const blob = await encryptForSubject(cache, store.get('alice')!, alice, Buffer.from('alice said this'));
    await encryptForSubject(cache, store.get('bob')!, { ...alice, subjectId: 'bob' }, Buffer.from('bob said that'));

    // Shred: delete the wrapped key and wipe it from the cache.
    const shredded = store.get('alice')!;
    store.delete('alice');
    cache.forget(shredded.wrappedKey);

    expect(store.has('alice')).toBe(false);
    for (const remaining of store.values()) {
      await expect(decryptForSubject(cache, remaining, alice, blob)).rejects.toBeInstanceOf(CiphertextMismatchError);
    }
    // Not even a fresh key for the same subject opens it: the old key is gone for good.
    const replacement = await createSubjectKey(kek);
    await expect(decryptForSubject(cache, replacement, alice, blob)).rejects.toBeInstanceOf(CiphertextMismatchError);
    expect(cache.stats().size).toBe(2); // bob's and the replacement's, never alice's old key
  });

  it('subject ciphertexts survive KEK rotation and rewrap of the subject key', async () => {
    const key = await createSubjectKey(kek);
    const blob = await encryptForSubject(cache, key, alice, Buffer.from('kept'));
    await kek.rotateKek();
    const rewrapped = await kek.rewrapDataKey(key.wrappedKey);
    await kek.raiseMinDecryptionVersion(2);
    expect((await decryptForSubject(cache, rewrapped, alice, blob)).toString()).toBe('kept');
  });

  it('rejects a blob that is not in the subject format', async () => {
    const key = await createSubjectKey(kek);
    await expect(decryptForSubject(cache, key, alice, Buffer.from('short'))).rejects.toThrow(/not in format 1/);
  });
});
