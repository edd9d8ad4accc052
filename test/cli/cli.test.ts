// The built `parley` binary (packages/cli/dist/main.js) run as a child process, the way a script
// runs it, against a real public stack (edge, identity, tenant-data, secrets, audit, integrations
// as processes on real Postgres). Run `pnpm run build` first: the binary runs from dist.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { freePort } from '@parley/devstack';
import { pollUntil, startPublicStack, type PublicStack } from '../edge/fixture.js';
import { runParley, type Run, type RunOptions } from './run-parley.js';

let stack: PublicStack;
let dir: string;
let agentId: string;

/** parley runs the built binary with the stack's URL, CA and owner key unless env overrides them (undefined removes one). */
function parley(args: string[], options: RunOptions = {}): Promise<Run> {
  return runParley(args, {
    ...options,
    env: {
      HOME: dir,
      PARLEY_CONFIG_DIR: join(dir, 'config'),
      PARLEY_URL: stack.publicUrl,
      PARLEY_CA: stack.pki.paths.caCert,
      PARLEY_API_KEY: stack.bootstrap.apiKey,
      ...options.env,
    },
  });
}

const ok = (run: Run) => {
  expect(run.code, `stdout: ${run.stdout}\nstderr: ${run.stderr}`).toBe(0);
  return run;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-cli-'));
  stack = await startPublicStack();
  const created = ok(await parley(['agents', 'create', '--name', 'cli-agent', '--prompt', 'Be brief.', '--output', 'json']));
  agentId = (JSON.parse(created.stdout) as { id: string }).id;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

// Each test runs the binary several times: a loaded machine makes a node start take seconds.
describe('parley against a running stack', { timeout: 180_000 }, () => {
  it('puts a secret read from stdin without the value ever reaching argv, the environment, stdout or stderr', async () => {
    const value = `sk-cli-${randomBytes(24).toString('hex')}`;
    const seenWhileRunning: string[] = [];
    const run = await parley(['secrets', 'put', 'openai-cli', '--kind', 'llm', '--output', 'json'], {
      stdin: `${value}\n`,
      // The command waits for stdin: look at what the process shows the system before it gets the value.
      whileRunning: async ({ pid }) => {
        await new Promise((r) => setTimeout(r, 300));
        seenWhileRunning.push(await readFile(`/proc/${pid}/cmdline`, 'utf8'), await readFile(`/proc/${pid}/environ`, 'utf8'));
      },
    });
    ok(run);
    expect(seenWhileRunning.join('')).toContain('openai-cli');
    expect(seenWhileRunning.join('')).not.toContain(value);
    expect(run.stdout + run.stderr).not.toContain(value);
    const secret = JSON.parse(run.stdout) as { name: string; providerKind: string; hint: string; version: number };
    expect(secret).toMatchObject({ name: 'openai-cli', providerKind: 'llm', hint: value.slice(-4), version: 1 });

    const rotated = ok(await parley(['secrets', 'rotate', 'openai-cli', '--output', 'json'], { stdin: `${value}-2` }));
    expect((JSON.parse(rotated.stdout) as { version: number }).version).toBe(2);
    const listed = ok(await parley(['secrets', 'list', '--output', 'json']));
    expect(listed.stdout).not.toContain(value);
    expect((JSON.parse(listed.stdout) as { name: string }[]).map((s) => s.name)).toContain('openai-cli');
    expect(stack.logs.join('\n')).not.toContain(value);
  });

  it('refuses a secret on the command line (--value) and stores nothing', async () => {
    const value = `sk-argv-${randomBytes(8).toString('hex')}`;
    const run = await parley(['secrets', 'put', 'from-argv', '--kind', 'llm', '--value', value]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/refusing --value/);
    expect(run.stderr).not.toContain(value);
    const listed = ok(await parley(['secrets', 'list', '--output', 'json']));
    expect((JSON.parse(listed.stdout) as { name: string }[]).map((s) => s.name)).not.toContain('from-argv');
    const empty = await parley(['secrets', 'put', 'empty', '--kind', 'llm'], { stdin: '' });
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/is empty/);
  });

  it('lists agents as a table, as JSON and as YAML', async () => {
    const tableRun = ok(await parley(['agents', 'list']));
    expect(tableRun.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+POLICY\s+UPDATED$/);
    expect(tableRun.stdout).toContain('cli-agent');
    const asJson = JSON.parse(ok(await parley(['agents', 'list', '--output', 'json'])).stdout) as { id: string; name: string }[];
    expect(asJson.find((a) => a.id === agentId)?.name).toBe('cli-agent');
    const asYaml = parseYaml(ok(await parley(['--output', 'yaml', 'agents', 'list'])).stdout) as { id: string; name: string }[];
    expect(asYaml.find((a) => a.id === agentId)?.name).toBe('cli-agent');
    expect(asYaml).toEqual(asJson);
    const got = JSON.parse(ok(await parley(['agents', 'get', agentId, '--output', 'json'])).stdout) as { prompt: string };
    expect(got.prompt).toBe('Be brief.');
    const updated = JSON.parse(ok(await parley(['agents', 'update', agentId, '--prompt', 'Be briefer.', '--output', 'json'])).stdout) as {
      prompt: string;
    };
    expect(updated.prompt).toBe('Be briefer.');
  });

  it('applies a policy from YAML, names the YAML path and line of a bad rule, and dry-runs it with policy test', async () => {
    const bad = join(dir, 'bad-policy.yaml');
    await writeFile(
      bad,
      [
        'version: 2',
        'noGoZones:',
        '  - id: medical',
        '    phrases: [medical advice]',
        '    action: end',
        '  - id: broken',
        '    patterns:',
        '      - "(?<=x)y"',
        '    action: end',
        '',
      ].join('\n'),
    );
    const refused = await parley(['policy', 'apply', '--agent', agentId, '-f', bad]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain(`${bad}: noGoZones[1].patterns[0] (line 8, column 9):`);
    expect(refused.stderr).toMatch(/RE2/);

    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'version: 2\nnoGoZones:\n  - id: a\n   action: end\n');
    const syntax = await parley(['policy', 'apply', '--agent', agentId, '-f', broken]);
    expect(syntax.code).toBe(1);
    expect(syntax.stderr).toMatch(new RegExp(`${broken}: line \\d+, column \\d+`));

    const good = join(dir, 'policy.yaml');
    await writeFile(good, 'version: 2\nnoGoZones:\n  - id: medical\n    phrases: [medical advice]\n    action: end\n');
    const applied = JSON.parse(ok(await parley(['policy', 'apply', '--agent', agentId, '-f', good, '--output', 'json'])).stdout) as {
      policyVersion: number;
    };
    expect(applied.policyVersion).toBeGreaterThan(0);

    const dry = ok(
      await parley(['policy', 'test', '--agent', agentId, '--say', 'Your order ships tomorrow.', 'Here is some medical advice.']),
    );
    const lines = dry.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^EVENT\s+DECISION\s+RULE\s+REASON$/);
    expect(lines[1]).toMatch(/^0\s+allow\b/);
    expect(lines[2]).toMatch(/^1\s+end\s+no_go:medical\s+the assistant entered no-go zone "medical"$/);
  });

  it('exports the audit log, verifies it offline with the public keys, and catches an edited export (exit 6)', async () => {
    await pollUntil(async () => {
      const run = await parley(['audit', 'list', '--output', 'json', '--action', 'agent.create']);
      return run.code === 0 && (JSON.parse(run.stdout) as unknown[]).length > 0;
    }, 30_000);
    const keys = ok(await parley(['audit', 'public-keys']));
    expect(keys.stdout).toContain('-----BEGIN PUBLIC KEY-----');
    const keyFile = join(dir, 'audit-public.pem');
    await writeFile(keyFile, keys.stdout);

    const exportFile = join(dir, 'export.ndjson');
    const exported = ok(await parley(['audit', 'export', '-o', exportFile]));
    expect(exported.stderr).toMatch(/wrote \d+ lines/);
    expect((await stat(exportFile)).mode & 0o777).toBe(0o600);

    // Offline: no URL and no key, only the file and the public key.
    const offline = await parley(['audit', 'verify', '--file', exportFile, '--public-key', keyFile], {
      env: { PARLEY_URL: undefined, PARLEY_API_KEY: undefined, PARLEY_CA: undefined },
    });
    ok(offline);
    expect(offline.stdout).toMatch(/^OK: tenant /);

    const lines = (await readFile(exportFile, 'utf8')).split('\n');
    const i = lines.findIndex((l) => l.includes('"type":"event"') && l.includes('agent.create'));
    expect(i).toBeGreaterThan(0);
    lines[i] = (lines[i] ?? '').replace('agent.create', 'agent.delete');
    const edited = join(dir, 'edited.ndjson');
    await writeFile(edited, lines.join('\n'));
    const caught = await parley(['audit', 'verify', '--file', edited, '--public-key', keyFile], {
      env: { PARLEY_URL: undefined, PARLEY_API_KEY: undefined },
    });
    expect(caught.code).toBe(6);
    expect(caught.stderr).toMatch(/FAILED at sequence \d+ \(line \d+\)/);

    const online = ok(await parley(['audit', 'verify', '--output', 'json']));
    expect((JSON.parse(online.stdout) as { ok: boolean }).ok).toBe(true);
  });

  it('shows a new key’s secret once and never lists it', async () => {
    const created = JSON.parse(
      ok(await parley(['keys', 'create', '--name', 'ci', '--scope', 'agents:read', '--output', 'json'])).stdout,
    ) as {
      apiKey: { id: string };
      secret: string;
    };
    expect(created.secret).toMatch(/^pk_test_/);
    const listed = ok(await parley(['keys', 'list', '--output', 'json']));
    expect(listed.stdout).not.toContain(created.secret);
    expect(listed.stdout).toContain(created.apiKey.id);
    // The new key works with its one scope, and is refused for more.
    ok(await parley(['agents', 'list'], { env: { PARLEY_API_KEY: created.secret } }));
    const denied = await parley(['keys', 'list'], { env: { PARLEY_API_KEY: created.secret } });
    expect(denied.code).toBe(3);
    expect(denied.stderr).toMatch(/^parley: permission denied: /);
    ok(await parley(['keys', 'revoke', created.apiKey.id]));
    const revoked = await parley(['agents', 'list'], { env: { PARLEY_API_KEY: created.secret } });
    expect(revoked.code).toBe(3);
  });

  it('stores a key with login --api-key-stdin in a 0600 profile and uses it, refusing a profile others can read', async () => {
    const configDir = join(dir, 'login-config');
    const env = { PARLEY_CONFIG_DIR: configDir, PARLEY_API_KEY: undefined };
    const login = ok(await parley(['login', '--api-key-stdin'], { env, stdin: `${stack.bootstrap.apiKey}\n` }));
    expect(login.stdout + login.stderr).not.toContain(stack.bootstrap.apiKey);
    const file = join(configDir, 'credentials.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // The profile holds the URL and CA too: nothing else is needed.
    const me = ok(await parley(['whoami', '--output', 'json'], { env: { ...env, PARLEY_URL: undefined, PARLEY_CA: undefined } }));
    expect((JSON.parse(me.stdout) as { tenantId: string }).tenantId).toBe(stack.bootstrap.tenantId);
    await chmod(file, 0o644);
    const loose = await parley(['whoami'], { env });
    expect(loose.code).toBe(1);
    expect(loose.stderr).toContain(`chmod 600 ${file}`);
    const bad = await parley(['login', '--api-key-stdin'], {
      env: { ...env, PARLEY_CONFIG_DIR: join(dir, 'other') },
      stdin: 'pk_test_nope',
    });
    expect(bad.code).toBe(3);
    // What `npm start` writes: login --from-stack needs nothing else.
    const stackFile = join(dir, 'stack.json');
    await writeFile(
      stackFile,
      JSON.stringify({ edgeUrl: stack.publicUrl, caCert: stack.pki.paths.caCert, bootstrap: { apiKey: stack.bootstrap.apiKey } }),
    );
    const devEnv = { PARLEY_CONFIG_DIR: join(dir, 'dev-config'), PARLEY_API_KEY: undefined, PARLEY_URL: undefined, PARLEY_CA: undefined };
    ok(await parley(['login', '--from-stack', stackFile], { env: devEnv }));
    expect(JSON.parse(ok(await parley(['agents', 'list', '--output', 'json'], { env: devEnv })).stdout)).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: agentId })]),
    );
    // The profile's key goes only to the server it was stored for, not to whatever --url names.
    const elsewhere = await parley(['agents', 'list', '--url', 'https://127.0.0.1:9'], { env: devEnv });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toMatch(/profile "default" holds credentials for https:\/\/[^,]+, not https:\/\/127\.0\.0\.1:9/);
    // This stack's edge has no OIDC: operator sign-in says so at once, and what to use instead.
    const oidc = await parley(['login'], { env: { PARLEY_CONFIG_DIR: join(dir, 'no-oidc'), PARLEY_API_KEY: undefined } });
    expect(oidc.code).toBe(1);
    expect(oidc.stderr).toMatch(/does not offer operator sign-in .*parley login --api-key-stdin/);
  });

  it('exits 2 for not found, 3 for a bad or missing key, 4 when the API cannot be reached, 1 for usage', async () => {
    const missing = await parley(['agents', 'get', '0190d3b2-0000-7000-8000-000000000000']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^parley: not found: /);
    const badKey = await parley(['agents', 'list'], { env: { PARLEY_API_KEY: `pk_test_${'z'.repeat(40)}` } });
    expect(badKey.code).toBe(3);
    expect(badKey.stderr).toMatch(/^parley: not authenticated: /);
    const noKey = await parley(['agents', 'list'], { env: { PARLEY_API_KEY: undefined } });
    expect(noKey.code).toBe(3);
    expect(noKey.stderr).toMatch(/no credentials/);
    const down = await parley(['agents', 'list', '--url', `https://localhost:${await freePort()}`]);
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/retry 1 in \d+ ms/);
    expect((await parley(['agents', 'list', '--output', 'xml'])).code).toBe(1);
    expect((await parley(['agents', 'frobnicate'])).code).toBe(1);
    expect((await parley(['--help'])).code).toBe(0);
  });

  it('prints bash and zsh completion scripts that bash accepts', async () => {
    const bash = ok(await parley(['completion', 'bash']));
    expect(bash.stdout).toContain('complete -o default -F _parley_completion parley');
    expect(bash.stdout).toContain('"secrets ") words="put list get rotate delete');
    expect(bash.stdout).not.toContain('--value');
    const script = join(dir, 'parley.bash');
    await writeFile(script, bash.stdout);
    execFileSync('bash', ['-n', script]);
    // Complete "parley agents l" in a real bash.
    const out = execFileSync('bash', [
      '-c',
      `source ${script}; COMP_WORDS=(parley agents l); COMP_CWORD=2; _parley_completion; echo "\${COMPREPLY[*]}"`,
    ]);
    expect(out.toString().trim()).toBe('list');
    expect(ok(await parley(['completion', 'zsh'])).stdout).toContain('bashcompinit');
  });
});
