import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeAssociatedData } from './associated-data.js';
import { uncachedDataKeys } from './data-key-source.js';
import { CiphertextMismatchError } from './errors.js';
import type { GeneratedDataKey, KekProvider } from './kek-provider.js';
import { LocalKeyringKekProvider } from './local-keyring.js';
import { silentLogger } from './log.js';
import { openSecret, sealSecret, type SecretVersionRef } from './secret-envelope.js';

let dir: string;
let kek: LocalKeyringKekProvider;
const ref: SecretVersionRef = { tenantId: 'tenant-a', secretId: 'secret-1', version: 1 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-envelope-'));
  kek = await LocalKeyringKekProvider.open({ path: join(dir, 'keyring.json'), logger: silentLogger });
});

afterEach(async () => {
  await kek.close();
  await rm(dir, { recursive: true, force: true });
});

describe('sealSecret / openSecret', () => {
  it('round-trips a secret and stores only ciphertext, nonce, wrapped key and KEK version', async () => {
    const sealed = await sealSecret(kek, ref, Buffer.from('sk-live-MARKER-1234'));
    expect(Object.keys(sealed).sort()).toEqual(['ciphertext', 'kekVersion', 'nonce', 'wrappedDataKey']);
    expect(sealed.nonce).toHaveLength(12);
    expect(sealed.ciphertext).toHaveLength('sk-live-MARKER-1234'.length + 16);
    expect(sealed.wrappedDataKey).toMatch(/^local:v1:/);
    expect(sealed.kekVersion).toBe(1);
    expect(sealed.ciphertext.includes(Buffer.from('MARKER'))).toBe(false);
    const opened = await openSecret(uncachedDataKeys(kek), ref, sealed);
    expect(opened.toString()).toBe('sk-live-MARKER-1234');
  });

  it('uses a fresh data key and nonce for every version', async () => {
    const a = await sealSecret(kek, ref, Buffer.from('same'));
    const b = await sealSecret(kek, { ...ref, version: 2 }, Buffer.from('same'));
    expect(a.wrappedDataKey).not.toBe(b.wrappedDataKey);
    expect(a.nonce.equals(b.nonce)).toBe(false);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
  });

  it.each([
    ['another tenant', { ...ref, tenantId: 'tenant-b' }],
    ['another secret id', { ...ref, secretId: 'secret-2' }],
    ['another version', { ...ref, version: 2 }],
  ])('refuses a ciphertext copied to %s', async (_label, target) => {
    const sealed = await sealSecret(kek, ref, Buffer.from('provider-key'));
    const err = await openSecret(uncachedDataKeys(kek), target, sealed).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CiphertextMismatchError);
    expect((err as Error).message).toContain(`tenant ${target.tenantId}, secret ${target.secretId}, version ${target.version}`);
    expect((err as Error).message).not.toContain('provider-key');
  });

  it('refuses a ciphertext whose bytes or nonce were changed', async () => {
    const sealed = await sealSecret(kek, ref, Buffer.from('provider-key'));
    const flipped = Buffer.from(sealed.ciphertext);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    await expect(openSecret(uncachedDataKeys(kek), ref, { ...sealed, ciphertext: flipped })).rejects.toBeInstanceOf(
      CiphertextMismatchError,
    );
    const nonce = Buffer.from(sealed.nonce);
    nonce[0] = (nonce[0] ?? 0) ^ 1;
    await expect(openSecret(uncachedDataKeys(kek), ref, { ...sealed, nonce })).rejects.toBeInstanceOf(CiphertextMismatchError);
  });

  it('refuses a row whose wrapped data key was swapped with another row', async () => {
    const a = await sealSecret(kek, ref, Buffer.from('key-a'));
    const b = await sealSecret(kek, { ...ref, secretId: 'secret-2' }, Buffer.from('key-b'));
    await expect(openSecret(uncachedDataKeys(kek), ref, { ...a, wrappedDataKey: b.wrappedDataKey })).rejects.toBeInstanceOf(
      CiphertextMismatchError,
    );
  });

  it('wipes the plaintext data key after sealing and after opening', async () => {
    const generated: GeneratedDataKey[] = [];
    const unwrapped: Buffer[] = [];
    const spy: KekProvider = Object.assign(Object.create(kek) as KekProvider, {
      generateDataKey: async () => {
        const key = await kek.generateDataKey();
        generated.push(key);
        return key;
      },
      unwrapDataKey: async (wrapped: string) => {
        const key = await kek.unwrapDataKey(wrapped);
        unwrapped.push(key);
        return key;
      },
    });
    const sealed = await sealSecret(spy, ref, Buffer.from('value'));
    await openSecret(uncachedDataKeys(spy), ref, sealed);
    expect(generated[0]?.plaintextKey.equals(Buffer.alloc(32))).toBe(true);
    expect(unwrapped[0]?.equals(Buffer.alloc(32))).toBe(true);
  });

  it('rejects an empty tenant id or a version that is not a positive whole number', async () => {
    await expect(sealSecret(kek, { ...ref, tenantId: '' }, Buffer.from('x'))).rejects.toThrow(/tenantId must be a non-empty string/);
    await expect(sealSecret(kek, { ...ref, version: 1.5 }, Buffer.from('x'))).rejects.toThrow(/version must be a positive whole number/);
  });
});

describe('encodeAssociatedData', () => {
  it('is unambiguous: moving a character between fields changes the encoding', () => {
    const a = encodeAssociatedData('label', ['ab', 'c']);
    const b = encodeAssociatedData('label', ['a', 'bc']);
    expect(a.equals(b)).toBe(false);
    expect(encodeAssociatedData('label', ['ab', 'c']).equals(a)).toBe(true);
  });
});
