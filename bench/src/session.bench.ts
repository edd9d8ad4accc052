// Session tokens: verification per second — our verifier (JWKS + claim cache), the same verifier
// with its claim cache off, and jose's jwtVerify, on the same tokens in the same run, with raw
// Ed25519 verify as the ceiling — and CreateSession through the edge end to end (Connect over
// HTTP/2 TLS → edge → identity → tenant-data, real Postgres) at 1 and 50 concurrent callers,
// against its single-process floor in the same run: the same work in this one process with no
// hop, interceptor or log line — the API key checked against a cache (a SHA-256 and a map look-up,
// as the edge's cache does), the agent read with tenant-data's store function, one Ed25519
// signature, the session row inserted in a tenant transaction as identity's role, same Postgres.
import { createHash, generateKeyPairSync, randomBytes, randomUUID, verify as ed25519Verify } from 'node:crypto';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { createServiceDb, loadServiceMigrations, migrateAll, serviceDatabaseUrl, withTenant } from '@parley/db';
import { freePort } from '@parley/devstack';
import { peerUrlVariable, SERVICE_NAMES, type ServiceName } from '@parley/platform';
import { AgentService } from '@parley/proto/parley/api/v1/agents_pb.js';
import { SessionService } from '@parley/proto/parley/api/v1/sessions_pb.js';
import { JwksCache, SessionTokenVerifier, signSessionToken } from '@parley/session-token';
import { getAgent, type TenantDataDb } from '@parley/tenant-data';
import { createTestPki } from '@parley/test/pki';
import { sql } from 'kysely';
import { exportJWK, importJWK, jwtVerify } from 'jose';
import pg from 'pg';
import { startServiceProcesses } from './service-processes.js';
import { closedLoop, figure, type LoadResult, type SummaryFigure } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** VerifyRate is one verifier's verifications per second (wall clock) and per CPU-second of this process. */
export interface VerifyRate {
  readonly verifier: string;
  readonly perSecond: number;
  /** perCpuSecond is verifications per second of this process's CPU time (every thread, so GC included): less moved by the machine's other load. */
  readonly perCpuSecond: number;
}

/** ClientComparison is CreateSession at the top concurrency with each internal client implementation, and the CPU per call it cost. */
export interface ClientComparison {
  /** client is PARLEY_INTERNAL_CLIENT of the edge and identity. */
  readonly client: string;
  readonly load: LoadResult;
  /**
   * cpuMsPerCall is each process's CPU time (all its threads, from /proc/<pid>/stat) per
   * CreateSession: the bench process (the Connect client and the load loop), edge, identity,
   * tenant-data and Postgres (the postmaster and every process under it).
   */
  readonly cpuMsPerCall: Readonly<Record<string, number>>;
}

/** SessionBenchResult is the JSON the session benchmark writes. */
export interface SessionBenchResult {
  readonly tokens: number;
  readonly verify: VerifyRate[];
  /**
   * uncachedVsRawCpu is the median over the rounds of (our verifier without its claim cache) /
   * (raw Ed25519 verify) in verifications per CPU-second, each round's two measured back to back.
   */
  readonly uncachedVsRawCpu: number;
  /** cachedVsJose and uncachedVsJose are our rates over jose's. */
  readonly cachedVsJose: number;
  readonly uncachedVsJose: number;
  /** createSession is the end-to-end load at each concurrency, floor is the single-process floor's. */
  readonly createSession: LoadResult[];
  readonly floor: LoadResult[];
  /** floorCpuMsPerCall is the floor's CPU per call at the top concurrency: the bench process and Postgres. */
  readonly floorCpuMsPerCall: Readonly<Record<string, number>>;
  /** clients compares the internal client implementations at the top concurrency, the default first. */
  readonly clients: ClientComparison[];
  /** summary holds the issue-15 figures against their goals. */
  readonly summary: Record<string, SummaryFigure>;
}

/** RoundRate is one round of one verifier: verifications per wall-clock second and per CPU-second. */
interface RoundRate {
  readonly perSecond: number;
  readonly perCpuSecond: number;
}

async function rate(seconds: number, tokens: readonly string[], op: (token: string) => Promise<unknown> | unknown): Promise<RoundRate> {
  for (const t of tokens.slice(0, 200)) await op(t); // warm-up
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) await op(tokens[(n + i) % tokens.length]!);
    n += 100;
  }
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: Math.round(n / ((performance.now() - t0) / 1000)), perCpuSecond: Math.round(n / ((cpu.user + cpu.system) / 1e6)) };
}

/** median is the middle of some numbers (0 for none). */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function verifyRates(seconds: number, count: number): Promise<{ rates: VerifyRate[]; uncachedVsRawCpu: number }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const kid = 'bench-key';
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', alg: 'EdDSA' };
  const jwks = JSON.stringify({ keys: [jwk] });
  const issuer = 'parley:identity';
  const audience = 'parley:voice-orchestrator';
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    const { token } = await signSessionToken(privateKey, kid, {
      issuer,
      audience,
      tenant: randomUUID(),
      agent: randomUUID(),
      sid: randomUUID(),
      jti: randomBytes(18).toString('base64url'),
      ttlSeconds: 900,
    });
    tokens.push(token);
  }
  const ours = (claimCacheSize: number) =>
    new SessionTokenVerifier({ issuer, audience, claimCacheSize, jwks: new JwksCache({ source: async () => jwks }) });
  const cached = ours(count * 2);
  const uncached = ours(0);
  const joseKey = await importJWK(jwk, 'EdDSA');
  // The ceiling is the primitive alone: each token's signing input and signature decoded before
  // the clock starts, and the verifiers' own key object (the JWKS cache's is made the same way,
  // once per key). An array index, not a look-up by token, so that it carries no cost of its own.
  const raw = tokens.map((t) => {
    const i = t.lastIndexOf('.');
    return { input: Buffer.from(t.slice(0, i)), sig: Buffer.from(t.slice(i + 1), 'base64url') };
  });
  const rawIndex = new Map(tokens.map((t, i) => [t, i]));
  const verifiers: [string, (t: string) => unknown][] = [
    ['ours (JWKS + claim cache)', (t) => cached.verify(t)],
    ['ours (claim cache off)', (t) => uncached.verify(t)],
    ['jose jwtVerify', (t) => jwtVerify(t, joseKey, { issuer, audience, algorithms: ['EdDSA'] })],
    [
      'raw Ed25519 verify (ceiling)',
      (t) => {
        const r = raw[rawIndex.get(t)!]!;
        return ed25519Verify(null, r.input, publicKey, r.sig);
      },
    ],
  ];
  // Interleaved short rounds, the median per verifier: on a shared machine the load moves within
  // seconds, and one long window per verifier would compare different moments. The figure against
  // the ceiling is the median of each round's own ratio in CPU time, its two verifiers measured
  // back to back: neither the machine's other load nor its drift between rounds moves it much.
  const rounds = 7;
  const rates = new Map<string, RoundRate[]>();
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const [name, op] of verifiers) rates.set(name, [...(rates.get(name) ?? []), await rate(seconds / rounds, tokens, op)]);
    const ourRound = rates.get('ours (claim cache off)')?.at(-1);
    const rawRound = rates.get('raw Ed25519 verify (ceiling)')?.at(-1);
    if (ourRound !== undefined && rawRound !== undefined) ratios.push(ourRound.perCpuSecond / rawRound.perCpuSecond);
  }
  return {
    rates: verifiers.map(([verifier]) => ({
      verifier,
      perSecond: median((rates.get(verifier) ?? []).map((r) => r.perSecond)),
      perCpuSecond: median((rates.get(verifier) ?? []).map((r) => r.perCpuSecond)),
    })),
    uncachedVsRawCpu: Number(median(ratios).toFixed(3)),
  };
}

/** cpuNs is a process's CPU time so far, every thread (user + system, Linux /proc/<pid>/stat), 0 where unknown. */
async function cpuNs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Clock ticks: 100 per second on Linux (USER_HZ).
    return (Number(fields[11]) + Number(fields[12])) * 1e7;
  } catch {
    return 0;
  }
}

/** parentOf is a process's parent pid (Linux /proc/<pid>/stat), undefined where unknown. */
async function parentOf(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * postgresCpuNs is the CPU time so far of the bench's Postgres, per process: its postmaster (the
 * parent of a backend) and every process under it. cpuPerCall counts only the processes alive at
 * both ends: a backend that exits (a restarted service's pool) takes its CPU with it.
 */
async function postgresCpuNs(postmaster: number | undefined): Promise<Map<number, number>> {
  if (postmaster === undefined) return new Map();
  const pids = (await readdir('/proc')).filter((d) => /^[0-9]+$/.test(d)).map(Number);
  const children = await Promise.all(pids.map(async (pid) => ((await parentOf(pid)) === postmaster ? pid : undefined)));
  const all = [postmaster, ...children.filter((pid): pid is number => pid !== undefined)];
  return new Map(await Promise.all(all.map(async (pid) => [pid, await cpuNs(pid)] as const)));
}

/** postmasterOf is the pid of the Postgres server behind a URL (the parent of one of its backends), undefined where not local. */
async function postmasterOf(adminUrl: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    return rows[0] === undefined ? undefined : await parentOf(rows[0].pid);
  } finally {
    await client.end();
  }
}

/** CpuMeter is a named group of processes whose CPU time so far (ns, every thread) can be read, by pid. */
interface CpuMeter {
  readonly name: string;
  cpuNs(): Promise<Map<number, number>>;
}

/** processMeter reads a child process's CPU time from /proc (its pid is read at each call: it may have been restarted). */
function processMeter(p: { name: string; pid: number | undefined }): CpuMeter {
  return { name: p.name, cpuNs: async () => (p.pid === undefined ? new Map() : new Map([[p.pid, await cpuNs(p.pid)]])) };
}

/** selfMeter reads this (the bench) process's CPU time: the load loop and, for Parley, the Connect client. */
const selfMeter: CpuMeter = {
  name: 'bench process',
  cpuNs: () => {
    const u = process.cpuUsage();
    return Promise.resolve(new Map([[process.pid, (u.user + u.system) * 1e3]]));
  },
};

/**
 * cpuPerCall runs `calls` operations from `concurrency` callers and returns the CPU each process
 * spent per operation: CPU time, unlike a rate, is not moved much by the other load on the machine.
 */
async function cpuPerCall(
  meters: readonly CpuMeter[],
  op: () => Promise<unknown>,
  calls: number,
  concurrency: number,
): Promise<Record<string, number>> {
  const before = await Promise.all(meters.map((m) => m.cpuNs()));
  let left = calls;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        await op();
      }
    }),
  );
  const after = await Promise.all(meters.map((m) => m.cpuNs()));
  const spent = (i: number) => {
    let ns = 0;
    for (const [pid, end] of after[i]!) {
      const start = before[i]!.get(pid);
      if (start !== undefined) ns += end - start;
    }
    return ns;
  };
  return Object.fromEntries(meters.map((m, i) => [m.name, Number((spent(i) / 1e6 / calls).toFixed(3))]));
}

async function createSessionLoad(
  adminUrl: string,
  seconds: number,
  concurrency: readonly number[],
): Promise<{ parley: LoadResult[]; floor: LoadResult[]; floorCpuMsPerCall: Record<string, number>; clients: ClientComparison[] }> {
  const rolePasswords: Partial<Record<ServiceName, string>> = {};
  for (const s of SERVICE_NAMES) rolePasswords[s] = randomBytes(18).toString('base64url');
  await migrateAll(adminUrl, { services: await loadServiceMigrations({ workspaceRoot: root }), rolePasswords });
  const dir = await mkdtemp(join(tmpdir(), 'parley-session-bench-'));
  const pki = await createTestPki();
  const names = ['tenant-data', 'identity', 'edge'] as const;
  const ports = Object.fromEntries(
    await Promise.all(names.map(async (n) => [n, { port: await freePort(), health: await freePort() }])),
  ) as Record<(typeof names)[number], { port: number; health: number }>;
  const publicPort = await freePort();
  const peers = Object.fromEntries(names.map((n) => [peerUrlVariable(n), `https://localhost:${ports[n].port}`]));
  const bootstrapFile = join(dir, 'bootstrap.json');
  const extra: Record<(typeof names)[number], Record<string, string>> = {
    'tenant-data': {
      DATABASE_URL: serviceDatabaseUrl(adminUrl, 'tenant-data', rolePasswords['tenant-data']),
      PARLEY_SUBJECT_HASH_PEPPER: randomBytes(32).toString('base64'),
      // A required peer (agent writes check secret_refs); CreateSession writes no agent, so nothing listens here.
      PARLEY_SECRETS_URL: `https://localhost:${await freePort()}`,
    },
    identity: {
      DATABASE_URL: serviceDatabaseUrl(adminUrl, 'identity', rolePasswords.identity),
      PARLEY_API_KEY_PEPPER: randomBytes(32).toString('base64'),
      PARLEY_KEK_PROVIDER: 'local',
      PARLEY_LOCAL_KEYRING_PATH: join(dir, 'keyring.json'),
      PARLEY_BOOTSTRAP_FILE: bootstrapFile,
    },
    edge: {
      PARLEY_PUBLIC_PORT: String(publicPort),
      // The edge refuses to start without every peer it forwards to; CreateSession never calls
      // secrets, audit or integrations, so nothing listens at these addresses.
      PARLEY_SECRETS_URL: `https://localhost:${await freePort()}`,
      PARLEY_AUDIT_URL: `https://localhost:${await freePort()}`,
      PARLEY_INTEGRATIONS_URL: `https://localhost:${await freePort()}`,
      PARLEY_LIFECYCLE_URL: `https://localhost:${await freePort()}`,
    },
  };
  const procs = startServiceProcesses({ names, pki, ports, peers, extra });
  const floorDbs: { destroy(): Promise<void> }[] = [];
  try {
    await Promise.all(procs.map((p) => p.waitReady(60_000)));
    const { apiKey } = JSON.parse(await readFile(bootstrapFile, 'utf8')) as { apiKey: string };
    const transport = createConnectTransport({
      baseUrl: `https://localhost:${publicPort}`,
      httpVersion: '2',
      nodeOptions: { ca: await readFile(pki.paths.caCert) },
    });
    const { tenantId } = JSON.parse(await readFile(bootstrapFile, 'utf8')) as { tenantId: string };
    const headers = { authorization: `Bearer ${apiKey}` };
    const agent = await createClient(AgentService, transport).createAgent({ name: 'Bench agent' }, { headers });
    const sessions = createClient(SessionService, transport);
    const agentId = agent.agent?.id ?? '';

    // The floor: its own pools (services' default size), its own signing key.
    const tenantDb = createServiceDb<TenantDataDb>(extra['tenant-data'].DATABASE_URL!, 'tenant-data');
    const identityDb = createServiceDb<unknown>(extra.identity.DATABASE_URL!, 'identity');
    floorDbs.push(tenantDb, identityDb);
    const { privateKey } = generateKeyPairSync('ed25519');
    const keyCache = new Map([[createHash('sha256').update(apiKey).digest('base64url'), { tenantId }]]);
    const floorCreate = async () => {
      const principal = keyCache.get(createHash('sha256').update(apiKey).digest('base64url'));
      if (principal === undefined) throw new Error('unknown key');
      const found = await withTenant(tenantDb, principal.tenantId, (trx) => getAgent(trx, agentId));
      const sid = randomUUID();
      const jti = randomBytes(18).toString('base64url');
      const { token, claims } = await signSessionToken(privateKey, 'floor', {
        issuer: 'parley:identity',
        audience: 'parley:voice-orchestrator',
        tenant: principal.tenantId,
        agent: found.id,
        sid,
        jti,
        ttlSeconds: 900,
      });
      await withTenant(identityDb, principal.tenantId, (trx) =>
        sql`insert into sessions (id, jti, agent_id, subject_ref, origin, created_by_key_id, expires_at)
            values (${sid}, ${jti}, ${agentId}, ${null}, ${null}, ${null}, ${new Date(claims.exp * 1000)}) returning *`.execute(trx),
      );
      return token;
    };
    const parley: LoadResult[] = [];
    const floor: LoadResult[] = [];
    const create = () => sessions.createSession({ agentId }, { headers });
    for (const c of concurrency) {
      parley.push(await closedLoop(create, { concurrency: c, seconds, warmupSeconds: 2 }));
      floor.push(await closedLoop(floorCreate, { concurrency: c, seconds, warmupSeconds: 2 }));
    }
    // The same load with each internal client implementation (PARLEY_INTERNAL_CLIENT) of the
    // edge and identity, each restarted in place first so that both run equally warm.
    const top = Math.max(...concurrency);
    const postmaster = await postmasterOf(adminUrl);
    const postgres: CpuMeter = { name: 'postgres', cpuNs: () => postgresCpuNs(postmaster) };
    const floorCpuMsPerCall = await cpuPerCall([selfMeter, postgres], floorCreate, 2_000, top);
    const measured = procs.filter((p) => p.name === 'edge' || p.name === 'identity');
    const meters = [selfMeter, ...procs.map(processMeter), postgres];
    const clients: ClientComparison[] = [];
    for (const client of ['grpc-js', 'connect-node']) {
      for (const p of measured) await p.stop();
      for (const p of measured) p.start({ PARLEY_INTERNAL_CLIENT: client });
      await Promise.all(measured.map((p) => p.waitReady(60_000)));
      clients.push({
        client,
        load: await closedLoop(create, { concurrency: top, seconds, warmupSeconds: 2 }),
        cpuMsPerCall: await cpuPerCall(meters, create, 2_000, top),
      });
    }
    return { parley, floor, floorCpuMsPerCall, clients };
  } finally {
    for (const d of floorDbs) await d.destroy();
    await Promise.all(procs.map((p) => p.stop()));
  }
}

/** runSessionBenchmark measures verification rates and CreateSession end to end. */
export async function runSessionBenchmark(options: {
  adminUrl: string;
  seconds: number;
  concurrency: readonly number[];
}): Promise<SessionBenchResult> {
  const tokens = 1_000;
  const { rates: verify, uncachedVsRawCpu } = await verifyRates(options.seconds, tokens);
  const by = (prefix: string) => verify.find((v) => v.verifier.startsWith(prefix))!.perSecond;
  const { parley, floor, floorCpuMsPerCall, clients } = await createSessionLoad(options.adminUrl, options.seconds, options.concurrency);
  const low = Math.min(...options.concurrency);
  const top = Math.max(...options.concurrency);
  const at = (rows: LoadResult[], c: number) => rows.find((r) => r.concurrency === c) as LoadResult;
  const throughputRatio = at(parley, top).rps / at(floor, top).rps;
  const p99Ratio = at(parley, low).p99Ms / at(floor, low).p99Ms;
  return {
    tokens,
    verify,
    uncachedVsRawCpu,
    cachedVsJose: Number((by('ours (JWKS') / by('jose')).toFixed(2)),
    uncachedVsJose: Number((by('ours (claim') / by('jose')).toFixed(2)),
    createSession: parley,
    floor,
    floorCpuMsPerCall,
    clients,
    summary: {
      'token verify without the claim cache / raw Ed25519 verify (CPU time, median of paired rounds)': figure(
        uncachedVsRawCpu,
        '×',
        '>= 0.9',
        uncachedVsRawCpu >= 0.9,
      ),
      'token verify without the claim cache / raw Ed25519 verify (wall clock, medians)': figure(
        by('ours (claim') / by('raw'),
        '×',
        'reported',
        true,
      ),
      [`CreateSession throughput at ${top} callers / floor`]: figure(throughputRatio, '×', '>= 0.5', throughputRatio >= 0.5),
      [`CreateSession p99 at ${top} callers`]: figure(at(parley, top).p99Ms, 'ms', '< 50', at(parley, top).p99Ms < 50),
      [`CreateSession p99 at ${low} caller / floor`]: figure(p99Ratio, '×', 'reported', true),
      [`CreateSession throughput at ${top} callers, internal clients on connect-node / floor`]: figure(
        (clients[1]?.load.rps ?? 0) / at(floor, top).rps,
        '×',
        'reported',
        true,
      ),
    },
  };
}
