// Audit log benchmark. Appends: AppendEvents (validation, per-tenant head lock, RFC 8785
// canonical JSON + SHA-256 chain, insert, checkpoint signing every 1,000 events; appends to one
// tenant chain group-committed) as deployed: the audit service's own process (dist/bundle/main.js,
// served by the kernel's server over mTLS) called through the production internal client
// (createServiceClient, @grpc/grpc-js), on a real Postgres, 8 concurrent writers, one event per
// call, for one tenant (every append contends for the same head lock) and for 100 tenants, and 8
// relays each sending calls of 100 events over 100 tenants (what the outbox relays send). For
// comparison with sessions 5-7, the one-chain cell is also measured the old way: the handlers in
// the bench process over an in-memory Connect transport. Floor in the same run: the same rows
// inserted in this process with no chain (no lock, no hash) and no RPC, in the same transactions
// (one per call and tenant), i.e. what an unchained audit table costs.
// Verification: the chain verifier in-process over an N-event chain with a signed checkpoint
// every 1,000 events (N = 1,000,000 by default; BENCH_AUDIT_VERIFY_EVENTS).
import { generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient, createRouterTransport, type Client } from '@connectrpc/connect';
import {
  appendBatchToChain,
  appendIfHeadUnmoved,
  ChainVerifier,
  checkpointStatement,
  createAuditService,
  createChainAppender,
  eventHash,
  forTenant,
  GENESIS_HASH,
  keyIdOf,
  MAX_APPEND_BATCH,
  SealedKeyCheckpointSigner,
  toNewEvent,
  type AuditDb,
  type ChainEvent,
} from '@parley/audit';
import { migrations } from '@parley/audit/migrations';
import { createDb, migrateAll, roleFor, serviceDatabaseUrl, withTenant } from '@parley/db';
import { freePort, type ServiceProcess } from '@parley/devstack';
import { LocalKeyringKekProvider, silentLogger } from '@parley/envelope';
import { CertificateSource, createServiceClient } from '@parley/platform';
import { AuditEventSchema, AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { createTestPki } from '@parley/test/pki';
import { sql } from 'kysely';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { startServiceProcesses } from './service-processes.js';
import { closedLoop, cpuMs, figure, type LoadResult, type SummaryFigure } from './stats.js';

/** AuditBenchOptions sizes the run. */
export interface AuditBenchOptions {
  adminUrl: string;
  seconds: number;
  /** verifyEvents is the chain length for the verification measurement. */
  verifyEvents: number;
  /** oneChainOnly measures only the one-chain scenario (for a quick before/after; the suite runs all three). */
  oneChainOnly?: boolean;
}

/** AuditBenchResult is JSON-serialisable. */
export interface AuditBenchResult {
  /** chained and unchained count calls; eventsPerSecond is events (calls × eventsPerCall). */
  appends: {
    scenario: string;
    tenants: number;
    eventsPerCall: number;
    chained: LoadResult;
    unchained: LoadResult;
    /** cpu is CPU time per event of the deployed audit process, of its writers and of the floor's process (less moved by other load than rates). */
    cpu: Cpu;
    /**
     * ceiling is the one-chain cell with nothing between a commit and the next batch: 8 callers
     * of the service's own chain appender in this process (no RPC, no handler), on a chain of
     * their own, so it is what the chain's serial commits alone allow.
     */
    ceiling?: LoadResult;
    /** inMemory is the one-chain cell measured as in sessions 5-7 (handlers in this process, in-memory Connect transport), for comparison. */
    inMemory?: LoadResult;
    chainedEventsPerSecond: number;
    unchainedEventsPerSecond: number;
    ratio: number;
  }[];
  /** summary holds the issue-15 figures against their goals. */
  summary: Record<string, SummaryFigure>;
  verify: { events: number; checkpoints: number; seconds: number; eventsPerSecond: number; projectedSecondsFor1M: number };
}

const WRITERS = 8;
const SCHEMA = 'parley_audit';

function wireEvent(tenantId: string) {
  return create(AuditEventSchema, {
    id: uuidv7(),
    tenantId,
    actorKind: 'member',
    actorId: 'mem_bench',
    action: 'agent.update',
    targetType: 'agent',
    targetId: randomUUID(),
    outcome: 'success',
    description: { name: { from: 'support-bot', to: 'support-bot-2' }, prompt: { from: '[redacted]', to: '[redacted]' } },
    sourceAddress: '198.51.100.7',
    userAgent: 'parley-cli/1.0',
    traceId: randomBytes(16).toString('hex'),
    occurredAt: timestampFromDate(new Date()),
  });
}

/** DeployedAudit is the audit service process and the production internal client the writers call it through. */
interface DeployedAudit {
  readonly client: Pick<Client<typeof AuditService>, 'appendEvents'>;
  readonly pid: number | undefined;
}

/** Cpu is CPU time per event (user + system, ms) of the process that does the work. */
interface Cpu {
  /** deployedMsPerEvent is the audit service process's, over the deployed cell (its warm-up included). */
  deployedMsPerEvent: number;
  /** floorMsPerEvent is the bench process's over the floor cell, which does all the floor's work. */
  floorMsPerEvent: number;
  /** writersMsPerEvent is the bench process's over the deployed cell: the writers' side of the call (making the event, the grpc-js client). */
  writersMsPerEvent: number;
}

async function measureAppends(
  url: string,
  seconds: number,
  tenants: string[],
  eventsPerCall: number,
  deployed: DeployedAudit,
  alsoInMemory: boolean,
): Promise<{ chained: LoadResult; unchained: LoadResult; inMemory?: LoadResult; ceiling?: LoadResult; cpu: Cpu }> {
  // The admin logs in and assumes the audit role: RLS and the grants apply as for the service.
  const db = createDb<AuditDb>(url, { max: WRITERS + 2, role: roleFor('audit'), searchPath: SCHEMA });
  const owner = createDb<unknown>(url, { max: WRITERS + 2, searchPath: SCHEMA });
  const dir = await mkdtemp(join(tmpdir(), 'parley-audit-bench-'));
  try {
    const kek = await LocalKeyringKekProvider.open({ path: join(dir, 'keyring.json'), logger: silentLogger });
    const signer = await SealedKeyCheckpointSigner.open({ path: join(dir, 'key.json'), kek });
    const policy = { everyEvents: 1000, everyMs: 60_000 };
    const impl = createAuditService({ db, signer, policy, logger: { ...silentLogger, error() {} } });
    const inMemoryClient = createClient(
      AuditService,
      createRouterTransport(({ service }) => service(AuditService, impl)),
    );
    let n = 0;
    let events = 0;
    const pick = () => tenants[n++ % tenants.length] as string;
    const call = () => {
      events += eventsPerCall;
      return Array.from({ length: eventsPerCall }, () => wireEvent(pick()));
    };
    const deployedCpu0 = await cpuMs(deployed.pid);
    const writersCpu0 = process.cpuUsage();
    const chained = await closedLoop(() => deployed.client.appendEvents({ events: call() }), {
      concurrency: WRITERS,
      seconds,
      warmupSeconds: 1,
    });
    const writersCpu = process.cpuUsage(writersCpu0);
    const deployedMsPerEvent = ((await cpuMs(deployed.pid)) - deployedCpu0) / events;
    const writersMsPerEvent = (writersCpu.user + writersCpu.system) / 1000 / events;
    // Its own tenants: two appenders on one chain would be two replicas, each relinking under the lock.
    const own = tenants.map(() => randomUUID());
    const inMemory = alsoInMemory
      ? await closedLoop(
          () =>
            inMemoryClient.appendEvents({
              events: Array.from({ length: eventsPerCall }, () => wireEvent(own[n++ % own.length] as string)),
            }),
          { concurrency: WRITERS, seconds, warmupSeconds: 1 },
        )
      : undefined;
    // The same writer the service builds (the one-statement append, the locking path for checkpoints).
    const appender = createChainAppender(
      {
        appendIfHeadUnmoved: (tenantId, from, batch) => appendIfHeadUnmoved(db, tenantId, from, batch),
        appendLocked: (tenantId, appends) => forTenant(db, tenantId, (trx) => appendBatchToChain(trx, tenantId, appends, signer, policy)),
      },
      policy,
      MAX_APPEND_BATCH,
    );
    const alone = randomUUID();
    const ceiling = alsoInMemory
      ? await closedLoop(() => appender.append(alone, [toNewEvent(wireEvent(alone), 0)]), {
          concurrency: WRITERS,
          seconds,
          warmupSeconds: 1,
        })
      : undefined;
    // Floor: same columns into a plain table, no head lock, no hashing.
    // With the log's indexes (its secondary indexes and the unique id), without its chain key.
    await sql`create table if not exists bench_plain (like parley_audit.events including defaults including indexes)`.execute(owner);
    await sql`alter table bench_plain drop constraint if exists bench_plain_pkey`.execute(owner);
    events = 0;
    const floorCpu0 = process.cpuUsage();
    const unchained = await closedLoop(
      async () => {
        // One transaction per tenant of the call, side by side, as the audit service does.
        const byTenant = new Map<string, ReturnType<typeof wireEvent>[]>();
        for (const e of call()) byTenant.set(e.tenantId, [...(byTenant.get(e.tenantId) ?? []), e]);
        await Promise.all(
          [...byTenant].map(([tenantId, events]) =>
            withTenant(owner, tenantId, (trx) =>
              sql`insert into bench_plain (tenant_id, seq, id, occurred_at, recorded_at, actor_kind, actor_id, action, target_type, target_id, outcome, description, source_address, user_agent, trace_id, prev_hash, hash)
                  values ${sql.join(
                    events.map(
                      (e) =>
                        sql`(${e.tenantId}, 1, ${e.id}, now(), now(), ${e.actorKind}, ${e.actorId}, ${e.action}, ${e.targetType}, ${e.targetId}, ${e.outcome}, ${JSON.stringify(e.description)}, ${e.sourceAddress}, ${e.userAgent}, ${e.traceId}, ${GENESIS_HASH}, ${GENESIS_HASH})`,
                    ),
                  )}`.execute(trx),
            ),
          ),
        );
      },
      { concurrency: WRITERS, seconds, warmupSeconds: 1 },
    );
    const floorCpu = process.cpuUsage(floorCpu0);
    const cpu = { deployedMsPerEvent, writersMsPerEvent, floorMsPerEvent: (floorCpu.user + floorCpu.system) / 1000 / events };
    return { chained, unchained, ...(inMemory !== undefined ? { inMemory } : {}), ...(ceiling !== undefined ? { ceiling } : {}), cpu };
  } finally {
    await db.destroy();
    await owner.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

function measureVerify(events: number): AuditBenchResult['verify'] {
  const tenantId = randomUUID();
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdOf(publicKey);
  const verifier = new ChainVerifier(tenantId, { seq: 0, hash: GENESIS_HASH }, new Map([[keyId, publicKey]]));
  // The chain is built in chunks (not timed) and each chunk verified (timed), so a million events
  // never sit in memory at once, as with the streaming export.
  const CHUNK = 50_000;
  let prevHash = GENESIS_HASH;
  let checkpoints = 0;
  let timed = 0;
  const base = Date.now();
  for (let start = 1; start <= events; start += CHUNK) {
    const chunk: ChainEvent[] = [];
    const cps = [];
    for (let seq = start; seq < start + CHUNK && seq <= events; seq++) {
      const at = new Date(base + seq).toISOString();
      const e = {
        tenantId,
        seq,
        id: uuidv7(),
        occurredAt: at,
        recordedAt: at,
        actorKind: 'member',
        actorId: 'mem_bench',
        action: 'agent.update',
        targetType: 'agent',
        targetId: `agent_${seq % 97}`,
        outcome: 'success',
        description: { name: { from: 'a', to: 'b' } },
        sourceAddress: '198.51.100.7',
        userAgent: 'parley-cli/1.0',
        traceId: '',
        prevHash,
      };
      const hash = eventHash(e);
      chunk.push({ ...e, hash });
      prevHash = hash;
      if (seq % 1000 === 0) {
        const cp = { tenantId, seq, hash, signedAt: at };
        cps.push({ ...cp, keyId, signature: sign(null, checkpointStatement(cp), privateKey).toString('base64') });
      }
    }
    const t0 = performance.now();
    for (const cp of cps) verifier.addCheckpoint(cp);
    for (const e of chunk) verifier.addEvent(e);
    timed += performance.now() - t0;
    checkpoints += cps.length;
  }
  const t0 = performance.now();
  const result = verifier.finish(events);
  timed += performance.now() - t0;
  const seconds = timed / 1000;
  if (!result.ok) throw new Error(`benchmark chain failed to verify: ${result.reason}`);
  const eventsPerSecond = Math.round(events / seconds);
  return {
    events,
    checkpoints,
    seconds: Number(seconds.toFixed(2)),
    eventsPerSecond,
    projectedSecondsFor1M: Number((1_000_000 / eventsPerSecond).toFixed(1)),
  };
}

/** runAuditBenchmark measures appends (1 and 100 tenants) and chain verification in a throwaway database. */
export async function runAuditBenchmark(options: AuditBenchOptions): Promise<AuditBenchResult> {
  const name = `parley_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: options.adminUrl });
  await admin.connect();
  await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  const url = new URL(options.adminUrl);
  url.pathname = `/${name}`;
  const dir = await mkdtemp(join(tmpdir(), 'parley-audit-bench-process-'));
  const procs: ServiceProcess[] = [];
  const closers: { close(): void }[] = [];
  try {
    const password = randomBytes(18).toString('base64url');
    await migrateAll(url.toString(), { services: [migrations], rolePasswords: { audit: password } });
    // The audit service as deployed: its own process, mTLS, a witness file, default pool; the
    // writers call it through the internal client every peer service uses (grpc-js).
    const pki = await createTestPki();
    const ports = { audit: { port: await freePort(), health: await freePort() } };
    procs.push(
      ...startServiceProcesses({
        names: ['audit'],
        pki,
        ports,
        peers: {},
        extra: {
          audit: {
            DATABASE_URL: serviceDatabaseUrl(url.toString(), 'audit', password),
            PARLEY_KEK_PROVIDER: 'local',
            PARLEY_LOCAL_KEYRING_PATH: join(dir, 'keyring.json'),
            PARLEY_AUDIT_SIGNING_KEY_PATH: join(dir, 'signing-key.json'),
            PARLEY_AUDIT_WITNESS_PATH: join(dir, 'witness.ndjson'),
          },
        },
      }),
    );
    await Promise.all(procs.map((p) => p.waitReady()));
    const certificates = await CertificateSource.open(pki.files('tenant-data'));
    closers.push(certificates);
    const deployed = createServiceClient(AuditService, {
      baseUrl: `https://localhost:${ports.audit.port}`,
      certificates,
      expect: 'audit',
      trustDomain: 'parley.local',
    });
    closers.push(deployed);
    const appends: AuditBenchResult['appends'] = [];
    const scenarios = [
      [1, 1],
      [100, 1],
      [100, 100],
    ] as const;
    for (const [tenants, eventsPerCall] of options.oneChainOnly === true ? scenarios.slice(0, 1) : scenarios) {
      const ids = Array.from({ length: tenants }, () => randomUUID());
      const r = await measureAppends(
        url.toString(),
        options.seconds,
        ids,
        eventsPerCall,
        { client: deployed, pid: procs[0]?.pid },
        tenants === 1,
      );
      appends.push({
        scenario: `${WRITERS} ${eventsPerCall === 1 ? 'writers' : 'relays'}, ${tenants} tenant${tenants === 1 ? '' : 's'}, ${eventsPerCall} event${eventsPerCall === 1 ? '' : 's'} per call`,
        tenants,
        eventsPerCall,
        ...r,
        chainedEventsPerSecond: r.chained.rps * eventsPerCall,
        unchainedEventsPerSecond: r.unchained.rps * eventsPerCall,
        ratio: Number((r.chained.rps / r.unchained.rps).toFixed(2)),
      });
    }
    const [one, many, batched] = appends as [(typeof appends)[0], (typeof appends)[0] | undefined, (typeof appends)[0] | undefined];
    const inMemory = one.inMemory?.rps ?? 0;
    const ceiling = one.ceiling?.rps ?? 0;
    const summary = {
      'one tenant chain, 8 writers': figure(one.chainedEventsPerSecond, 'events/s', '>= 2000', one.chainedEventsPerSecond >= 2000),
      'one tenant chain, 8 writers / unchained floor': figure(one.ratio, '×', '>= 0.8', one.ratio >= 0.8),
      'one tenant chain, 8 writers, in-memory Connect transport (sessions 5-7)': figure(inMemory, 'events/s', 'reported', true),
      'one tenant chain, 8 writers, in-memory Connect transport / unchained floor': figure(
        inMemory / one.unchained.rps,
        '×',
        'reported',
        true,
      ),
      'one tenant chain, 8 callers of the chain appender itself (no RPC, no handler)': figure(ceiling, 'events/s', 'reported', true),
      'one tenant chain, the chain appender itself / unchained floor': figure(ceiling / one.unchained.rps, '×', 'reported', true),
      'one tenant chain: audit process CPU per event': figure(one.cpu.deployedMsPerEvent, 'ms', 'reported', true),
      "one tenant chain: the writers' process CPU per event (deployed cell)": figure(one.cpu.writersMsPerEvent, 'ms', 'reported', true),
      'one tenant chain: floor process CPU per event': figure(one.cpu.floorMsPerEvent, 'ms', 'reported', true),
      // Left out when only the one-chain cells ran (oneChainOnly).
      ...(many === undefined || batched === undefined
        ? {}
        : {
            '100 tenants, 8 writers, 1 event per call': figure(many.chainedEventsPerSecond, 'events/s', 'reported', true),
            '100 tenants, 8 writers / unchained floor': figure(many.ratio, '×', 'reported', true),
            '100 tenants, relay batches of 100': figure(
              batched.chainedEventsPerSecond,
              'events/s',
              '>= 10000',
              batched.chainedEventsPerSecond >= 10_000,
            ),
            '100 tenants, relay batches / unchained floor': figure(batched.ratio, '×', 'reported', true),
          }),
    };
    return { appends, summary, verify: measureVerify(options.verifyEvents) };
  } finally {
    // The client before the certificates it was built from.
    for (const c of closers.reverse()) c.close();
    await Promise.all(procs.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
    await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
    await admin.end();
  }
}
