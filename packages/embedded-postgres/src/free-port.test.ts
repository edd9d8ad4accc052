import { chmod, chown, lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claimPort, PORT_CLAIM_WINDOW_MS, privateClaimsRoot } from './free-port.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-free-port-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('port claims', () => {
  it('creates its folder 0700 and coordinates through it: a port claimed once is refused the second time', async () => {
    const root = join(dir, 'claims');
    expect(await claimPort(41_001, root)).toBe(true);
    expect(await claimPort(41_001, root)).toBe(false);
    expect(await claimPort(41_002, root)).toBe(true);
    const found = await lstat(root);
    expect(found.isDirectory()).toBe(true);
    expect(found.mode & 0o777).toBe(0o700);
  });

  it('never writes or removes through a claims folder that is a symlink (another user made it first)', async () => {
    // What the link points at: a folder this user may write, holding what looks like an old window.
    const victim = join(dir, 'victim');
    await mkdir(join(victim, '1'), { recursive: true, mode: 0o700 });
    await writeFile(join(victim, '1', 'keep'), 'x');
    const root = join(dir, 'claims');
    await symlink(victim, root);
    expect(await privateClaimsRoot(root)).toBe(false);
    // No coordination: the claim succeeds (twice) on this process's memory alone.
    expect(await claimPort(41_003, root)).toBe(true);
    expect(await claimPort(41_003, root)).toBe(true);
    expect(await readdir(victim)).toEqual(['1']);
    expect(await readdir(join(victim, '1'))).toEqual(['keep']);
  });

  it('does not use a claims folder others may write, or one owned by another user', async () => {
    const open = join(dir, 'open');
    await mkdir(open, { mode: 0o700 });
    await chmod(open, 0o777);
    expect(await privateClaimsRoot(open)).toBe(false);
    expect(await claimPort(41_004, open)).toBe(true);
    expect(await claimPort(41_004, open)).toBe(true);
    expect(await readdir(open)).toEqual([]);

    // Owned by another user: made so when this test runs as root; otherwise root's own / is one.
    let foreign = '/';
    if (process.getuid?.() === 0) {
      foreign = join(dir, 'foreign');
      await mkdir(foreign, { mode: 0o700 });
      await chown(foreign, 65_534, 65_534);
    }
    expect(await privateClaimsRoot(foreign)).toBe(false);
    expect(await claimPort(41_005, foreign)).toBe(true);
    expect(await readdir(foreign)).not.toContain(String(Math.floor(Date.now() / PORT_CLAIM_WINDOW_MS)));
  });
});
