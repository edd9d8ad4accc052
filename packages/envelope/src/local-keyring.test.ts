import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError } from '@parley/platform';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalKeyringKekProvider } from './local-keyring.js';
import type { EnvelopeLogger } from './log.js';
import { silentLogger } from './log.js';

let dir: string;
let path: string;
const open: LocalKeyringKekProvider[] = [];

async function openKeyring(logger: EnvelopeLogger = silentLogger): Promise<LocalKeyringKekProvider> {
  const provider = await LocalKeyringKekProvider.open({ path, logger });
  open.push(provider);
  return provider;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-keyring-'));
  path = join(dir, 'nested', 'keyring.json');
});

afterEach(async () => {
  for (const provider of open.splice(0)) await provider.close();
  await rm(dir, { recursive: true, force: true });
});

describe('LocalKeyringKekProvider', () => {
  it('creates the keyring file with mode 0600 on first start and logs once that it is not for production', async () => {
    const lines: string[] = [];
    const logger: EnvelopeLogger = { info: () => {}, warn: (_fields, message) => lines.push(message) };
    const kek = await openKeyring(logger);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/NOT for production/);
    await kek.generateDataKey();
    await kek.rotateKek();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ format: 'parley-local-keyring/1', minDecryptionVersion: 1 });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it.each([0o644, 0o640, 0o604])('refuses a keyring file with mode %o and says how to fix it', async (mode) => {
    await (await openKeyring()).close();
    await chmod(path, mode);
    const err = await LocalKeyringKekProvider.open({ path, logger: silentLogger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toContain(`chmod 600 ${path}`);
  });

  it('starts many providers at once on a missing keyring: one creates it, every one reads the same KEK', async () => {
    // Services sharing one keyring start together; none may see the file before it is complete.
    for (let round = 0; round < 20; round++) {
      path = join(dir, `round-${round}`, 'keyring.json');
      const keks = await Promise.all(Array.from({ length: 8 }, () => openKeyring()));
      const { plaintextKey, wrappedKey } = await keks[0]!.generateDataKey();
      for (const kek of keks) expect((await kek.unwrapDataKey(wrappedKey)).equals(plaintextKey)).toBe(true);
      expect(await readdir(join(dir, `round-${round}`))).toEqual(['keyring.json']);
    }
  });

  it('keeps an existing keyring on restart: data keys wrapped before still unwrap', async () => {
    const first = await openKeyring();
    const key = await first.generateDataKey();
    await first.close();
    const second = await openKeyring();
    expect((await second.unwrapDataKey(key.wrappedKey)).equals(key.plaintextKey)).toBe(true);
  });

  it('wraps as local:v<N>: and rotation plus rewrap moves keys to the newest version', async () => {
    const kek = await openKeyring();
    const key = await kek.generateDataKey();
    expect(key.wrappedKey).toMatch(/^local:v1:[A-Za-z0-9+/]+=*$/);
    expect(await kek.rotateKek()).toEqual({ latestVersion: 2, minDecryptionVersion: 1 });
    const fresh = await kek.generateDataKey();
    expect(fresh.kekVersion).toBe(2);
    const rewrapped = await kek.rewrapDataKey(key.wrappedKey);
    expect(rewrapped.kekVersion).toBe(2);
    expect(rewrapped.wrappedKey).toMatch(/^local:v2:/);
    expect((await kek.unwrapDataKey(rewrapped.wrappedKey)).equals(key.plaintextKey)).toBe(true);
  });

  it('refuses keys below the minimum decryption version once it is raised, and never lowers it', async () => {
    const kek = await openKeyring();
    const old = await kek.generateDataKey();
    await kek.rotateKek();
    const rewrapped = await kek.rewrapDataKey(old.wrappedKey);
    expect(await kek.raiseMinDecryptionVersion(2)).toEqual({ latestVersion: 2, minDecryptionVersion: 2 });
    await expect(kek.unwrapDataKey(old.wrappedKey)).rejects.toThrow(/below the minimum decryption version 2/);
    expect((await kek.unwrapDataKey(rewrapped.wrappedKey)).equals(old.plaintextKey)).toBe(true);
    await expect(kek.raiseMinDecryptionVersion(1)).rejects.toThrow(/lowering it/);
    await expect(kek.raiseMinDecryptionVersion(3)).rejects.toThrow(/above the latest KEK version 2/);
    const reopened = await openKeyring();
    expect(await reopened.readKekVersions()).toEqual({ latestVersion: 2, minDecryptionVersion: 2 });
  });

  it('sees a rotation made by another process sharing the file', async () => {
    const a = await openKeyring();
    const b = await openKeyring();
    await a.rotateKek();
    const fromA = await a.generateDataKey();
    expect((await b.unwrapDataKey(fromA.wrappedKey)).equals(fromA.plaintextKey)).toBe(true);
    expect((await b.readKekVersions()).latestVersion).toBe(2);
  });

  it('refuses wrapped keys from Vault and from another keyring with a clear error', async () => {
    const kek = await openKeyring();
    await expect(kek.unwrapDataKey('vault:v1:AAAA')).rejects.toThrow(/wrapped by Vault transit/);
    const otherDir = await mkdtemp(join(tmpdir(), 'parley-keyring-other-'));
    const other = await LocalKeyringKekProvider.open({ path: join(otherDir, 'k.json'), logger: silentLogger });
    const foreign = await other.generateDataKey();
    await other.close();
    await rm(otherDir, { recursive: true, force: true });
    await expect(kek.unwrapDataKey(foreign.wrappedKey)).rejects.toThrow(/wrapped by another keyring/);
  });

  it('refuses a damaged keyring file instead of creating a new KEK over it', async () => {
    await (await openKeyring()).close();
    await writeFile(path, '{"format":"parley-local-keyring/1","versions":{}}', { mode: 0o600 });
    await expect(LocalKeyringKekProvider.open({ path, logger: silentLogger })).rejects.toThrow(/damaged: no KEK versions/);
  });
});
