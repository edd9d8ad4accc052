// Lifecycle benchmark. Purge: transcript turns over 100 tenants in a scratch database, half of them
// past a 30-day rule; a steady read/write load (append a turn, read a conversation's latest turns,
// through withTenant as the tenant-data role) runs first alone and then while lifecycle's purge
// (purgeWorkspace per tenant, through tenant-data's PurgeExpired handler on an in-memory Connect
// transport, batches of PARLEY_PURGE_BATCH_SIZE's default) deletes the old half; the load's p99 in
// both phases is reported side by side, with the purge's rows per second. Forget: one subject with
// 1,000 conversations, timed first through the saga's two steps whose work grows with the
// conversations (inventory: ListConversations; tenant_data: ForgetSubject) as the baseline, then
// as the whole saga (runForget: every step recorded on the job in lifecycle's table, the subject
// key shredded, the person's sessions, webhook deliveries and access events deleted, the receipt
// signed by a real audit service) for a second subject of the same size, in the same run. Every
// peer is the owning service's own handler or store on an in-memory Connect transport; the secrets
// shred is its store function (the handler adds one audit-outbox insert).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createClient, createRouterTransport } from '@connectrpc/connect';
import { createAuditService, SealedKeyCheckpointSigner, type AuditDb } from '@parley/audit';
import { migrations as auditMigrations } from '@parley/audit/migrations';
import { createDb, migrateAll, roleFor, schemaFor, withTenant } from '@parley/db';
import { LocalKeyringKekProvider, silentLogger } from '@parley/envelope';
import { forgetSubjectSessions, type IdentityDb } from '@parley/identity';
import { migrations as identityMigrations } from '@parley/identity/migrations';
import { integrationsRetentionHandlers, type IntegrationsDb } from '@parley/integrations';
import { migrations as integrationsMigrations } from '@parley/integrations/migrations';
import {
  claimJob,
  insertForgetJob,
  loadLifecycleConfig,
  purgeWorkspace,
  runForget,
  type ForgetPeers,
  type LifecycleDb,
  type PurgePeers,
} from '@parley/lifecycle';
import { migrations as lifecycleMigrations } from '@parley/lifecycle/migrations';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { createSubjectRetentionHandlers, shredSubjectKey, type SecretsDatabase } from '@parley/secrets';
import { migrations as secretsMigrations } from '@parley/secrets/migrations';
import { createTenantDataService, migrations } from '@parley/tenant-data';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { percentile } from './stats.js';

const SCHEMA = schemaFor('tenant-data');

/** LifecycleBenchOptions sizes the run. */
export interface LifecycleBenchOptions {
  readonly adminUrl: string;
  /** turns is the number of transcript turns seeded over the tenants (half of them past the rule). */
  readonly turns: number;
  readonly tenants?: number;
  /** seconds is the length of the load-alone phase. */
  readonly seconds: number;
  readonly concurrency?: number;
  readonly forgetConversations?: number;
}

/** PhaseLoad is the load's latency in one phase. */
export interface PhaseLoad {
  readonly requests: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** LifecycleBenchResult is JSON-serialisable. */
export interface LifecycleBenchResult {
  readonly turns: number;
  readonly tenants: number;
  readonly seedSeconds: number;
  readonly batchSize: number;
  readonly purged: number;
  readonly purgeSeconds: number;
  readonly purgeRowsPerSecond: number;
  readonly loadAlone: PhaseLoad;
  readonly loadDuringPurge: PhaseLoad;
  readonly p99Ratio: number;
  readonly forget: { readonly conversations: number; readonly turns: number; readonly seconds: number };
  /** saga is the whole forget saga for a subject of the same size; ratio is its time over forget.seconds. */
  readonly saga: { readonly seconds: number; readonly ratio: number; readonly receipt: Record<string, unknown> };
  readonly postgres: string;
}

const round = (n: number, d = 3) => Number(n.toFixed(d));

function phase(samples: number[]): PhaseLoad {
  const sorted = Float64Array.from(samples).sort();
  return { requests: samples.length, p50Ms: round(percentile(sorted, 0.5)), p99Ms: round(percentile(sorted, 0.99)) };
}

// Runs `concurrency` callers back to back until `until` says stop; returns every call's latency.
async function loadUntil(op: (i: number) => Promise<unknown>, concurrency: number, until: () => boolean): Promise<number[]> {
  const samples: number[] = [];
  let i = 0;
  const worker = async () => {
    while (!until()) {
      const t0 = performance.now();
      await op(i++);
      samples.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return samples;
}

// Runs the forget saga for one subject with each owning service's handler (or store) on an
// in-memory transport and lifecycle's job table, and times it from the claimed job to the signed receipt.
async function timeSaga(
  url: string,
  tenantData: ForgetPeers['tenantData'],
  tenantId: string,
  subjectId: string,
): Promise<{ seconds: number; receipt: Record<string, unknown> }> {
  const as = <DB>(service: 'lifecycle' | 'secrets' | 'identity' | 'integrations' | 'audit') =>
    createDb<DB>(url, { max: 4, role: roleFor(service), searchPath: schemaFor(service) });
  const dbs = {
    lifecycle: as<LifecycleDb>('lifecycle'),
    secrets: as<SecretsDatabase>('secrets'),
    identity: as<IdentityDb>('identity'),
    integrations: as<IntegrationsDb>('integrations'),
    audit: as<AuditDb>('audit'),
  };
  const dir = await mkdtemp(join(tmpdir(), 'parley-lifecycle-bench-'));
  try {
    const kek = await LocalKeyringKekProvider.open({ path: join(dir, 'keyring.json'), logger: silentLogger });
    const signer = await SealedKeyCheckpointSigner.open({ path: join(dir, 'key.json'), kek });
    const audit = createAuditService({
      db: dbs.audit,
      signer,
      policy: { everyEvents: 1000, everyMs: 60_000 },
      logger: { ...silentLogger, error() {} },
    });
    const secrets = {
      ...createSubjectRetentionHandlers(dbs.secrets),
      async shredSubjectKey(req: { tenantId: string; subjectId: string }) {
        const r = await withTenant(dbs.secrets, req.tenantId, (trx) => shredSubjectKey(trx, req.subjectId));
        return { shredded: r.destroyedKey !== undefined, alreadyShredded: !r.changed };
      },
    };
    const identity = {
      async forgetSubjectSessions(req: { tenantId: string; subjectRef: string; subjectId: string }) {
        return {
          deleted: await forgetSubjectSessions(dbs.identity, req.tenantId, {
            ...(req.subjectRef === '' ? {} : { subjectRef: req.subjectRef }),
            ...(req.subjectId === '' ? {} : { subjectId: req.subjectId }),
          }),
        };
      },
    };
    const peers: ForgetPeers = {
      tenantData,
      secrets: createClient(
        SecretsService,
        createRouterTransport(({ service }) => service(SecretsService, secrets)),
      ),
      identity: createClient(
        IdentityService,
        createRouterTransport(({ service }) => service(IdentityService, identity)),
      ),
      integrations: createClient(
        IntegrationsService,
        createRouterTransport(({ service }) => service(IntegrationsService, integrationsRetentionHandlers(dbs.integrations))),
      ),
      audit: createClient(
        AuditService,
        createRouterTransport(({ service }) => service(AuditService, audit)),
      ),
    };
    const started = performance.now();
    const job = await withTenant(dbs.lifecycle, tenantId, async (trx) => {
      const { job: j } = await insertForgetJob(trx, subjectId, 'bench');
      return claimJob(trx, j.id, 300_000);
    });
    const done = await runForget({ db: dbs.lifecycle, peers }, job!, job!.lease_token!);
    const seconds = round((performance.now() - started) / 1000);
    return { seconds, receipt: JSON.parse(String(done.steps.receipt)) as Record<string, unknown> };
  } finally {
    for (const db of Object.values(dbs)) await db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

/** runLifecycleBenchmark seeds a scratch database, measures the purge beside a steady load, and a forget of 1,000 conversations. */
export async function runLifecycleBenchmark(options: LifecycleBenchOptions): Promise<LifecycleBenchResult> {
  const tenants = options.tenants ?? 100;
  const concurrency = options.concurrency ?? 8;
  const forgetConversations = options.forgetConversations ?? 1_000;
  const conversationsPerTenant = 100;
  const turnsPerConversation = Math.max(2, Math.floor(options.turns / tenants / conversationsPerTenant));
  const name = `parley_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: options.adminUrl });
  await admin.connect();
  await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  const url = new URL(options.adminUrl);
  url.pathname = `/${name}`;
  const scratchUrl = url.toString();
  let owner: Kysely<unknown> | undefined;
  let service: Kysely<never> | undefined;
  try {
    await migrateAll(scratchUrl, {
      services: [migrations, lifecycleMigrations, secretsMigrations, identityMigrations, integrationsMigrations, auditMigrations],
    });
    owner = createDb<unknown>(scratchUrl, { max: 1 });
    service = createDb<never>(scratchUrl, { max: concurrency + 4, role: roleFor('tenant-data'), searchPath: SCHEMA });
    const t = (table: string) => sql.table(`${SCHEMA}.${table}`);
    const started = performance.now();
    // As a superuser (RLS bypassed), set-based: old conversations (ended 60 days ago, turns as old) and young ones.
    await sql`create temp table bench_tenants as select gen_random_uuid() as tenant_id, gen_random_uuid() as agent_id from generate_series(1, ${tenants})`.execute(
      owner,
    );
    await sql`insert into ${t('workspaces')} (tenant_id, name) select tenant_id, 'bench' from bench_tenants`.execute(owner);
    await sql`insert into ${t('agents')} (tenant_id, id, name, guardrail_policy) select tenant_id, agent_id, 'bench', '{"version":1}' from bench_tenants`.execute(
      owner,
    );
    await sql`insert into ${t('conversations')} (tenant_id, id, agent_id, state, started_at, ended_at)
              select b.tenant_id, gen_random_uuid(), b.agent_id, 'ended',
                     now() - case when g % 2 = 0 then interval '61 days' else interval '1 hour' end,
                     now() - case when g % 2 = 0 then interval '60 days' else interval '30 minutes' end
                from bench_tenants b cross join generate_series(1, ${conversationsPerTenant}) g`.execute(owner);
    await sql`insert into ${t('transcript_turns')} (tenant_id, conversation_id, seq, role, text_redacted, created_at)
              select c.tenant_id, c.id, s, 'user', 'a redacted line of a transcript, about this long', c.started_at
                from ${t('conversations')} c cross join generate_series(0, ${turnsPerConversation - 1}) s`.execute(owner);
    await sql`analyze`.execute(owner);
    const seedSeconds = round((performance.now() - started) / 1000, 1);
    const { rows: fixtures } = await sql<{ tenant_id: string; young: string[] }>`
      select tenant_id, array_agg(id) filter (where ended_at > now() - interval '1 day') as young
        from ${t('conversations')} group by tenant_id`.execute(owner);
    const { rows: counted } = await sql<{ n: string }>`select count(*) as n from ${t('transcript_turns')}`.execute(owner);
    const seeded = Number(counted[0]?.n);

    const impl = createTenantDataService({
      db: service as never,
      subjectHashPepper: randomBytes(32),
      secrets: { missingSecrets: () => Promise.resolve([]) },
    });
    const tenantData = createClient(
      TenantDataService,
      createRouterTransport(({ service: s }) => s(TenantDataService, impl)),
    );
    // The load: append a turn to a young conversation and read its latest 20 turns, one tenant transaction each.
    let seq = 1_000_000;
    const op = async (i: number) => {
      const f = fixtures[i % fixtures.length]!;
      const conversation = f.young[(i * 7919) % f.young.length]!;
      const mySeq = seq++;
      await withTenant(service!, f.tenant_id, async (trx) => {
        await sql`insert into transcript_turns (conversation_id, seq, role, text_redacted) values (${conversation}, ${mySeq}, 'assistant', 'a reply')`.execute(
          trx,
        );
      });
      await withTenant(service!, f.tenant_id, (trx) =>
        sql`select seq, text_redacted from transcript_turns where conversation_id = ${conversation} order by seq desc limit 20`.execute(
          trx,
        ),
      );
    };
    await loadUntil(
      op,
      concurrency,
      (
        (end) => () =>
          performance.now() > end
      )(performance.now() + 1_000),
    ); // warm-up
    const alone = await loadUntil(
      op,
      concurrency,
      (
        (end) => () =>
          performance.now() > end
      )(performance.now() + options.seconds * 1000),
    );

    const config = loadLifecycleConfig({ DATABASE_URL: 'postgres://unused@localhost/parley' });
    const unused = () => Promise.reject(new Error('not part of this benchmark'));
    const peers: PurgePeers = {
      tenantData,
      integrations: { purgeDeliveryLog: unused },
      audit: { purgeEvents: unused },
      identity: { purgeExpiredSessions: unused, purgeAuthFailures: unused },
    } as unknown as PurgePeers;
    const deps = {
      db: owner as never,
      peers,
      defaults: config.defaults,
      batchSize: config.purgeBatchSize,
      authFailureRetentionMs: config.authFailureRetentionMs,
      logger: { info: () => undefined, warn: () => undefined },
    };
    let purging = true;
    let purged = 0;
    const purgeStarted = performance.now();
    const purge = (async () => {
      try {
        for (const f of fixtures) {
          const r = await purgeWorkspace(deps, {
            tenantId: f.tenant_id,
            rules: new Map([['transcript', 30]]),
            heldSubjectIds: [],
            heldConversationIds: [],
          });
          if (r.error !== '') throw new Error(r.error);
          purged += r.counts.transcript ?? 0;
        }
      } finally {
        purging = false;
      }
    })();
    const during = await loadUntil(op, concurrency, () => !purging);
    await purge;
    const purgeSeconds = (performance.now() - purgeStarted) / 1000;

    // Forget: a subject with forgetConversations conversations of 5 turns each, a data key, a
    // session, and per conversation an access event and a webhook delivery (as a superuser, set-based).
    const f0 = fixtures[0]!;
    const endpoint = randomUUID();
    await sql`insert into parley_integrations.webhook_endpoints (tenant_id, id, url, event_types)
              values (${f0.tenant_id}, ${endpoint}, 'https://hooks.example.com/bench', '{conversation.ended}')`.execute(owner);
    const seedSubject = async (externalRef: string): Promise<string> => {
      const subject = randomUUID();
      await sql`insert into ${t('subjects')} (tenant_id, id, external_ref) values (${f0.tenant_id}, ${subject}, ${externalRef})`.execute(
        owner!,
      );
      await sql`insert into ${t('conversations')} (tenant_id, id, agent_id, subject_id, state, ended_at)
                select a.tenant_id, gen_random_uuid(), a.id, ${subject}, 'ended', now()
                  from ${t('agents')} a cross join generate_series(1, ${forgetConversations}) where a.tenant_id = ${f0.tenant_id}`.execute(
        owner!,
      );
      await sql`insert into ${t('transcript_turns')} (tenant_id, conversation_id, seq, role, text_redacted)
                select c.tenant_id, c.id, s, 'user', 'sealed:v1:AAAA' from ${t('conversations')} c cross join generate_series(0, 4) s
                 where c.subject_id = ${subject}`.execute(owner!);
      await sql`insert into parley_secrets.subject_keys (tenant_id, subject_id, wrapped_key, kek_version)
                values (${f0.tenant_id}, ${subject}, 'local:v1:bench', 1)`.execute(owner!);
      await sql`insert into parley_identity.sessions (tenant_id, id, jti, agent_id, subject_ref, expires_at)
                values (${f0.tenant_id}, gen_random_uuid(), ${randomBytes(16).toString('hex')}, ${randomUUID()}, ${externalRef}, now() + interval '1 hour')`.execute(
        owner!,
      );
      await sql`insert into parley_secrets.access_events (tenant_id, caller, conversation_id, agent_id, secret_id, secret_version, purposes)
                select c.tenant_id, 'voice-orchestrator', c.id, c.agent_id, gen_random_uuid(), 1, '{llm}'
                  from ${t('conversations')} c where c.subject_id = ${subject}`.execute(owner!);
      await sql`insert into parley_integrations.webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, payload, state, expires_at)
                select c.tenant_id, gen_random_uuid(), ${endpoint}, gen_random_uuid(), 'conversation.ended',
                       json_build_object('type', 'conversation.ended', 'data', json_build_object('conversation_id', c.id))::text, 'delivered', now()
                  from ${t('conversations')} c where c.subject_id = ${subject}`.execute(owner!);
      return subject;
    };
    const subject = await seedSubject('bench-forget');
    const sagaSubject = await seedSubject('bench-forget-saga');
    await sql`analyze`.execute(owner);
    const forgetStarted = performance.now();
    let listed = 0;
    let pageToken = '';
    do {
      const r = await tenantData.listConversations({ tenantId: f0.tenant_id, subjectId: subject, pageSize: 500, pageToken });
      listed += r.conversations.length;
      pageToken = r.nextPageToken;
    } while (pageToken !== '');
    const forgot = await tenantData.forgetSubject({ tenantId: f0.tenant_id, subjectId: subject });
    const forgetSeconds = round((performance.now() - forgetStarted) / 1000);
    if (listed !== forgetConversations || forgot.conversations !== forgetConversations)
      throw new Error('the forget did not see every conversation');

    // The whole saga, for the second subject.
    const saga = await timeSaga(scratchUrl, tenantData, f0.tenant_id, sagaSubject);
    if ((saga.receipt.removed as { step: string; count?: number }[]).find((r) => r.step === 'access_events')?.count !== forgetConversations)
      throw new Error('the saga did not delete every access event');

    const { rows: version } = await sql<{ v: string }>`select current_setting('server_version') as v`.execute(owner);
    const a = phase(alone);
    const d = phase(during);
    return {
      turns: seeded,
      tenants,
      seedSeconds,
      batchSize: config.purgeBatchSize,
      purged,
      purgeSeconds: round(purgeSeconds, 2),
      purgeRowsPerSecond: Math.round(purged / purgeSeconds),
      loadAlone: a,
      loadDuringPurge: d,
      p99Ratio: round(d.p99Ms / a.p99Ms, 2),
      forget: { conversations: forgot.conversations, turns: forgot.transcriptTurns, seconds: forgetSeconds },
      saga: { seconds: saga.seconds, ratio: round(saga.seconds / forgetSeconds, 2), receipt: saga.receipt },
      postgres: `Postgres ${version[0]?.v ?? '?'}`,
    };
  } finally {
    await service?.destroy();
    await owner?.destroy();
    await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
    await admin.end();
  }
}
