// The secrets service as a real process over mTLS, with the Vault stand-in as its KEK and a real
// tenant-data process answering whether a conversation is live. Data for tenant-data is set up
// through tenant-data's own stores in its own schema (real Postgres).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { toJsonString } from '@bufbuild/protobuf';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { withTenant } from '@parley/db';
import { createKekProvider, loadKekProviderConfig, silentLogger, type KekProvider } from '@parley/envelope';
import { systemActor } from '@parley/audit-outbox';
import { principalHeaders, type Principal, type ServiceName } from '@parley/platform';
import {
  DeleteSecretResponseSchema,
  GetSecretResponseSchema,
  ListSecretsResponseSchema,
  PutSecretResponseSchema,
  RotateSecretResponseSchema,
  SecretsService,
} from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { createAgent, endConversation, ensureWorkspace, startConversation, type TenantDataDb } from '@parley/tenant-data';
import { adminPool, createMigratedDatabase, readOutbox, serviceDb, serviceUrl, type ThrowawayDatabase } from '@parley/test/pg';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  countKeysBelow,
  finishRewrap,
  listKeyTenants,
  rotateKekAndRewrap,
  type MaintenanceDeps,
  type SecretsDatabase,
} from '@parley/secrets';
import { startSecretsStack, type SecretsStack } from './harness.js';

const MAX_USES = 4;
let stack: SecretsStack;
let admin: pg.Pool;
let tenantDb: Kysely<TenantDataDb>;
let secretsDb: Kysely<SecretsDatabase>;
let edge: Client<typeof SecretsService>;
let orchestrator: Client<typeof SecretsService>;

const marker = `sk-parley-marker-${randomBytes(16).toString('hex')}`;
const tenantA = randomUUID();
const tenantB = randomUUID();

function principal(tenantId: string, scopes: readonly string[] = ['secrets:write', 'agents:read']): Principal {
  return { tenantId, kind: 'member', id: `operator-${tenantId.slice(0, 8)}`, scopes, source: '127.0.0.1', userAgent: 'vitest' };
}
const as = (tenantId: string, scopes?: readonly string[]) => ({ headers: principalHeaders(principal(tenantId, scopes)) });

async function codeOf(p: Promise<unknown>): Promise<{ code: Code | 'ok'; message: string }> {
  try {
    await p;
    return { code: 'ok', message: '' };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
}

/** forms lists the marker and the encodings a leak could take: base64 at every alignment, base64url, hex. */
function forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const out = [value, bytes.toString('hex')];
  for (let offset = 0; offset < 3; offset++) {
    const b64 = bytes.subarray(offset).toString('base64').replace(/=+$/, '');
    out.push(b64.slice(0, -4), Buffer.from(b64, 'base64').toString('base64url').slice(0, -4));
  }
  return out;
}

function leaks(haystack: string, value: string): string[] {
  const lower = haystack.toLowerCase();
  return forms(value).filter((f) => (/^[0-9a-f]+$/.test(f) ? lower.includes(f) : haystack.includes(f)));
}

/** dumpDatabase renders every row of every table of every parley schema as text, bytea also as hex and base64. */
async function dumpDatabase(): Promise<string> {
  const { rows: tables } = await admin.query<{ schema: string; table: string; bytea: string[] }>(
    `select n.nspname as schema, c.relname as table,
            array(select a.attname::text from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.atttypid = 'bytea'::regtype) as bytea
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname like 'parley\\_%' and c.relkind in ('r', 'p')`,
  );
  const parts: string[] = [];
  for (const t of tables) {
    const q = (s: string) => `"${s.replaceAll('"', '""')}"`;
    const extra = t.bytea.flatMap((c) => [`encode(t.${q(c)}, 'hex')`, `encode(t.${q(c)}, 'base64')`, `encode(t.${q(c)}, 'escape')`]);
    const { rows } = await admin.query<{ line: string }>(
      `select concat_ws(' | ', t::text${extra.map((e) => `, ${e}`).join('')}) as line from ${q(t.schema)}.${q(t.table)} t`,
    );
    parts.push(`# ${t.schema}.${t.table} (${rows.length})`, ...rows.map((r) => r.line));
  }
  return parts.join('\n');
}

/** outbox reads a tenant's audit outbox rows of one action, oldest first (no audit service runs here, so they stay). */
const outbox = (tenantId: string, action: string) => readOutbox(admin, 'secrets', tenantId, action);

interface Scene {
  readonly tenantId: string;
  readonly agentId: string;
  readonly conversationId: string;
}

/** scene creates a workspace, an agent referencing secretRefs and a live conversation, in tenant-data's own schema. */
async function scene(tenantId: string, secretRefs: Record<string, string>): Promise<Scene> {
  return withTenant(tenantDb, tenantId, async (trx) => {
    await ensureWorkspace(trx, { name: `workspace ${tenantId.slice(0, 8)}` });
    const agent = await createAgent(trx, { name: `agent-${randomUUID().slice(0, 8)}`, secretRefs });
    const conversation = await startConversation(trx, { agentId: agent.id });
    return { tenantId, agentId: agent.id, conversationId: conversation.id };
  });
}

async function put(tenantId: string, name: string, value: string, providerKind = 'llm'): Promise<string> {
  const res = await edge.putSecret({ name, providerKind, value }, as(tenantId));
  return res.secret?.id ?? '';
}

function resolve(s: Scene, secretIds: string[] = [], client: Client<typeof SecretsService> = orchestrator) {
  return client.resolveForConversation({ tenantId: s.tenantId, conversationId: s.conversationId, agentId: s.agentId, secretIds });
}

// A database of its own: the KEK test rewraps every stored key and the dump test reads every
// table, so rows left by other test files (sealed under another KEK) must not be in view.
let database: ThrowawayDatabase;

beforeAll(async () => {
  database = await createMigratedDatabase();
  const baseUrl = database.url;
  stack = await startSecretsStack({
    databaseUrls: { secrets: serviceUrl('secrets', baseUrl), tenantData: serviceUrl('tenant-data', baseUrl) },
    env: {
      PARLEY_DEK_CACHE_MAX_USES: String(MAX_USES),
      PARLEY_SECRET_VERSION_GRACE_MS: '1000',
      PARLEY_SECRETS_MAINTENANCE_INTERVAL_MS: '300',
    },
  });
  admin = adminPool(2, baseUrl);
  tenantDb = serviceDb<TenantDataDb>('tenant-data', { baseUrl });
  secretsDb = serviceDb<SecretsDatabase>('secrets', { baseUrl });
  edge = await stack.clientAs('edge', SecretsService);
  orchestrator = await stack.clientAs('voice-orchestrator', SecretsService);
});

afterAll(async () => {
  await stack?.stop();
  await admin?.end();
  await tenantDb?.destroy();
  await secretsDb?.destroy();
  await database?.drop();
});

describe('secrets service (real process, Vault stand-in, real tenant-data)', () => {
  it('takes a value in and never gives it back to the edge: put, list, get, rotate, delete answer metadata only', async () => {
    const put1 = await edge.putSecret({ name: 'openai-prod', providerKind: 'llm', value: marker }, as(tenantA));
    const id = put1.secret?.id ?? '';
    expect(put1.secret).toMatchObject({
      name: 'openai-prod',
      providerKind: 'llm',
      hint: marker.slice(-4),
      version: 1,
      setBy: `member:${principal(tenantA).id}`,
      tenantId: tenantA,
    });
    const list = await edge.listSecrets({}, as(tenantA));
    const got = await edge.getSecret({ secretId: id }, as(tenantA));
    const rotated = await edge.rotateSecret({ secretId: id, value: `${marker}-v2`, expectedVersion: 1 }, as(tenantA));
    expect(rotated.secret?.version).toBe(2);
    const answers = [
      toJsonString(PutSecretResponseSchema, put1),
      toJsonString(ListSecretsResponseSchema, list),
      toJsonString(GetSecretResponseSchema, got),
      toJsonString(RotateSecretResponseSchema, rotated),
    ].join('\n');
    expect(answers).toContain('openai-prod');
    expect(leaks(answers, marker)).toEqual([]);
    const del = await edge.putSecret({ name: 'to-delete', providerKind: 'tts', value: `${marker}-gone` }, as(tenantA));
    const deleted = await edge.deleteSecret({ secretId: del.secret?.id ?? '' }, as(tenantA));
    expect(toJsonString(DeleteSecretResponseSchema, deleted)).toBe('{}');
    expect((await codeOf(edge.getSecret({ secretId: del.secret?.id ?? '' }, as(tenantA)))).code).toBe(Code.NotFound);
  });

  it('keeps the marker out of every table of every parley schema and out of the logs', async () => {
    const s = await scene(tenantA, { llm: await put(tenantA, 'marker-check', marker) });
    expect((await resolve(s)).secrets[0]?.value).toBe(marker);
    const dump = await dumpDatabase();
    expect(dump).toContain('marker-check');
    expect(dump).toMatch(/vault:v\d+:/);
    expect(leaks(dump, marker)).toEqual([]);
    const logs = stack.logs.join('\n');
    expect(logs).toContain('secrets serving');
    expect(leaks(logs, marker)).toEqual([]);
  });

  it('refuses writes without secrets:write and reads without agents:read, and calls without a principal', async () => {
    expect((await codeOf(edge.putSecret({ name: 'x', providerKind: 'llm', value: 'v' }, as(tenantA, ['agents:read'])))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await codeOf(edge.listSecrets({}, as(tenantA, ['secrets:write'])))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(edge.listSecrets({}))).code).toBe(Code.Unauthenticated);
    expect(await codeOf(edge.putSecret({ name: 'bad name!', providerKind: 'llm', value: 'v' }, as(tenantA)))).toMatchObject({
      code: Code.InvalidArgument,
    });
  });

  it("resolves an agent's secrets for its live conversation and records who, which conversation and which secret", async () => {
    const llm = await put(tenantA, 'resolve-llm', 'sk-resolve-llm-value-0001');
    const tts = await put(tenantA, 'resolve-tts', 'tts-resolve-value-0002', 'tts');
    const s = await scene(tenantA, { llm, tts });
    const res = await resolve(s);
    expect(Object.fromEntries(res.secrets.map((x) => [x.purposes.join(','), x.value]))).toEqual({
      llm: 'sk-resolve-llm-value-0001',
      tts: 'tts-resolve-value-0002',
    });
    const only = await resolve(s, [tts]);
    expect(only.secrets.map((x) => x.secretId)).toEqual([tts]);
    const events = await withTenant(secretsDb, tenantA, (trx) =>
      trx.selectFrom('access_events').selectAll().where('conversation_id', '=', s.conversationId).execute(),
    );
    expect(events.map((e) => [e.secret_id, e.caller, e.agent_id]).sort()).toEqual(
      [
        [llm, 'spiffe://parley.local/voice-orchestrator', s.agentId],
        [tts, 'spiffe://parley.local/voice-orchestrator', s.agentId],
        [tts, 'spiffe://parley.local/voice-orchestrator', s.agentId],
      ].sort(),
    );
    expect((await edge.getSecret({ secretId: llm }, as(tenantA))).secret?.lastUsedAt).toBeDefined();
  });

  it('refuses resolve to the edge and to every other service, with the same request that works for the orchestrator', async () => {
    const s = await scene(tenantA, { llm: await put(tenantA, 'refuse-callers', 'sk-refuse-callers-0003') });
    expect((await resolve(s)).secrets).toHaveLength(1);
    const others: ServiceName[] = ['edge', 'identity', 'tenant-data', 'audit', 'lifecycle', 'integrations', 'secrets'];
    for (const other of others) {
      const client = other === 'edge' ? edge : await stack.clientAs(other, SecretsService);
      const result = await codeOf(resolve(s, [], client));
      expect(result.code, other).toBe(Code.PermissionDenied);
      expect(result.message).not.toContain('sk-refuse');
    }
  });

  it("refuses resolve for a finished conversation, another agent's conversation and a secret the agent does not reference", async () => {
    const referenced = await put(tenantA, 'gate-referenced', 'sk-gate-referenced-0004');
    const unreferenced = await put(tenantA, 'gate-unreferenced', 'sk-gate-unreferenced-0005');
    const s = await scene(tenantA, { llm: referenced });
    const other = await scene(tenantA, { llm: unreferenced });
    expect(await codeOf(resolve(s, [unreferenced]))).toMatchObject({
      code: Code.PermissionDenied,
      message: expect.stringContaining('does not reference'),
    });
    expect(await codeOf(resolve({ ...s, agentId: other.agentId }))).toMatchObject({ code: Code.PermissionDenied });
    expect((await codeOf(resolve({ ...s, conversationId: randomUUID() }))).code).toBe(Code.NotFound);
    // The same conversation of tenant A asked for as tenant B: tenant-data does not find it.
    expect((await codeOf(resolve({ ...s, tenantId: tenantB }))).code).toBe(Code.NotFound);
    await withTenant(tenantDb, tenantA, (trx) => endConversation(trx, s.conversationId, 'caller hung up'));
    expect(await codeOf(resolve(s))).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining('live') });
  });

  it('fails to decrypt a ciphertext copied to another row or another tenant', async () => {
    const source = await put(tenantA, 'swap-source', 'sk-swap-source-0006');
    const target = await put(tenantA, 'swap-target', 'sk-swap-target-0007');
    const foreign = await put(tenantB, 'swap-foreign', 'sk-swap-foreign-0008');
    const sA = await scene(tenantA, { llm: target });
    const sB = await scene(tenantB, { llm: foreign });
    const copy = (from: string, to: string) =>
      admin.query(
        `update parley_secrets.secret_versions t set ciphertext = f.ciphertext, nonce = f.nonce, wrapped_data_key = f.wrapped_data_key, kek_version = f.kek_version
           from parley_secrets.secret_versions f where f.secret_id = $1 and f.state = 'current' and t.secret_id = $2 and t.state = 'current'`,
        [from, to],
      );
    await copy(source, target);
    const sameTenant = await codeOf(resolve(sA));
    expect(sameTenant).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining('does not decrypt') });
    expect(sameTenant.message).not.toContain('sk-swap');
    await copy(source, foreign);
    expect((await codeOf(resolve(sB))).code).toBe(Code.FailedPrecondition);
  });

  it('fails closed when Vault is down: cached data keys serve only within their use limit, everything else is UNAVAILABLE', async () => {
    const cached = await put(tenantA, 'outage-cached', 'sk-outage-cached-0009');
    const cold = await put(tenantA, 'outage-cold', 'sk-outage-cold-0010');
    const s = await scene(tenantA, { llm: cached, stt: cold });
    expect((await resolve(s, [cached])).secrets[0]?.value).toBe('sk-outage-cached-0009'); // use 1 loads the key
    stack.vault.setMode('down');
    try {
      const cold1 = await codeOf(resolve(s, [cold]));
      expect(cold1.code).toBe(Code.Unavailable);
      expect(cold1.message).toMatch(/vault/i);
      for (let use = 2; use <= MAX_USES; use++) expect((await resolve(s, [cached])).secrets[0]?.value).toBe('sk-outage-cached-0009');
      expect((await codeOf(resolve(s, [cached]))).code).toBe(Code.Unavailable);
      expect(
        (await codeOf(edge.putSecret({ name: 'outage-put', providerKind: 'llm', value: 'sk-outage-put-0011' }, as(tenantA)))).code,
      ).toBe(Code.Unavailable);
    } finally {
      stack.vault.setMode('up');
    }
    expect((await resolve(s, [cold])).secrets[0]?.value).toBe('sk-outage-cold-0010');
  });

  it('logs in to Vault again when its token has expired', async () => {
    const logins = stack.vault.callCount('auth/kubernetes/login');
    stack.vault.expireTokens();
    const id = await put(tenantA, 'after-expiry', 'sk-after-expiry-0012');
    expect(id).not.toBe('');
    expect(stack.vault.callCount('auth/kubernetes/login')).toBeGreaterThan(logins);
  });

  it('destroys a rotated-away version after the grace period (scheduled sweep)', async () => {
    const id = await put(tenantA, 'grace', 'sk-grace-v1-0013');
    await edge.rotateSecret({ secretId: id, value: 'sk-grace-v2-0014' }, as(tenantA));
    const versions = () =>
      withTenant(secretsDb, tenantA, (trx) =>
        trx.selectFrom('secret_versions').select(['version', 'state']).where('secret_id', '=', id).orderBy('version').execute(),
      );
    expect(await versions()).toEqual([
      { version: 1, state: 'retired' },
      { version: 2, state: 'current' },
    ]);
    const deadline = Date.now() + 15_000;
    while ((await versions()).length > 1 && Date.now() < deadline) await sleep(100);
    expect(await versions()).toEqual([{ version: 2, state: 'current' }]);
  });

  it("shreds a subject key for lifecycle only; the subject's ciphertexts no longer decrypt", async () => {
    const tenantData = await stack.clientAs('tenant-data', SecretsService);
    const lifecycle = await stack.clientAs('lifecycle', SecretsService);
    const subjectId = randomUUID();
    const otherSubject = randomUUID();
    const scope = { tenantId: tenantA, subjectId, purpose: 'transcript-turn:1' };
    const { ciphertext } = await tenantData.encryptForSubject({ ...scope, plaintext: Buffer.from('my phone is 555-0100') });
    const other = await tenantData.encryptForSubject({ ...scope, subjectId: otherSubject, plaintext: Buffer.from('someone else') });
    expect(Buffer.from((await tenantData.decryptForSubject({ ...scope, ciphertext })).plaintext).toString()).toBe('my phone is 555-0100');
    expect((await codeOf(tenantData.decryptForSubject({ ...scope, purpose: 'transcript-turn:2', ciphertext }))).code).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(edge.shredSubjectKey({ tenantId: tenantA, subjectId }))).toMatchObject({ code: Code.PermissionDenied });
    expect(await codeOf(tenantData.shredSubjectKey({ tenantId: tenantA, subjectId }))).toMatchObject({ code: Code.PermissionDenied });
    expect((await lifecycle.shredSubjectKey({ tenantId: tenantA, subjectId })).shredded).toBe(true);
    expect((await lifecycle.shredSubjectKey({ tenantId: tenantA, subjectId })).shredded).toBe(false);
    expect(await codeOf(tenantData.decryptForSubject({ ...scope, ciphertext }))).toMatchObject({
      code: Code.FailedPrecondition,
      message: expect.stringContaining('shredded'),
    });
    expect((await codeOf(tenantData.encryptForSubject({ ...scope, plaintext: Buffer.from('new') }))).code).toBe(Code.FailedPrecondition);
    const row = await withTenant(secretsDb, tenantA, (trx) =>
      trx.selectFrom('subject_keys').selectAll().where('subject_id', '=', subjectId).executeTakeFirstOrThrow(),
    );
    expect(row).toMatchObject({ wrapped_key: null, kek_version: null });
    expect(
      Buffer.from(
        (await tenantData.decryptForSubject({ ...scope, subjectId: otherSubject, ciphertext: other.ciphertext })).plaintext,
      ).toString(),
    ).toBe('someone else');
  });

  it('rotates the KEK and rewraps every stored key; an interrupted rewrap finishes when run again', async () => {
    const s = await scene(tenantB, { llm: await put(tenantB, 'kek-rotation', 'sk-kek-rotation-0015') });
    await orchestrator.encryptForSubject({ tenantId: tenantB, subjectId: randomUUID(), purpose: '', plaintext: Buffer.from('x') });
    for (let i = 0; i < 4; i++) await put(tenantB, `kek-filler-${i}`, `sk-kek-filler-${i}-0016`);
    // Another replica of the service, as an operator's CLI run is: own KEK client, same Vault and database.
    const kek: KekProvider = await createKekProvider(
      loadKekProviderConfig({
        PARLEY_KEK_PROVIDER: 'vault',
        PARLEY_VAULT_ADDR: stack.vault.address,
        PARLEY_VAULT_AUTH: 'token',
        PARLEY_VAULT_TOKEN_FILE: await tokenFile(stack.vault.issueToken({ ttlSeconds: 600, policies: ['parley-secrets'] })),
      }),
      silentLogger,
    );
    // Hold the service's maintenance lock so its schedule cannot finish the run for us.
    const lock = await admin.connect();
    await lock.query('select pg_advisory_lock($1)', [0x70_73_65_63]);
    try {
      const abort = new AbortController();
      let batches = 0;
      const deps: MaintenanceDeps = {
        db: secretsDb,
        kek,
        cache: undefined,
        rewrapBatchSize: 1,
        logger: {
          info: (_fields, message) => {
            if (message === 'kek rewrap progress' && ++batches === 3) abort.abort();
          },
          warn: () => undefined,
        },
      };
      const before = await kek.readKekVersions();
      await expect(
        rotateKekAndRewrap(deps, {
          raiseMinDecryptionVersion: true,
          signal: abort.signal,
          auditActor: systemActor('parley-secrets rotate-kek'),
        }),
      ).rejects.toThrow();
      const latest = before.latestVersion + 1;
      // The rotation is on record in every tenant holding keys, although its rewrap was interrupted.
      for (const t of [tenantA, tenantB]) {
        const rotations = (await outbox(t, 'kek.rotate')).filter((e) => e.targetId === `v${latest}`);
        expect(rotations, t).toHaveLength(1);
        expect(rotations[0]).toMatchObject({
          actorKind: 'system',
          actorId: 'parley-secrets rotate-kek',
          targetType: 'kek',
          description: { kek_version: { from: before.latestVersion, to: latest }, provider: 'vault-transit' },
        });
      }
      expect(stack.vault.keyVersions('parley-kek')?.latestVersion).toBe(latest);
      const left = async () => {
        let n = 0;
        for (const t of await listKeyTenants(secretsDb)) n += await countKeysBelow(secretsDb, t, latest);
        return n;
      };
      expect(await left()).toBeGreaterThan(0);
      expect(stack.vault.keyVersions('parley-kek')?.minDecryptionVersion).toBe(before.minDecryptionVersion);
      const report = await finishRewrap({ ...deps, rewrapBatchSize: 50 }, { raiseMinDecryptionVersion: true });
      expect(report.remaining).toBe(0);
      expect(await left()).toBe(0);
      expect(stack.vault.keyVersions('parley-kek')?.minDecryptionVersion).toBe(latest);
      const kekVersions = await admin.query<{ v: number }>(
        `select kek_version as v from parley_secrets.secret_versions union all select kek_version from parley_secrets.subject_keys where kek_version is not null`,
      );
      expect(new Set(kekVersions.rows.map((r) => r.v))).toEqual(new Set([latest]));
    } finally {
      await lock.query('select pg_advisory_unlock($1)', [0x70_73_65_63]);
      lock.release();
      await kek.close();
    }
    // Every secret still resolves, now through data keys wrapped by the newest KEK version only.
    expect((await resolve(s)).secrets[0]?.value).toBe('sk-kek-rotation-0015');
  });
});

async function tokenFile(token: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'parley-token-')), 'token');
  await writeFile(path, token, { mode: 0o600 });
  return path;
}

describe('secrets service audit events (outbox)', () => {
  const tenant = randomUUID();
  const operatorId = principal(tenant).id;

  it('put, rotate and delete record one event each with the operator as actor, and no value or hint', async () => {
    const value = `sk-audit-${randomBytes(12).toString('hex')}`;
    const id = await put(tenant, 'audited-llm', value);
    expect((await codeOf(edge.rotateSecret({ secretId: id, value: `${value}-x`, expectedVersion: 5 }, as(tenant)))).code).toBe(
      Code.FailedPrecondition,
    );
    await edge.rotateSecret({ secretId: id, value: `${value}-v2`, expectedVersion: 1 }, as(tenant));
    await edge.deleteSecret({ secretId: id }, as(tenant));
    expect((await codeOf(edge.deleteSecret({ secretId: id }, as(tenant)))).code).toBe(Code.NotFound);

    const [created] = await outbox(tenant, 'secret.create');
    expect(created).toMatchObject({
      actorKind: 'member',
      actorId: operatorId,
      sourceAddress: '127.0.0.1',
      targetType: 'secret',
      targetId: id,
    });
    expect(created?.description).toEqual({ name: 'audited-llm', provider_kind: 'llm', version: 1 });
    const rotations = await outbox(tenant, 'secret.rotate');
    expect(rotations).toHaveLength(1);
    expect(rotations[0]).toMatchObject({
      actorId: operatorId,
      targetId: id,
      description: { name: 'audited-llm', version: { from: 1, to: 2 }, previous_readable_seconds: 1 },
    });
    const deletions = await outbox(tenant, 'secret.delete');
    expect(deletions).toHaveLength(1);
    expect(deletions[0]).toMatchObject({ actorId: operatorId, targetId: id, description: { name: 'audited-llm', versions_destroyed: 2 } });
    const { rows } = await admin.query<{ text: string }>(
      `select event::text as text from parley_secrets.audit_outbox where tenant_id = $1`,
      [tenant],
    );
    for (const r of rows) {
      expect(leaks(r.text, value)).toEqual([]);
      expect(r.text).not.toContain(value.slice(-4));
    }
  });

  it('resolve records one secret.resolve access event per secret, by the voice-orchestrator, naming conversation, agent and version', async () => {
    const llm = await put(tenant, 'resolve-audit-llm', 'sk-resolve-audit-0001');
    const tts = await put(tenant, 'resolve-audit-tts', 'tts-resolve-audit-0002', 'tts');
    const s = await scene(tenant, { llm, tts });
    await resolve(s);
    const events = (await outbox(tenant, 'secret.resolve')).filter((e) => e.description?.conversation_id === s.conversationId);
    expect(events.map((e) => e.targetId).sort()).toEqual([llm, tts].sort());
    for (const e of events) {
      expect(e).toMatchObject({
        actorKind: 'service',
        actorId: 'voice-orchestrator',
        targetType: 'secret',
        description: { agent_id: s.agentId, version: 1 },
      });
      expect(e.sourceAddress ?? '').toBe('');
    }
    expect(JSON.stringify(events)).not.toContain('resolve-audit-0001');
    // A refused resolve hands nothing out and records nothing.
    const lifecycle = await stack.clientAs('lifecycle', SecretsService);
    expect((await codeOf(resolve(s, [], lifecycle))).code).toBe(Code.PermissionDenied);
    expect((await outbox(tenant, 'secret.resolve')).filter((e) => e.description?.conversation_id === s.conversationId)).toHaveLength(2);
  });

  it('shredding a subject key records subject_key.shred by lifecycle once; a repeated shred records nothing', async () => {
    const lifecycle = await stack.clientAs('lifecycle', SecretsService);
    const withKey = randomUUID();
    const withoutKey = randomUUID();
    await orchestrator.encryptForSubject({ tenantId: tenant, subjectId: withKey, purpose: '', plaintext: Buffer.from('x') });
    for (const subjectId of [withKey, withKey, withoutKey, withoutKey]) await lifecycle.shredSubjectKey({ tenantId: tenant, subjectId });
    const events = await outbox(tenant, 'subject_key.shred');
    expect(events.map((e) => [e.actorKind, e.actorId, e.targetType, e.targetId, e.description?.had_data_key])).toEqual([
      ['service', 'lifecycle', 'subject', withKey, true],
      ['service', 'lifecycle', 'subject', withoutKey, false],
    ]);
  });
});
