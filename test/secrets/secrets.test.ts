// The secrets service as a real process over mTLS, with the Vault stand-in as its KEK and a real
// tenant-data process answering whether a conversation is live. Data for tenant-data is set up
// through tenant-data's own stores in its own schema (real Postgres).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { toJsonString } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { withTenant } from '@parley/db';
import { createKekProvider, loadKekProviderConfig, silentLogger, type KekProvider } from '@parley/envelope';
import { systemActor } from '@parley/audit-outbox';
import type { ServiceName } from '@parley/platform';
import {
  DeleteSecretResponseSchema,
  GetSecretResponseSchema,
  ListSecretsResponseSchema,
  PutSecretResponseSchema,
  RotateSecretResponseSchema,
  SecretsService,
} from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { endConversation, updateAgent } from '@parley/tenant-data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countKeysBelow, finishRewrap, listKeyTenants, rotateKekAndRewrap, type MaintenanceDeps } from '@parley/secrets';
import { as, codeOf, leaks, MAX_USES, principal, startSecretsWorld, type SecretsWorld } from './fixture.js';

/**
 * refusedSoon retries a resolve until it is refused, for at most 10 s: secrets' conversation
 * cache drops an entry when tenant-data's NOTIFY for the commit arrives, a few milliseconds after
 * it on a quiet machine (longer on a loaded one), so a resolve sent in that gap may still be
 * served. The cache's own bound is 30 s in this stack (PARLEY_SECRETS_CONVERSATION_CACHE_MS).
 */
async function refusedSoon(resolve: () => Promise<unknown>): Promise<Awaited<ReturnType<typeof codeOf>>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const result = await codeOf(resolve());
    if (result.code !== 'ok' || Date.now() > deadline) return result;
    await sleep(10);
  }
}

const marker = `sk-parley-marker-${randomBytes(16).toString('hex')}`;
const tenantA = randomUUID();
const tenantB = randomUUID();

let w: SecretsWorld;

beforeAll(async () => {
  w = await startSecretsWorld();
});

afterAll(async () => {
  await w?.stop();
});

/** dumpDatabase renders every row of every table of every parley schema as text, bytea also as hex and base64. */
async function dumpDatabase(): Promise<string> {
  const { rows: tables } = await w.admin.query<{ schema: string; table: string; bytea: string[] }>(
    `select n.nspname as schema, c.relname as table,
            array(select a.attname::text from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.atttypid = 'bytea'::regtype) as bytea
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname like 'parley\\_%' and c.relkind in ('r', 'p')`,
  );
  const parts: string[] = [];
  for (const t of tables) {
    const q = (s: string) => `"${s.replaceAll('"', '""')}"`;
    const extra = t.bytea.flatMap((c) => [`encode(t.${q(c)}, 'hex')`, `encode(t.${q(c)}, 'base64')`, `encode(t.${q(c)}, 'escape')`]);
    const { rows } = await w.admin.query<{ line: string }>(
      `select concat_ws(' | ', t::text${extra.map((e) => `, ${e}`).join('')}) as line from ${q(t.schema)}.${q(t.table)} t`,
    );
    parts.push(`# ${t.schema}.${t.table} (${rows.length})`, ...rows.map((r) => r.line));
  }
  return parts.join('\n');
}

describe('secrets service (real process, Vault stand-in, real tenant-data)', () => {
  it('takes a value in and never gives it back to the edge: put, list, get, rotate, delete answer metadata only', async () => {
    const put1 = await w.edge.putSecret({ name: 'openai-prod', providerKind: 'llm', value: marker }, as(tenantA));
    const id = put1.secret?.id ?? '';
    expect(put1.secret).toMatchObject({
      name: 'openai-prod',
      providerKind: 'llm',
      hint: marker.slice(-4),
      version: 1,
      setBy: `member:${principal(tenantA).id}`,
      tenantId: tenantA,
    });
    const list = await w.edge.listSecrets({}, as(tenantA));
    const got = await w.edge.getSecret({ secretId: id }, as(tenantA));
    const rotated = await w.edge.rotateSecret({ secretId: id, value: `${marker}-v2`, expectedVersion: 1 }, as(tenantA));
    expect(rotated.secret?.version).toBe(2);
    const answers = [
      toJsonString(PutSecretResponseSchema, put1),
      toJsonString(ListSecretsResponseSchema, list),
      toJsonString(GetSecretResponseSchema, got),
      toJsonString(RotateSecretResponseSchema, rotated),
    ].join('\n');
    expect(answers).toContain('openai-prod');
    expect(leaks(answers, marker)).toEqual([]);
    const del = await w.edge.putSecret({ name: 'to-delete', providerKind: 'tts', value: `${marker}-gone` }, as(tenantA));
    const deleted = await w.edge.deleteSecret({ secretId: del.secret?.id ?? '' }, as(tenantA));
    expect(toJsonString(DeleteSecretResponseSchema, deleted)).toBe('{}');
    expect((await codeOf(w.edge.getSecret({ secretId: del.secret?.id ?? '' }, as(tenantA)))).code).toBe(Code.NotFound);
  });

  it('keeps the marker out of every table of every parley schema and out of the logs', async () => {
    const s = await w.scene(tenantA, { llm: await w.put(tenantA, 'marker-check', marker) });
    expect((await w.resolve(s)).secrets[0]?.value).toBe(marker);
    const dump = await dumpDatabase();
    expect(dump).toContain('marker-check');
    expect(dump).toMatch(/vault:v\d+:/);
    expect(leaks(dump, marker)).toEqual([]);
    const logs = w.stack.logs.join('\n');
    expect(logs).toContain('secrets serving');
    expect(leaks(logs, marker)).toEqual([]);
  });

  it('refuses writes without secrets:write and reads without agents:read, and calls without a principal', async () => {
    expect((await codeOf(w.edge.putSecret({ name: 'x', providerKind: 'llm', value: 'v' }, as(tenantA, ['agents:read'])))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await codeOf(w.edge.listSecrets({}, as(tenantA, ['secrets:write'])))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(w.edge.listSecrets({}))).code).toBe(Code.Unauthenticated);
    expect(await codeOf(w.edge.putSecret({ name: 'bad name!', providerKind: 'llm', value: 'v' }, as(tenantA)))).toMatchObject({
      code: Code.InvalidArgument,
    });
  });

  it("resolves an agent's secrets for its live conversation and records who, which conversation and which secret", async () => {
    const llm = await w.put(tenantA, 'resolve-llm', 'sk-resolve-llm-value-0001');
    const tts = await w.put(tenantA, 'resolve-tts', 'tts-resolve-value-0002', 'tts');
    const s = await w.scene(tenantA, { llm, tts });
    const res = await w.resolve(s);
    expect(Object.fromEntries(res.secrets.map((x) => [x.purposes.join(','), x.value]))).toEqual({
      llm: 'sk-resolve-llm-value-0001',
      tts: 'tts-resolve-value-0002',
    });
    const only = await w.resolve(s, [tts]);
    expect(only.secrets.map((x) => x.secretId)).toEqual([tts]);
    const events = await withTenant(w.secretsDb, tenantA, (trx) =>
      trx.selectFrom('access_events').selectAll().where('conversation_id', '=', s.conversationId).execute(),
    );
    expect(events.map((e) => [e.secret_id, e.caller, e.agent_id]).sort()).toEqual(
      [
        [llm, 'spiffe://parley.local/voice-orchestrator', s.agentId],
        [tts, 'spiffe://parley.local/voice-orchestrator', s.agentId],
        [tts, 'spiffe://parley.local/voice-orchestrator', s.agentId],
      ].sort(),
    );
    expect((await w.edge.getSecret({ secretId: llm }, as(tenantA))).secret?.lastUsedAt).toBeDefined();
  });

  it('refuses resolve to the edge and to every other service, with the same request that works for the orchestrator', async () => {
    const s = await w.scene(tenantA, { llm: await w.put(tenantA, 'refuse-callers', 'sk-refuse-callers-0003') });
    expect((await w.resolve(s)).secrets).toHaveLength(1);
    const others: ServiceName[] = ['edge', 'identity', 'tenant-data', 'audit', 'lifecycle', 'integrations', 'secrets'];
    for (const other of others) {
      const client = other === 'edge' ? w.edge : await w.stack.clientAs(other, SecretsService);
      const result = await codeOf(w.resolve(s, [], client));
      expect(result.code, other).toBe(Code.PermissionDenied);
      expect(result.message).not.toContain('sk-refuse');
    }
  });

  it("refuses resolve for a finished conversation, another agent's conversation and a secret the agent does not reference", async () => {
    const referenced = await w.put(tenantA, 'gate-referenced', 'sk-gate-referenced-0004');
    const unreferenced = await w.put(tenantA, 'gate-unreferenced', 'sk-gate-unreferenced-0005');
    const s = await w.scene(tenantA, { llm: referenced });
    const other = await w.scene(tenantA, { llm: unreferenced });
    expect(await codeOf(w.resolve(s, [unreferenced]))).toMatchObject({
      code: Code.PermissionDenied,
      message: expect.stringContaining('does not reference'),
    });
    expect(await codeOf(w.resolve({ ...s, agentId: other.agentId }))).toMatchObject({ code: Code.PermissionDenied });
    expect((await codeOf(w.resolve({ ...s, conversationId: randomUUID() }))).code).toBe(Code.NotFound);
    // The same conversation of tenant A asked for as tenant B: tenant-data does not find it.
    expect((await codeOf(w.resolve({ ...s, tenantId: tenantB }))).code).toBe(Code.NotFound);
    await withTenant(w.tenantDb, tenantA, (trx) => endConversation(trx, s.conversationId, 'caller hung up'));
    expect(await refusedSoon(() => w.resolve(s))).toMatchObject({
      code: Code.FailedPrecondition,
      message: expect.stringContaining('live'),
    });
  });

  it("reuses a live conversation's answer only until tenant-data changes it: a secret_refs change and an end committed elsewhere are seen by the very next resolve", async () => {
    const llm = await w.put(tenantA, 'cache-llm', 'sk-cache-llm-0011');
    const tts = await w.put(tenantA, 'cache-tts', 'tts-cache-0012', 'tts');
    const s = await w.scene(tenantA, { llm, tts });
    // Warm: the conversation's answer is now cached in the secrets process.
    for (let i = 0; i < 3; i++) expect((await w.resolve(s)).secrets).toHaveLength(2);
    // The cache's own bound is PARLEY_SECRETS_CONVERSATION_CACHE_MS (30 s here): a change seen
    // within a third of it came through tenant-data's notification at the commit, not the expiry.
    // The agent loses its TTS key (as an operator's UpdateAgent through tenant-data commits it).
    await withTenant(w.tenantDb, tenantA, (trx) => updateAgent(trx, s.agentId, { secretRefs: { llm } }));
    expect(await refusedSoon(() => w.resolve(s, [tts]))).toMatchObject({
      code: Code.PermissionDenied,
      message: expect.stringContaining('does not reference'),
    });
    expect((await w.resolve(s)).secrets.map((x) => x.secretId)).toEqual([llm]);
    // Ended through tenant-data (the other edge, the orchestrator, an operator): refused as soon
    // as the commit's notification arrives.
    await withTenant(w.tenantDb, tenantA, (trx) => endConversation(trx, s.conversationId, 'ended elsewhere'));
    expect(await refusedSoon(() => w.resolve(s))).toMatchObject({
      code: Code.FailedPrecondition,
      message: expect.stringContaining('live'),
    });
  });

  it("never hands a connection's tool credential to a conversation, even when an agent names it as its LLM key", async () => {
    // Otherwise a key that may edit agents (but not secrets) could send it to a provider URL of its choosing.
    const tool = await w.put(tenantA, 'gate-tool', 'sk-gate-tool-0006', 'tool');
    const s = await w.scene(tenantA, { llm: tool });
    expect(await codeOf(w.resolve(s))).toMatchObject({
      code: Code.PermissionDenied,
      message: expect.stringContaining("is a connection's tool credential"),
    });
    expect(await w.outbox(tenantA, 'secret.resolve')).not.toContainEqual(expect.objectContaining({ targetId: tool }));
  });

  it('fails to decrypt a ciphertext copied to another row or another tenant', async () => {
    const source = await w.put(tenantA, 'swap-source', 'sk-swap-source-0006');
    const target = await w.put(tenantA, 'swap-target', 'sk-swap-target-0007');
    const foreign = await w.put(tenantB, 'swap-foreign', 'sk-swap-foreign-0008');
    const sA = await w.scene(tenantA, { llm: target });
    const sB = await w.scene(tenantB, { llm: foreign });
    const copy = (from: string, to: string) =>
      w.admin.query(
        `update parley_secrets.secret_versions t set ciphertext = f.ciphertext, nonce = f.nonce, wrapped_data_key = f.wrapped_data_key, kek_version = f.kek_version
           from parley_secrets.secret_versions f where f.secret_id = $1 and f.state = 'current' and t.secret_id = $2 and t.state = 'current'`,
        [from, to],
      );
    await copy(source, target);
    const sameTenant = await codeOf(w.resolve(sA));
    expect(sameTenant).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining('does not decrypt') });
    expect(sameTenant.message).not.toContain('sk-swap');
    await copy(source, foreign);
    expect((await codeOf(w.resolve(sB))).code).toBe(Code.FailedPrecondition);
  });

  it('fails closed when Vault is down: cached data keys serve only within their use limit, everything else is UNAVAILABLE', async () => {
    const cached = await w.put(tenantA, 'outage-cached', 'sk-outage-cached-0009');
    const cold = await w.put(tenantA, 'outage-cold', 'sk-outage-cold-0010');
    const s = await w.scene(tenantA, { llm: cached, stt: cold });
    expect((await w.resolve(s, [cached])).secrets[0]?.value).toBe('sk-outage-cached-0009'); // use 1 loads the key
    w.stack.vault.setMode('down');
    try {
      const cold1 = await codeOf(w.resolve(s, [cold]));
      expect(cold1.code).toBe(Code.Unavailable);
      expect(cold1.message).toMatch(/vault/i);
      for (let use = 2; use <= MAX_USES; use++) expect((await w.resolve(s, [cached])).secrets[0]?.value).toBe('sk-outage-cached-0009');
      expect((await codeOf(w.resolve(s, [cached]))).code).toBe(Code.Unavailable);
      expect(
        (await codeOf(w.edge.putSecret({ name: 'outage-put', providerKind: 'llm', value: 'sk-outage-put-0011' }, as(tenantA)))).code,
      ).toBe(Code.Unavailable);
    } finally {
      w.stack.vault.setMode('up');
    }
    expect((await w.resolve(s, [cold])).secrets[0]?.value).toBe('sk-outage-cold-0010');
  });

  it('logs in to Vault again when its token has expired', async () => {
    const logins = w.stack.vault.callCount('auth/kubernetes/login');
    w.stack.vault.expireTokens();
    const id = await w.put(tenantA, 'after-expiry', 'sk-after-expiry-0012');
    expect(id).not.toBe('');
    expect(w.stack.vault.callCount('auth/kubernetes/login')).toBeGreaterThan(logins);
  });

  it('destroys a rotated-away version after the grace period (scheduled sweep)', async () => {
    const id = await w.put(tenantA, 'grace', 'sk-grace-v1-0013');
    await w.edge.rotateSecret({ secretId: id, value: 'sk-grace-v2-0014' }, as(tenantA));
    const versions = () =>
      withTenant(w.secretsDb, tenantA, (trx) =>
        trx.selectFrom('secret_versions').select(['version', 'state']).where('secret_id', '=', id).orderBy('version').execute(),
      );
    expect(await versions()).toEqual([
      { version: 1, state: 'retired' },
      { version: 2, state: 'current' },
    ]);
    const deadline = Date.now() + 30_000;
    while ((await versions()).length > 1 && Date.now() < deadline) await sleep(100);
    expect(await versions()).toEqual([{ version: 2, state: 'current' }]);
  });

  it("shreds a subject key for lifecycle only; the subject's ciphertexts no longer decrypt", async () => {
    const tenantData = await w.stack.clientAs('tenant-data', SecretsService);
    const lifecycle = await w.stack.clientAs('lifecycle', SecretsService);
    const subjectId = randomUUID();
    const otherSubject = randomUUID();
    const scope = { tenantId: tenantA, subjectId, purpose: 'transcript-turn:1' };
    const { ciphertext } = await tenantData.encryptForSubject({ ...scope, plaintext: Buffer.from('my phone is 555-0100') });
    const other = await tenantData.encryptForSubject({ ...scope, subjectId: otherSubject, plaintext: Buffer.from('someone else') });
    expect(Buffer.from((await tenantData.decryptForSubject({ ...scope, ciphertext })).plaintext).toString()).toBe('my phone is 555-0100');
    expect((await codeOf(tenantData.decryptForSubject({ ...scope, purpose: 'transcript-turn:2', ciphertext }))).code).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(w.edge.shredSubjectKey({ tenantId: tenantA, subjectId }))).toMatchObject({ code: Code.PermissionDenied });
    expect(await codeOf(tenantData.shredSubjectKey({ tenantId: tenantA, subjectId }))).toMatchObject({ code: Code.PermissionDenied });
    expect((await lifecycle.shredSubjectKey({ tenantId: tenantA, subjectId })).shredded).toBe(true);
    expect((await lifecycle.shredSubjectKey({ tenantId: tenantA, subjectId })).shredded).toBe(false);
    expect(await codeOf(tenantData.decryptForSubject({ ...scope, ciphertext }))).toMatchObject({
      code: Code.FailedPrecondition,
      message: expect.stringContaining('shredded'),
    });
    expect((await codeOf(tenantData.encryptForSubject({ ...scope, plaintext: Buffer.from('new') }))).code).toBe(Code.FailedPrecondition);
    const row = await withTenant(w.secretsDb, tenantA, (trx) =>
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
    const s = await w.scene(tenantB, { llm: await w.put(tenantB, 'kek-rotation', 'sk-kek-rotation-0015') });
    await w.orchestrator.encryptForSubject({ tenantId: tenantB, subjectId: randomUUID(), purpose: '', plaintext: Buffer.from('x') });
    for (let i = 0; i < 4; i++) await w.put(tenantB, `kek-filler-${i}`, `sk-kek-filler-${i}-0016`);
    // Another replica of the service, as an operator's CLI run is: own KEK client, same Vault and database.
    const kek: KekProvider = await createKekProvider(
      loadKekProviderConfig({
        PARLEY_KEK_PROVIDER: 'vault',
        PARLEY_VAULT_ADDR: w.stack.vault.address,
        PARLEY_VAULT_AUTH: 'token',
        PARLEY_VAULT_TOKEN_FILE: await tokenFile(w.stack.vault.issueToken({ ttlSeconds: 600, policies: ['parley-secrets'] })),
      }),
      silentLogger,
    );
    // Hold the service's maintenance lock so its schedule cannot finish the run for us.
    const lock = await w.admin.connect();
    await lock.query('select pg_advisory_lock($1)', [0x70_73_65_63]);
    try {
      const abort = new AbortController();
      let batches = 0;
      const deps: MaintenanceDeps = {
        db: w.secretsDb,
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
        const rotations = (await w.outbox(t, 'kek.rotate')).filter((e) => e.targetId === `v${latest}`);
        expect(rotations, t).toHaveLength(1);
        expect(rotations[0]).toMatchObject({
          actorKind: 'system',
          actorId: 'parley-secrets rotate-kek',
          targetType: 'kek',
          description: { kek_version: { from: before.latestVersion, to: latest }, provider: 'vault-transit' },
        });
      }
      expect(w.stack.vault.keyVersions('parley-kek')?.latestVersion).toBe(latest);
      const left = async () => {
        let n = 0;
        for (const t of await listKeyTenants(w.secretsDb)) n += await countKeysBelow(w.secretsDb, t, latest);
        return n;
      };
      expect(await left()).toBeGreaterThan(0);
      expect(w.stack.vault.keyVersions('parley-kek')?.minDecryptionVersion).toBe(before.minDecryptionVersion);
      const report = await finishRewrap({ ...deps, rewrapBatchSize: 50 }, { raiseMinDecryptionVersion: true });
      expect(report.remaining).toBe(0);
      expect(await left()).toBe(0);
      expect(w.stack.vault.keyVersions('parley-kek')?.minDecryptionVersion).toBe(latest);
      const kekVersions = await w.admin.query<{ v: number }>(
        `select kek_version as v from parley_secrets.secret_versions union all select kek_version from parley_secrets.subject_keys where kek_version is not null`,
      );
      expect(new Set(kekVersions.rows.map((r) => r.v))).toEqual(new Set([latest]));
    } finally {
      await lock.query('select pg_advisory_unlock($1)', [0x70_73_65_63]);
      lock.release();
      await kek.close();
    }
    // Every secret still resolves, now through data keys wrapped by the newest KEK version only.
    expect((await w.resolve(s)).secrets[0]?.value).toBe('sk-kek-rotation-0015');
  });
});

async function tokenFile(token: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'parley-token-')), 'token');
  await writeFile(path, token, { mode: 0o600 });
  return path;
}
