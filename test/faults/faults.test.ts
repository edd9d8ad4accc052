// Faults under load (issue 18): with a steady mix of agent updates, secret puts and sessions that
// resolve a provider key, each service is SIGKILLed and restarted in turn (audit stays down for a
// while first), Postgres is stopped and started, the KEK provider (the Vault stand-in) is paused,
// and a peer is frozen (SIGSTOP) past its callers' deadline. Per fault: callers only ever see clear, retryable errors (never
// INTERNAL, never a stack trace), the stack recovers, and afterwards every acknowledged write is
// present and every acknowledged privileged action's audit event is in its chain, which verifies.
// Outages are a few seconds (not the minute of the issue) to keep the suite inside the CI budget;
// `npm run bench -- soak` is where long runs belong. The figures go to
// .parley/test-output/faults-report.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVICE_NAMES } from '@parley/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INTERNAL_DEADLINE_MS, startFaultStack, type FaultStack } from './fault-stack.js';
import { isClear, MixedLoad, type Outcome } from '../src/mixed-load.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const REPORT = join(root, '.parley', 'test-output', 'faults-report.json');

/** How long each outage lasts here (short: CI budget). */
const POSTGRES_DOWN_MS = 4_000;
const KEK_DOWN_MS = 4_000;
const AUDIT_DOWN_MS = 6_000;
/** FROZEN_MS outlasts the stack's internal deadline: the frozen peer's callers meet it, as they would a hung pod. */
const FROZEN_MS = INTERNAL_DEADLINE_MS + 1_500;
/** RECOVERY_LIMIT_MS is how long every kind of call may take to succeed again once a fault is cleared. */
const RECOVERY_LIMIT_MS = 30_000;

interface FaultReport {
  fault: string;
  outageMs: number;
  calls: number;
  errorsSeen: Record<string, number>;
  unclearErrors: { kind: string; result: string; message?: string }[];
  recoveryMs: number | null;
  acknowledgedWritesLost?: number;
  auditEventsLost?: number;
}

let stack: FaultStack;
let load: MixedLoad;
const reports: FaultReport[] = [];
const windows: { fault: string; from: number; to: number }[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitRecovered(since: number): Promise<number | null> {
  const deadline = since + RECOVERY_LIMIT_MS;
  while (Date.now() < deadline) {
    const after = load.recoveredAfter(since);
    if (after !== undefined) return after;
    await sleep(100);
  }
  return null;
}

/** runFault injects a fault, clears it, waits for every kind of call to succeed again, and reports the window. */
async function runFault(fault: string, inject: () => Promise<void>, clear: () => Promise<void>): Promise<FaultReport> {
  const from = Date.now();
  await inject();
  await clear();
  const cleared = Date.now();
  const recoveryMs = await waitRecovered(cleared);
  const to = Date.now();
  windows.push({ fault, from, to });
  const seen = load.outcomes.filter((o) => o.at >= from && o.at <= to);
  const errorsSeen: Record<string, number> = {};
  for (const o of seen.filter((x) => x.result !== 'ok'))
    errorsSeen[`${o.kind} ${o.result}`] = (errorsSeen[`${o.kind} ${o.result}`] ?? 0) + 1;
  const report: FaultReport = {
    fault,
    outageMs: cleared - from,
    calls: seen.length,
    errorsSeen,
    unclearErrors: seen.filter((o: Outcome) => !isClear(o)).slice(0, 10),
    recoveryMs,
  };
  reports.push(report);
  return report;
}

beforeAll(async () => {
  stack = await startFaultStack();
  load = new MixedLoad(stack);
  const agents = await load.seedAgents('fault-llm-key', ['fault-updated-1', 'fault-updated-2', 'fault-session']);
  load.start({ updateAgents: agents.slice(0, 2), sessionAgent: agents[2]! });
  // A steady state first: every kind of call has succeeded.
  const ready = await waitRecovered(Date.now());
  if (ready === null) throw new Error(`the load never ran cleanly: ${JSON.stringify(load.outcomes.slice(-10))}`);
}, 180_000);

afterAll(async () => {
  await load?.stop();
  await mkdir(join(root, '.parley', 'test-output'), { recursive: true });
  await writeFile(REPORT, `${JSON.stringify({ generatedAt: new Date().toISOString(), faults: reports }, null, 2)}\n`);
  // The services' own lines, for reading a failure (warn and above: PARLEY_LOG_LEVEL=warn).
  if (stack !== undefined) await writeFile(REPORT.replace(/\.json$/, '.log'), `${stack.logs.join('\n')}\n`);
  await stack?.stop();
}, 60_000);

describe('faults under a steady mixed load', () => {
  it('SIGKILL of each service in turn, restarted at once: only clear errors, and the stack recovers', async () => {
    let acknowledgedWhileAuditDown = 0;
    for (const name of SERVICE_NAMES) {
      const proc = stack.process(name);
      // audit stays down for a while: the services' outboxes hold its events and drain later.
      const downMs = name === 'audit' ? AUDIT_DOWN_MS : 500;
      await runFault(
        name === 'audit' ? `SIGKILL audit, down ${AUDIT_DOWN_MS / 1000} s` : `SIGKILL ${name}`,
        async () => {
          proc.signal('SIGKILL');
          await proc.exited;
          const acknowledgedBefore = load.ledger.secrets.length;
          // Callers meet the dead service for a moment, as they would before an orchestrator restarts it.
          await sleep(downMs);
          if (name === 'audit') {
            // A loaded machine's load may not have had a put answered in those seconds: audit stays
            // down until one is (up to 30 s more), so that the check below is about audit, not speed.
            const deadline = Date.now() + 30_000;
            while (load.ledger.secrets.length === acknowledgedBefore && Date.now() < deadline) await sleep(100);
            acknowledgedWhileAuditDown = load.ledger.secrets.length - acknowledgedBefore;
          }
        },
        async () => {
          proc.start();
          await proc.waitReady(30_000);
        },
      );
    }
    // Asserted after the round, so that one service's fault does not hide the next ones' figures.
    const killed = reports.filter((r) => r.fault.startsWith('SIGKILL'));
    expect(killed.flatMap((r) => r.unclearErrors.map((e) => ({ fault: r.fault, ...e })))).toEqual([]);
    expect(killed.filter((r) => r.recoveryMs === null).map((r) => r.fault)).toEqual([]);
    // Privileged writes went on while audit was away (their events are checked at the end).
    expect(acknowledgedWhileAuditDown).toBeGreaterThan(0);
  }, 300_000);

  it('Postgres stopped and started again: only clear errors, and the stack recovers', async () => {
    const report = await runFault(
      'Postgres stopped',
      async () => {
        await stack.stopPostgres();
        await sleep(POSTGRES_DOWN_MS);
      },
      () => stack.startPostgres(),
    );
    expect(report.unclearErrors).toEqual([]);
    expect(report.recoveryMs).not.toBeNull();
  }, 120_000);

  it('the KEK provider (Vault) paused: secret writes fail clearly, and recover when it answers again', async () => {
    const report = await runFault(
      'KEK provider paused',
      async () => {
        stack.vault.setMode('hang');
        await sleep(KEK_DOWN_MS);
      },
      async () => stack.vault.setMode('up'),
    );
    expect(report.unclearErrors).toEqual([]);
    // The outage was seen: a secret put needs a fresh data key from the KEK provider.
    expect(Object.keys(report.errorsSeen).some((k) => k.startsWith('secret.put'))).toBe(true);
    expect(report.recoveryMs).not.toBeNull();
  }, 120_000);

  it("a slow peer (tenant-data frozen with SIGSTOP past its callers' deadline): only clear errors, and the stack recovers", async () => {
    const peer = stack.process('tenant-data');
    const report = await runFault(
      'tenant-data frozen (SIGSTOP)',
      async () => {
        peer.signal('SIGSTOP');
        await sleep(FROZEN_MS);
      },
      async () => peer.signal('SIGCONT'),
    );
    expect(report.unclearErrors).toEqual([]);
    expect(report.recoveryMs).not.toBeNull();
  }, 120_000);

  it('afterwards: every acknowledged write is present, every audit event is in its chain, and the chain verifies', async () => {
    await load.stop();
    const { ledger } = load;
    const faultOf = (at: number) => windows.find((w) => at >= w.from && at <= w.to)?.fault ?? 'steady';
    const lostWrites: { what: string; id: string; fault: string }[] = [];
    const lostAudit: { what: string; id: string; fault: string }[] = [];

    const secretIds = ledger.secrets.map((s) => s.id);
    const foundSecrets = new Set(
      (await stack.sql<{ id: string }>('select id::text from parley_secrets.secrets where id = any($1::uuid[])', [secretIds])).map(
        (r) => r.id,
      ),
    );
    for (const s of ledger.secrets) if (!foundSecrets.has(s.id)) lostWrites.push({ what: 'secret', id: s.id, fault: faultOf(s.at) });

    const conversationIds = ledger.conversations.map((c) => c.id);
    const foundConversations = new Set(
      (
        await stack.sql<{ id: string }>('select id::text from parley_tenant_data.conversations where id = any($1::uuid[])', [
          conversationIds,
        ])
      ).map((r) => r.id),
    );
    for (const c of ledger.conversations)
      if (!foundConversations.has(c.id)) lostWrites.push({ what: 'conversation', id: c.id, fault: faultOf(c.at) });

    // An agent ends with its last acknowledged name, or a later one whose call failed after it committed.
    for (const [agentId, { sent, acked }] of ledger.agents) {
      const [row] = await stack.sql<{ name: string }>('select name from parley_tenant_data.agents where id = $1', [agentId]);
      const last = acked.at(-1);
      if (last === undefined) continue;
      const allowed = sent.slice(sent.indexOf(last.id));
      if (row === undefined || !allowed.includes(row.name)) lostWrites.push({ what: 'agent name', id: last.id, fault: faultOf(last.at) });
    }

    // Every acknowledged privileged action's audit event arrives (the outboxes drain into the chain).
    const expected = {
      create: new Set(secretIds),
      resolve: new Set(conversationIds),
      update: new Set([...ledger.agents.values()].flatMap((a) => a.acked.map((x) => x.id))),
    };
    const missing = async () => {
      const events = await stack.sql<{ action: string; target_id: string; conversation: string | null; name: string | null }>(
        `select action, target_id, description->>'conversation_id' as conversation, description->'name'->>'to' as name
           from parley_audit.events where tenant_id = $1 and action in ('secret.create', 'secret.resolve', 'agent.update')`,
        [stack.tenantId],
      );
      const seen = new Set(
        events.map(
          (e) => `${e.action} ${e.action === 'secret.create' ? e.target_id : e.action === 'secret.resolve' ? e.conversation : e.name}`,
        ),
      );
      return [
        ...[...expected.create].filter((id) => !seen.has(`secret.create ${id}`)).map((id) => ({ what: 'secret.create', id })),
        ...[...expected.resolve].filter((id) => !seen.has(`secret.resolve ${id}`)).map((id) => ({ what: 'secret.resolve', id })),
        ...[...expected.update].filter((id) => !seen.has(`agent.update ${id}`)).map((id) => ({ what: 'agent.update', id })),
      ];
    };
    let stillMissing = await missing();
    const drainDeadline = Date.now() + 30_000;
    while (stillMissing.length > 0 && Date.now() < drainDeadline) {
      await sleep(500);
      stillMissing = await missing();
    }
    const ackTime = new Map<string, number>([
      ...ledger.secrets.map((s) => [s.id, s.at] as const),
      ...ledger.conversations.map((c) => [c.id, c.at] as const),
      ...[...ledger.agents.values()].flatMap((a) => a.acked.map((x) => [x.id, x.at] as const)),
    ]);
    for (const m of stillMissing) lostAudit.push({ ...m, fault: faultOf(ackTime.get(m.id) ?? 0) });

    for (const r of reports) {
      r.acknowledgedWritesLost = lostWrites.filter((l) => l.fault === r.fault).length;
      r.auditEventsLost = lostAudit.filter((l) => l.fault === r.fault).length;
    }
    const outboxes = await stack.sql<{ schema: string }>(
      "select table_schema as schema from information_schema.tables where table_name = 'audit_outbox'",
    );
    const outboxRows = async () =>
      (
        await stack.sql<{ n: string }>(outboxes.map((o) => `select count(*) as n from ${o.schema}.audit_outbox`).join(' union all '))
      ).reduce((n, r) => n + Number(r.n), 0);
    let pending = await outboxRows();
    while (pending > 0 && Date.now() < drainDeadline) {
      await sleep(500);
      pending = await outboxRows();
    }
    const verify = await load.call('/parley.api.v1.AuditService/VerifyLog', {});

    expect(ledger.secrets.length, 'secret puts acknowledged').toBeGreaterThan(10);
    expect(ledger.conversations.length, 'conversations started').toBeGreaterThan(10);
    expect(expected.update.size, 'agent updates acknowledged').toBeGreaterThan(10);
    expect(lostWrites).toEqual([]);
    expect(lostAudit).toEqual([]);
    expect(outboxes.length).toBeGreaterThanOrEqual(3);
    expect(pending, 'outboxes drained').toBe(0);
    expect(verify.ok && verify.body.ok, JSON.stringify(verify)).toBe(true);
    for (const name of SERVICE_NAMES) expect((await fetch(stack.dev.info.services[name].healthUrl)).status, `${name} ready`).toBe(200);
  }, 120_000);
});
