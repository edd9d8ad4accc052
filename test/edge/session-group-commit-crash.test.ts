// Group commit of session records against a crash: identity under concurrent CreateSession calls
// (which it records in batches per workspace) is SIGKILLed mid-load; every session whose token a
// caller received is recorded in Postgres (so its token can connect), and identity goes on after a
// restart. Before that: sessions an idle workspace is asked for together go in one transaction.
import { principalHeaders } from '@parley/platform';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, gatheredAttempts, transactionsWriting } from '../src/pg.js';
import { startPublicStack, type PublicStack } from './fixture.js';

let stack: PublicStack;

beforeAll(async () => {
  stack = await startPublicStack();
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

/** memberHeaders are the principal headers the edge forwards with a workspace member's CreateSession. */
const memberHeaders = () =>
  principalHeaders({
    tenantId: stack.bootstrap.tenantId,
    kind: 'member',
    id: stack.bootstrap.memberId,
    scopes: ['sessions:create'],
    source: '127.0.0.1',
    userAgent: 'vitest',
  });

describe('group commit of session records', () => {
  it('records sessions an idle workspace is asked for together in one transaction, not the first alone and the rest after it', async () => {
    const agent = await stack.call('/parley.api.v1.AgentService/CreateAgent', { name: 'Burst bot', prompt: 'p' }, stack.bootstrap.apiKey);
    expect(agent.status, JSON.stringify(agent.body)).toBe(200);
    const agentId = (agent.body.agent as { id: string }).id;
    const identity = await stack.clientAs('edge', 'identity', IdentityService);
    const headers = memberHeaders();
    const create = () => identity.createSession({ agentId, origin: '', subjectRef: '', ttlSeconds: 0 }, { headers });
    // The first asks tenant-data whether the agent is the workspace's; the bursts find it cached.
    await create();
    const admin = adminPool();
    try {
      const taken = await gatheredAttempts(async () => {
        const ids = (await Promise.all(Array.from({ length: 8 }, create))).map((r) => r.sessionId);
        return transactionsWriting(admin, 'parley_identity.sessions', 'id', ids);
      });
      // Without gather the first of a burst always goes alone: never fewer than two transactions.
      expect(taken).toContain(1);
    } finally {
      await admin.end();
    }
  }, 60_000);

  it('a SIGKILL between batching and commit loses no session whose token was handed out', async () => {
    const agent = await stack.call('/parley.api.v1.AgentService/CreateAgent', { name: 'Crash bot', prompt: 'p' }, stack.bootstrap.apiKey);
    expect(agent.status, JSON.stringify(agent.body)).toBe(200);
    const agentId = (agent.body.agent as { id: string }).id;
    // As the edge forwards a workspace member's CreateSession.
    const identity = await stack.clientAs('edge', 'identity', IdentityService);
    const headers = memberHeaders();
    const acknowledged: string[] = [];
    let failed = 0;
    let firstError: unknown;
    let stop = false;
    const caller = async () => {
      while (!stop) {
        let sessionId: string;
        try {
          sessionId = (await identity.createSession({ agentId, origin: '', subjectRef: '', ttlSeconds: 0 }, { headers })).sessionId;
        } catch (err) {
          failed += 1;
          firstError ??= err;
          return;
        }
        acknowledged.push(sessionId);
      }
    };
    const load = Promise.all(Array.from({ length: 24 }, caller));
    const deadline = Date.now() + 60_000;
    while (acknowledged.length < 150 && failed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stack.processes.identity.signal('SIGKILL');
    await stack.processes.identity.exited;
    stop = true;
    await load;
    expect(acknowledged.length, String(firstError)).toBeGreaterThanOrEqual(150);
    expect(failed).toBeGreaterThan(0); // calls were in flight when the process died

    const admin = adminPool();
    try {
      const { rows } = await admin.query<{ id: string; created_at: Date }>(
        'select id::text, created_at from parley_identity.sessions where id = any($1::uuid[])',
        [acknowledged],
      );
      const stored = new Set(rows.map((r) => r.id));
      expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
      // They were group-committed: transactions (one now() each) held several sessions.
      expect(new Set(rows.map((r) => r.created_at.getTime())).size).toBeLessThan(rows.length);
    } finally {
      await admin.end();
    }

    stack.processes.identity.start();
    await stack.processes.identity.waitReady();
    const after = await stack.call('/parley.api.v1.SessionService/CreateSession', { agentId }, stack.bootstrap.apiKey);
    expect(after.status, JSON.stringify(after.body)).toBe(200);
  }, 180_000);
});
