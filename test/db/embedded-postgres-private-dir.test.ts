// `npm start` and `npm test` from a clone that the `postgres` system user cannot traverse (under
// /root, or a `mktemp -d` folder, as root): the embedded Postgres must still start. As root it
// runs as `postgres`, from a copy of the binaries and a data directory that user can reach, with
// 0700 on the data itself. As another user it runs as that user, where it is.
import { mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { bundledPostgresBinaries, startEmbeddedPostgres } from '@parley/embedded-postgres';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function privateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-private-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  expect((await stat(dir)).mode & 0o777).toBe(0o700);
  return dir;
}

async function selectOne(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ one: number }>('select 1 as one')).rows[0]!.one;
  } finally {
    await client.end();
  }
}

describe('embedded Postgres from a private directory', () => {
  it('starts with its data under a 0700 directory, the data itself 0700, and removes it when ephemeral', async () => {
    const dir = await privateDir();
    const pgHandle = await startEmbeddedPostgres({ dataDir: join(dir, 'postgres'), ephemeral: true, fast: true });
    cleanups.push(() => pgHandle.stop());
    expect(await selectOne(pgHandle.url)).toBe(1);
    expect((await stat(pgHandle.dataDir)).mode & 0o777).toBe(0o700);
    if (userInfo().uid === 0) expect((await stat(pgHandle.dataDir)).uid).not.toBe(0);
    await pgHandle.stop();
    cleanups.pop();
    expect(existsSync(pgHandle.dataDir)).toBe(false);
  });

  it('starts from binaries inside a private directory (a clone under /root)', async () => {
    const dir = await privateDir();
    const { postgres } = await bundledPostgresBinaries();
    // The clone's copy of the binaries, seen through a directory only its owner may traverse.
    const native = join(dir, 'native');
    await symlink(dirname(dirname(postgres)), native);
    const pgHandle = await startEmbeddedPostgres({
      dataDir: join(dir, 'postgres'),
      ephemeral: true,
      fast: true,
      binaries: { initdb: join(native, 'bin', 'initdb'), postgres: join(native, 'bin', 'postgres') },
    });
    cleanups.push(() => pgHandle.stop());
    expect(await selectOne(pgHandle.url)).toBe(1);
  });
});
