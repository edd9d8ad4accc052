// The built `parley` binary signing operators in through the edge and the dev OIDC provider (the
// loopback redirect: the test plays the browser on the provider's and the edge's HTML forms), then
// the deployment administrator's `workspaces` commands, `privacy` on lifecycle's public API, shell
// completion and the progress bars (on a real terminal through script(1), and never off one).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { DEV_OIDC_USER, type DevOidcUser } from '@parley/devstack';
import { pollUntil } from '../edge/fixture.js';
import { browser, confirmCli, signIn, startSignInStack, type SignInStack } from '../edge/signin-fixture.js';
import { PARLEY_BIN, runParley, type Run, type RunOptions } from './run-parley.js';

const run = randomBytes(4).toString('hex');
const users = {
  owner: DEV_OIDC_USER,
  // A deployment administrator by group claim, member of no workspace.
  ops: { sub: `ops-${run}`, email: `ops-${run}@example.com`, emailVerified: true, name: 'Ops Admin', groups: ['parley-ops'] },
  // Known to the identity provider, member of no workspace and no administrator: the edge refuses them.
  stranger: { sub: `stranger-${run}`, email: `stranger-${run}@example.com`, emailVerified: true, name: 'Stranger' },
} satisfies Record<string, DevOidcUser>;

let s: SignInStack;
let dir: string;
let xdg: string;

/** Profile file under XDG_CONFIG_HOME, as `parley login` writes it. */
const credentialsFile = () => join(xdg, 'parley', 'credentials.json');

interface StoredProfile {
  url: string;
  caFile?: string;
  credentials: { kind: string; accessToken: string; refreshToken: string; expiresAt: string; deploymentAdmin?: boolean };
}
const profiles = async () =>
  (JSON.parse(await readFile(credentialsFile(), 'utf8')) as { profiles: Record<string, StoredProfile> }).profiles;

/** parley runs the binary with only HOME and XDG_CONFIG_HOME: everything else comes from the stored profile, unless env adds it. */
function parley(args: string[], options: RunOptions = {}): Promise<Run> {
  return runParley(args, { ...options, env: { HOME: dir, XDG_CONFIG_HOME: xdg, ...options.env } });
}

const ok = (r: Run) => {
  expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r;
};

/**
 * login runs `parley login` and, once it prints the link, signs `user` in on the edge's and the
 * provider's pages; the edge's last redirect lands on the CLI's loopback port.
 */
async function login(user: DevOidcUser, extraArgs: string[] = []): Promise<Run> {
  let link = '';
  // Other files' stacks share the database and add the dev owner to their workspaces (some of them
  // suspended): the owner signs in to this stack's. (A deployment administrator may have none.)
  const workspace = user === users.owner ? ['--workspace', s.stack.bootstrap.tenantId] : [];
  const result = await parley(['login', '--url', s.edgeUrl, '--ca', s.caFile, '--wait-seconds', '120', ...workspace, ...extraArgs], {
    whileRunning: async (child) => {
      await pollUntil(async () => /https:\/\/\S+\/auth\/cli\/login\?\S+/.test(child.stderr()), 60_000);
      link = /https:\/\/\S+\/auth\/cli\/login\?\S+/.exec(child.stderr())![0];
      const redirect = new URL(new URL(link).searchParams.get('redirect_uri')!);
      // A redirect that does not carry this login's state is refused and does not end the login.
      const forged = await fetch(`${redirect.origin}/callback?code=pc_forged&state=${'x'.repeat(24)}`);
      expect(forged.status).toBe(400);
      const last = await signIn(browser(s.dispatcher), s.edgeUrl, link, user);
      expect(last.status).toBe(200);
      expect(new URL(last.url).origin).toBe(redirect.origin);
      expect(await last.text()).toContain('The Parley CLI is signed in');
    },
  });
  expect(link).toMatch(/code_challenge_method=S256/);
  return result;
}

/** expireAccessToken makes the stored bearer token look expired (and unusable), as an hour later. */
async function expireAccessToken(profile: string): Promise<void> {
  const file = JSON.parse(await readFile(credentialsFile(), 'utf8')) as { profiles: Record<string, StoredProfile> };
  const p = file.profiles[profile]!;
  p.credentials = { ...p.credentials, accessToken: `po_${'0'.repeat(40)}`, expiresAt: new Date(Date.now() - 1000).toISOString() };
  await writeFile(credentialsFile(), JSON.stringify(file));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-cli-op-'));
  xdg = join(dir, 'xdg');
  s = await startSignInStack(Object.values(users));
}, 180_000);

afterAll(async () => {
  await s?.stop();
});

describe('parley login with the identity provider', { timeout: 240_000 }, () => {
  it('signs in through the loopback redirect, stores the refresh token 0600 under XDG_CONFIG_HOME, and runs commands with it', async () => {
    const r = ok(await login(users.owner));
    expect(r.stderr).toMatch(/signed in to https:\/\/localhost:\d+ as /);
    expect((await stat(credentialsFile())).mode & 0o777).toBe(0o600);
    expect((await stat(join(xdg, 'parley'))).mode & 0o777).toBe(0o700);
    const stored = (await profiles())['default']!;
    expect(stored.url).toBe(s.edgeUrl);
    expect(stored.credentials.kind).toBe('oidc');
    expect(stored.credentials.refreshToken).toMatch(/^pr_/);
    expect(stored.credentials.accessToken).toMatch(/^po_/);
    // Tokens go to the file only.
    expect(r.stdout + r.stderr).not.toContain(stored.credentials.refreshToken);
    expect(r.stdout + r.stderr).not.toContain(stored.credentials.accessToken);

    // No URL, CA or key in the environment: all from the profile.
    const me = JSON.parse(ok(await parley(['whoami', '--output', 'json'])).stdout) as { tenantId: string; scopes: string[] };
    expect(me.tenantId).toBe(s.stack.bootstrap.tenantId);
    expect(me.scopes).toContain('agents:write');
    ok(await parley(['agents', 'create', '--name', 'by-operator', '--prompt', 'Hi.']));
    expect(ok(await parley(['agents', 'list'])).stdout).toContain('by-operator');
  });

  it('refreshes an expired bearer token, and several parley processes refreshing at once keep the session', async () => {
    const before = (await profiles())['default']!.credentials;
    await expireAccessToken('default');
    ok(await parley(['agents', 'list']));
    const after = (await profiles())['default']!.credentials;
    expect(after.refreshToken).toMatch(/^pr_/);
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(Date.parse(after.expiresAt)).toBeGreaterThan(Date.now() + 30 * 60_000);
    expect((await stat(credentialsFile())).mode & 0o777).toBe(0o600);

    // A refresh token is single use and a reused one ends the session: concurrent refreshes must take turns.
    await expireAccessToken('default');
    const runs = await Promise.all([1, 2, 3].map(() => parley(['whoami', '--output', 'json'])));
    runs.forEach(ok);
    ok(await parley(['whoami']));
  });

  it('refuses a credentials file others can read, with the chmod that fixes it', async () => {
    await chmod(credentialsFile(), 0o644);
    const loose = await parley(['whoami']);
    expect(loose.code).toBe(1);
    expect(loose.stderr).toContain(`is readable by other users (mode 644); run: chmod 600 ${credentialsFile()}`);
    await chmod(credentialsFile(), 0o600);
    ok(await parley(['whoami']));
  });

  it('logout revokes the session at the edge and deletes the file', async () => {
    const copy = await readFile(credentialsFile(), 'utf8');
    const out = ok(await parley(['logout']));
    expect(out.stderr).toMatch(/signed out: the session is ended/);
    await expect(stat(credentialsFile())).rejects.toMatchObject({ code: 'ENOENT' });
    // The same tokens put back are refused: the session ended at the edge, not just on this disk.
    await writeFile(credentialsFile(), copy, { mode: 0o600 });
    const revoked = await parley(['whoami']);
    expect(revoked.code).toBe(3);
    await expireAccessToken('default');
    const refresh = await parley(['whoami']);
    expect(refresh.code).toBe(3);
    expect(refresh.stderr).toMatch(/has ended; run: parley login/);
    ok(await parley(['logout']));
  });

  it("stops at once with exit 3 and the edge's reason when the edge refuses the sign-in", async () => {
    const started = Date.now();
    const r = await parley(['login', '--url', s.edgeUrl, '--ca', s.caFile, '--wait-seconds', '900', '--profile', 'stranger'], {
      whileRunning: async (child) => {
        await pollUntil(async () => /https:\/\/\S+\/auth\/cli\/login\?\S+/.test(child.stderr()), 60_000);
        const link = /https:\/\/\S+\/auth\/cli\/login\?\S+/.exec(child.stderr())![0];
        // The edge sends the refusal to the CLI's loopback page, which says why.
        const last = await signIn(browser(s.dispatcher), s.edgeUrl, link, users.stranger);
        expect(new URL(last.url).origin).toBe(new URL(new URL(link).searchParams.get('redirect_uri')!).origin);
        expect(last.status).toBe(403);
        expect(await last.text()).toContain('no Parley workspace has a member');
      },
    });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/the edge refused the sign-in: sign-in refused: no Parley workspace has a member with the e-mail stranger-/);
    // It did not wait out --wait-seconds (900 s, far past any sign-in on a loaded machine).
    expect(Date.now() - started).toBeLessThan(200_000);
    expect(r.stderr).not.toMatch(/no sign-in within/);
    expect(Object.keys(await profiles().catch(() => ({})))).not.toContain('stranger');
  });

  it('stops at once with exit 3 when the person cancels on the confirmation page', async () => {
    const started = Date.now();
    const r = await parley(['login', '--url', s.edgeUrl, '--ca', s.caFile, '--wait-seconds', '900', '--profile', 'cancelled'], {
      whileRunning: async (child) => {
        await pollUntil(async () => /https:\/\/\S+\/auth\/cli\/login\?\S+/.test(child.stderr()), 60_000);
        const link = /https:\/\/\S+\/auth\/cli\/login\?\S+/.exec(child.stderr())![0];
        const b = browser(s.dispatcher);
        const last = await confirmCli(b, s.edgeUrl, await b.fetch(link), 'cancel');
        // The edge sends the denial to the CLI's loopback page, which says the sign-in was cancelled.
        expect(new URL(last.url).origin).toBe(new URL(new URL(link).searchParams.get('redirect_uri')!).origin);
        expect(await last.text()).toContain('cancelled');
      },
    });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/the sign-in was cancelled in the browser/);
    expect(Date.now() - started).toBeLessThan(200_000);
    expect(Object.keys(await profiles().catch(() => ({})))).not.toContain('cancelled');
  });

  it('gives up with exit 3 when nobody signs in in time', async () => {
    const r = await parley(['login', '--url', s.edgeUrl, '--ca', s.caFile, '--wait-seconds', '1', '--profile', 'late']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no sign-in within 1 s/);
  });
});

describe('parley workspaces (deployment administrators)', { timeout: 240_000 }, () => {
  it('creates, lists and suspends workspaces as a deployment administrator, and refuses everyone else with exit 3', async () => {
    ok(await login(users.ops, ['--profile', 'ops']));
    expect((await profiles())['ops']!.credentials.deploymentAdmin).toBe(true);
    const ops = { PARLEY_PROFILE: 'ops' };
    const name = `acme-${run}`;
    const created = JSON.parse(
      ok(
        await parley(['workspaces', 'create', '--name', name, '--owner-email', `owner-${run}@example.com`, '--output', 'json'], {
          env: ops,
        }),
      ).stdout,
    ) as { id: string; name: string; ownerMemberId: string };
    expect(created.name).toBe(name);
    expect(created.ownerMemberId).not.toBe('');

    const table = ok(await parley(['workspaces', 'list'], { env: ops })).stdout.split('\n');
    expect(table[0]).toMatch(/^ID\s+NAME\s+CREATED\s+SUSPENDED$/);
    expect(table.find((l) => l.startsWith(created.id))).toContain(name);
    const listed = parseYaml(ok(await parley(['workspaces', 'list', '--output', 'yaml'], { env: ops })).stdout) as {
      id: string;
      suspendedAt?: string;
    }[];
    expect(listed.find((w) => w.id === created.id)?.suspendedAt).toBeUndefined();

    const suspended = JSON.parse(ok(await parley(['workspaces', 'suspend', created.id, '--output', 'json'], { env: ops })).stdout) as {
      suspendedAt: string;
    };
    expect(Date.parse(suspended.suspendedAt)).toBeGreaterThan(Date.now() - 5 * 60_000);
    const again = JSON.parse(ok(await parley(['workspaces', 'list', '--output', 'json'], { env: ops })).stdout) as {
      id: string;
      suspendedAt?: string;
    }[];
    expect(again.find((w) => w.id === created.id)?.suspendedAt).toBe(suspended.suspendedAt);
    const missing = await parley(['workspaces', 'suspend', '0190d3b2-0000-7000-8000-000000000000'], { env: ops });
    expect(missing.code).toBe(2);
    const invalid = await parley(['workspaces', 'create', '--name', '', '--owner-email', 'x@example.com'], { env: ops });
    expect(invalid.code).toBe(5);

    // A workspace owner's API key is no deployment administrator.
    const owner = await parley(['workspaces', 'list'], {
      env: { PARLEY_URL: s.edgeUrl, PARLEY_CA: s.caFile, PARLEY_API_KEY: s.stack.bootstrap.apiKey },
    });
    expect(owner.code).toBe(3);
    expect(owner.stderr).toMatch(/^parley: permission denied: /);
    // A refresh drops deployment:admin: the CLI says to sign in again.
    await expireAccessToken('ops');
    const refreshed = await parley(['workspaces', 'list'], { env: ops });
    expect(refreshed.code).toBe(3);
    expect(refreshed.stderr).toMatch(/not kept across token refreshes: run parley login again/);
  });
});

describe('parley privacy, completion and progress', { timeout: 240_000 }, () => {
  const keyEnv = () => ({ PARLEY_URL: s.edgeUrl, PARLEY_CA: s.caFile, PARLEY_API_KEY: s.stack.bootstrap.apiKey });

  it('exports a person (waits, downloads once to a 0600 file), forgets one with a signed receipt, and shows job status', async () => {
    const out = join(dir, 'dsar.json');
    const exported = ok(await parley(['privacy', 'export', '--email', `nobody-${run}@example.com`, '-o', out], { env: keyEnv() }));
    expect(exported.stderr).toMatch(/wrote export \S+ \(sha256 [0-9a-f]{64}\) to /);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    const bundle = JSON.parse(await readFile(out, 'utf8')) as Record<string, unknown>;
    expect(JSON.stringify(bundle)).toContain('parley.dsar-export/v1');

    const started = JSON.parse(
      ok(await parley(['privacy', 'export', '--external-ref', `ref-${run}`, '--no-wait', '--output', 'json'], { env: keyEnv() })).stdout,
    ) as { id: string; kind: string };
    expect(started.kind).toBe('export');
    await pollUntil(async () => {
      const st = await parley(['privacy', 'status', started.id, '--output', 'json'], { env: keyEnv() });
      return st.code === 0 && (JSON.parse(st.stdout) as { state: string }).state === 'done';
    }, 60_000);
    const downloaded = ok(await parley(['privacy', 'download', started.id], { env: keyEnv() }));
    expect(downloaded.stdout).toContain('parley.dsar-export/v1');
    const twice = await parley(['privacy', 'download', started.id], { env: keyEnv() });
    expect(twice.code).not.toBe(0);

    const forgot = JSON.parse(
      ok(await parley(['privacy', 'forget', '--email', `gone-${run}@example.com`, '--output', 'json'], { env: keyEnv() })).stdout,
    ) as { kind: string; state: string; receipt: string; signature: string; steps: string[] };
    expect(forgot).toMatchObject({ kind: 'forget', state: 'done' });
    expect(forgot.receipt).not.toBe('');
    expect(forgot.signature).not.toBe('');
    expect(forgot.steps.length).toBeGreaterThan(0);

    const jobs = ok(await parley(['privacy', 'status'], { env: keyEnv() })).stdout.split('\n');
    expect(jobs[0]).toMatch(/^ID\s+KIND\s+STATE\s+CREATED\s+FINISHED$/);
    expect(jobs.some((l) => l.startsWith(started.id))).toBe(true);
    expect(ok(await parley(['privacy', 'data-map'], { env: keyEnv() })).stdout.split('\n')[0]).toMatch(/^SERVICE\s+LOCATION\s+CLASS/);

    // Exactly one way to name the person, before any call.
    const two = await parley(['privacy', 'forget', '--email', 'a@example.com', '--phone', '+15550000000'], { env: keyEnv() });
    expect(two.code).toBe(1);
    expect(two.stderr).toMatch(/exactly one of --email, --phone or --external-ref/);
    // A key without privacy:run.
    const reader = JSON.parse(
      ok(await parley(['keys', 'create', '--name', 'reader', '--scope', 'privacy:read', '--output', 'json'], { env: keyEnv() })).stdout,
    ) as { secret: string };
    const denied = await parley(['privacy', 'export', '--email', 'a@example.com'], { env: { ...keyEnv(), PARLEY_API_KEY: reader.secret } });
    expect(denied.code).toBe(3);
  });

  it('prints bash, zsh and fish completion that know workspaces and privacy', async () => {
    const bash = ok(await parley(['completion', 'bash'])).stdout;
    const script = join(dir, 'parley.bash');
    await writeFile(script, bash);
    const complete = (words: string) =>
      execFileSync('bash', [
        '-c',
        `source ${script}; COMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _parley_completion; echo "\${COMPREPLY[*]}"`,
      ])
        .toString()
        .trim();
    expect(complete('parley workspaces su')).toBe('suspend');
    expect(complete('parley privacy f')).toBe('forget');
    expect(complete('parley completion f')).toBe('fish');
    const fish = ok(await parley(['completion', 'fish'])).stdout;
    expect(fish).toContain('function __parley_at');
    expect(fish).toContain(`complete -c parley -n '__parley_at "workspaces"' -a suspend`);
    expect(fish).toContain(`complete -c parley -n '__parley_at "privacy export"' -l email -r -F`);
    expect(fish).toContain(`-l output -x -a 'table json yaml'`);
    // Descriptions with quotes stay inside fish's single quotes.
    expect(fish).toContain(`'the deployment\\'s workspaces (needs deployment:admin)'`);
    expect((await parley(['completion', 'tcsh'])).code).toBe(1);
  });

  it('draws progress bars on stderr on a terminal only: audit verify of an export, and a privacy export', async () => {
    await pollUntil(async () => {
      const r = await parley(['audit', 'list', '--output', 'json', '--limit', '1'], { env: keyEnv() });
      return r.code === 0 && (JSON.parse(r.stdout) as unknown[]).length > 0;
    }, 30_000);
    const exportFile = join(dir, 'audit.ndjson');
    ok(await parley(['audit', 'export', '-o', exportFile], { env: keyEnv() }));
    const keyFile = join(dir, 'audit.pem');
    await writeFile(keyFile, ok(await parley(['audit', 'public-keys'], { env: keyEnv() })).stdout);
    const size = (await stat(exportFile)).size;

    // Off a terminal (pipes): no progress at all, stdout holds only the result.
    const piped = ok(await parley(['audit', 'verify', '--file', exportFile, '--public-key', keyFile]));
    expect(piped.stderr).toBe('');
    expect(piped.stdout).toMatch(/^OK: tenant /);

    // On a terminal: script(1) gives the process a pseudo-terminal for stdout and stderr.
    const onTty = await tty(['audit', 'verify', '--file', exportFile, '--public-key', keyFile]);
    expect(onTty).toMatch(new RegExp(`\\rverifying ${exportFile} \\[[#-]{24}\\] +\\d+% \\d+/${size} bytes`));
    expect(onTty).toContain('\r\u001b[K');
    expect(onTty).toMatch(/OK: tenant /);

    // The export's header announces its range: a bar over the events.
    const exportTty = await tty(['audit', 'export', '-o', join(dir, 'audit-tty.ndjson')], keyEnv());
    expect(exportTty).toMatch(/\rexporting \[[#-]{24}\] +\d+% \d+\/\d+ events/);
    expect(exportTty).toMatch(/wrote \d+ lines to /);

    const dsar = join(dir, 'dsar-tty.json');
    const privacyTty = await tty(['privacy', 'export', '--email', `tty-${run}@example.com`, '-o', dsar], keyEnv());
    expect(privacyTty).toMatch(/\rexport job \S+: \d+ s, (pending|running)/);
    expect(privacyTty).toMatch(/wrote export /);
    const privacyPiped = ok(
      await parley(['privacy', 'export', '--email', `pipe-${run}@example.com`, '-o', join(dir, 'p.json')], { env: keyEnv() }),
    );
    expect(privacyPiped.stderr).not.toContain('\r');
  });
});

/** tty runs the binary on a pseudo-terminal (script -q -e -c) and returns everything the terminal received. */
function tty(args: string[], env: Record<string, string> = {}): Promise<string> {
  const command = [process.execPath, PARLEY_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], {
      env: { HOME: dir, XDG_CONFIG_HOME: xdg, PATH: '/usr/bin:/bin', TERM: 'dumb', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`parley ${args.join(' ')} exited ${code}: ${out}`))));
    child.stdin.end();
  });
}
