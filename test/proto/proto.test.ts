// The protos: buf lint with the STANDARD rules, generated code identical to what buf generates
// now, and no breaking change against the main branch (or the previous commit on main).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const buf = join(root, 'node_modules', '.bin', 'buf');
const bin = join(root, 'node_modules', '.bin');

function run(args: string[]) {
  return spawnSync(buf, args, { cwd: root, encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` } });
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

describe('protos', () => {
  it('pass buf lint (STANDARD)', () => {
    const res = run(['lint']);
    expect(res.stderr + res.stdout).toBe('');
    expect(res.status).toBe(0);
  });

  it('match the committed generated code (run `pnpm proto:generate` after changing a .proto)', async () => {
    const out = await mkdtemp(join(tmpdir(), 'parley-buf-'));
    const res = run(['generate', '--output', out]);
    expect(res.status, res.stderr).toBe(0);
    const fresh = join(out, 'packages/proto/src/gen');
    const committed = join(root, 'packages/proto/src/gen');
    expect(await files(committed)).toEqual(await files(fresh));
    for (const f of await files(fresh)) {
      expect(await readFile(join(committed, f), 'utf8'), f).toBe(await readFile(join(fresh, f), 'utf8'));
    }
  });

  it('make no breaking change against the released API baseline (proto/BREAKING_BASELINE) nor against main', async () => {
    // The baseline names the commit of the last released API. A deliberate break means a new
    // package version (parley.x.v2); moving the baseline is a reviewed decision, not a fix.
    const baselineFile = await readFile(join(root, 'proto', 'BREAKING_BASELINE'), 'utf8');
    const baseline = baselineFile
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '' && !l.startsWith('#'));
    expect(baseline, 'proto/BREAKING_BASELINE names a commit, or "none" before the first release').toMatch(/^([0-9a-f]{40}|none)$/);
    const against = baseline === 'none' ? [] : [baseline as string];
    const branch = git(['rev-parse', '--abbrev-ref', 'HEAD']);
    // On a feature branch, also compare with main (a clone without main skips this part).
    if (branch !== 'main' && branch !== 'HEAD' && git(['rev-parse', '--verify', 'main']) !== undefined)
      against.push(git(['rev-parse', 'main']) as string);
    for (const ref of against) {
      if (git(['rev-parse', '--verify', `${ref}^{commit}`]) === undefined) {
        throw new Error(`baseline commit ${ref} is not in this clone's history`);
      }
      const res = run(['breaking', '--against', `.git#ref=${ref}`]);
      expect(res.stdout + res.stderr, `against ${ref}`).toBe('');
      expect(res.status).toBe(0);
    }
  });
});
