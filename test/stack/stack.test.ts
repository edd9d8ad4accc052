// The one-command stack, as `npm start` runs it: embedded Postgres, dev PKI, migrations, every
// service as its own process; ready, a conversation with the demo agent, then a clean stop on SIGTERM.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SERVICE_NAMES } from '@parley/platform';
import makeFetchCookie from 'fetch-cookie';
import { CookieJar } from 'tough-cookie';
import { Agent, fetch as undiciFetch } from 'undici';
import WebSocket from 'ws';
import { startVaultStandin } from '../src/vault-standin.js';

function postJson(url: string, body: unknown, apiKey: string, ca: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** expectDevSignIn checks npm start's welcome and signs the dev user in (browser-like: redirects, cookie jar). */
async function expectDevSignIn(info: { signInUrl: string; edgeUrl: string; caCert: string }, tenantId: string, output: string[]) {
  // The welcome is printed right after the ready line; through the pipe it can come later on a loaded machine.
  const deadline = Date.now() + 30_000;
  while (!output.join('\n').includes('parley.api.v1.AgentService/ListAgents') && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const text = output.join('\n');
  expect(text).toContain('Parley is running.');
  expect(text).toContain(`Console sign-in  ${info.signInUrl}`);
  expect(text).toContain('parley.api.v1.AgentService/ListAgents');
  const jar = new CookieJar();
  const dispatcher = new Agent({ connect: { ca: await readFile(info.caCert) } });
  const base = ((url: string, init: Record<string, unknown> = {}) =>
    undiciFetch(url, { ...init, dispatcher } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch;
  const browse = makeFetchCookie(base, jar) as unknown as typeof fetch;
  const page = await browse(info.signInUrl);
  const html = await page.text();
  expect(html).toContain('For development only');
  const action = /action="([^"]+)"/.exec(html)?.[1] ?? '';
  await browse(new URL(action, page.url).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'sub=dev-owner',
  });
  const me = (await (await browse(`${info.edgeUrl}/auth/session`)).json()) as { workspaceId: string; member: { role: string } };
  expect(me).toMatchObject({ workspaceId: tenantId, member: { role: 'owner' } });
  await dispatcher.close();
}

/** spawnStack runs `npm start`'s entry point in a fresh dev folder with only the given variables (and PATH, and Node's compile cache). */
async function spawnStack(extra: Record<string, string> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'parley-stack-'));
  // Below the kernel's ephemeral range (32768 and up), where an outgoing connection could take a port.
  const portBase = 20_000 + Math.floor(Math.random() * 250) * 50;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    // Passed on to every service process: each start after the first skips compiling the modules.
    ...(process.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE } : {}),
    PARLEY_DEV_DIR: dir,
    PARLEY_DEV_PORT_BASE: String(portBase),
    PARLEY_LOG_LEVEL: 'warn',
    ...extra,
  };
  const child = spawn(process.execPath, [join(root, 'packages/devstack/dist/main.js')], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const ready = new Promise<string>((resolve, reject) => {
    const onData = (b: Buffer) => {
      for (const line of b.toString('utf8').split('\n')) {
        output.push(line);
        if (line.startsWith('parley ready ')) resolve(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`stack exited ${code} before ready:\n${output.slice(-30).join('\n')}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { dir, portBase, child, output, ready, exited };
}

describe('dev stack', () => {
  it('brings every service to ready, writes stack.json, and stops cleanly on SIGTERM', async () => {
    const { dir, portBase, child, ready, exited, output } = await spawnStack();
    try {
      const line = await ready;
      expect(line).toContain(`https://localhost:${portBase}`);

      const stackFile = join(dir, 'stack.json');
      expect((await stat(stackFile)).mode & 0o777).toBe(0o600);
      const info = JSON.parse(await readFile(stackFile, 'utf8')) as {
        edgeUrl: string;
        sessionUrl: string;
        caCert: string;
        certsDir: string;
        databaseUrl: string;
        services: Record<string, { url: string; healthUrl: string }>;
        bootstrap?: { tenantId: string; apiKey: string; agentId: string };
      };
      expect(info.edgeUrl).toBe(`https://localhost:${portBase}`);
      expect(info.databaseUrl).toMatch(/^postgres(ql)?:\/\//);
      expect(Object.keys(info.services).sort()).toEqual([...SERVICE_NAMES].sort());
      for (const name of SERVICE_NAMES) {
        const res = await fetch(info.services[name]!.healthUrl);
        expect(res.status, `${name} ready`).toBe(200);
        await stat(join(info.certsDir, `${name}.crt`));
        expect((await stat(join(info.certsDir, `${name}.key`))).mode & 0o777).toBe(0o600);
      }
      // The bootstrap workspace key works against the public API: a Connect JSON POST, as curl would send it.
      const boot = info.bootstrap!;
      expect(boot.tenantId).toMatch(/^[0-9a-f-]{36}$/);
      expect(boot.apiKey).toMatch(/^pk_test_[0-9A-Za-z]{80}$/);
      const session = await postJson(
        `${info.edgeUrl}/parley.api.v1.SessionService/CreateSession`,
        { agentId: boot.agentId },
        boot.apiKey,
        await readFile(info.caCert),
      );
      expect(session.status, session.text).toBe(200);
      expect((JSON.parse(session.text) as { token: string }).token.split('.')).toHaveLength(3);
      // A whole conversation with the demo agent on the session port, offline (scripted provider).
      expect(info.sessionUrl).toBe(`wss://localhost:${portBase + 1}/v1/session`);
      const { token } = JSON.parse(session.text) as { token: string };
      const ws = new WebSocket(info.sessionUrl, { ca: await readFile(info.caCert) });
      const frames: { type: string; text?: string; final?: boolean }[] = [];
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      const until = (match: (f: (typeof frames)[number]) => boolean) =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (frames.some(match)) {
              ws.off('message', onMessage);
              resolve();
            }
          };
          const onMessage = (data: Buffer) => {
            frames.push(JSON.parse(data.toString('utf8')) as (typeof frames)[number]);
            check();
          };
          ws.on('message', onMessage);
          check();
        });
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      ws.send(JSON.stringify({ type: 'start', token }));
      await until((f) => f.type === 'ready');
      ws.send(JSON.stringify({ type: 'user_text', text: 'hello' }));
      await until((f) => f.type === 'assistant_text' && f.final === true);
      expect(frames.filter((f) => f.type === 'assistant_text' && f.final === false).map((f) => f.text)).toEqual([
        'Hello!',
        'I am the Parley demo agent.',
        'Say anything and I will repeat it.',
      ]);
      ws.send(JSON.stringify({ type: 'end' }));
      expect(await closed).toBe(1000);
      // The secrets service is wired too (local KEK keyring in the dev folder): a provider key goes in, only metadata comes out.
      const value = `sk-dev-${Date.now()}-stack-test-value`;
      const put = await postJson(
        `${info.edgeUrl}/parley.api.v1.SecretService/PutSecret`,
        { name: 'openai', providerKind: 'llm', value },
        boot.apiKey,
        await readFile(info.caCert),
      );
      expect(put.status, put.text).toBe(200);
      expect(put.text).not.toContain(value.slice(0, -4));
      // The first five minutes: a welcome with the sign-in, the API and a command to paste, and a
      // working sign-in through the embedded (development-only) OIDC provider as the owner.
      await expectDevSignIn(info as unknown as { signInUrl: string; edgeUrl: string; caCert: string }, boot.tenantId, output);
      // The welcome's CLI command lists the demo agent.
      const listed = await promisify(execFile)(process.execPath, [join(root, 'packages/cli/dist/main.js'), 'agents', 'list'], {
        cwd: root,
        env: {
          PATH: process.env.PATH ?? '',
          PARLEY_URL: info.edgeUrl,
          PARLEY_CA: info.caCert,
          PARLEY_API_KEY: boot.apiKey,
          PARLEY_CONFIG_DIR: dir,
        },
      });
      expect(listed.stdout).toContain('Demo agent');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      for (const name of SERVICE_NAMES) {
        const after = await fetch(info.services[name]!.healthUrl).then(
          () => 'open',
          () => 'closed',
        );
        expect(after, `${name} stopped`).toBe('closed');
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 180_000);

  it('passes PARLEY_KEK_PROVIDER=vault and PARLEY_VAULT_* to secrets, identity and audit, each with its own transit key, and says so', async () => {
    const vault = await startVaultStandin({ keys: ['parley-kek', 'parley-identity-kek', 'parley-audit-kek'] });
    const tokenDir = await mkdtemp(join(tmpdir(), 'parley-stack-vault-'));
    const tokenFile = join(tokenDir, 'token');
    await writeFile(tokenFile, `${vault.issueToken({ ttlSeconds: 3600, policies: ['root'] })}\n`, { mode: 0o600 });
    const { dir, child, output, ready, exited } = await spawnStack({
      PARLEY_KEK_PROVIDER: 'vault',
      PARLEY_VAULT_ADDR: vault.address,
      PARLEY_VAULT_AUTH: 'token',
      PARLEY_VAULT_TOKEN_FILE: tokenFile,
    });
    try {
      await ready;
      const where = `at ${vault.address}/v1/transit (token auth)`;
      expect(output).toContain(`KEK secrets: Vault transit key "parley-kek" ${where}`);
      expect(output).toContain(`KEK identity: Vault transit key "parley-identity-kek" ${where}`);
      expect(output).toContain(`KEK audit: Vault transit key "parley-audit-kek" ${where}`);
      for (const key of ['parley-kek', 'parley-identity-kek', 'parley-audit-kek'])
        expect(vault.callCount(`transit/keys/${key}`), key).toBeGreaterThan(0);
      // identity's signing keys were sealed under its own key: no local keyring was made for anyone.
      expect(vault.callCount('transit/datakey/plaintext/parley-identity-kek')).toBeGreaterThan(0);
      expect(vault.callCount('transit/datakey/plaintext/parley-audit-kek')).toBeGreaterThan(0);
      for (const file of ['keyring.json', 'identity-keyring.json', 'audit-keyring.json'])
        await expect(stat(join(dir, file)), file).rejects.toMatchObject({ code: 'ENOENT' });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await vault.close();
    }
  }, 180_000);
});
