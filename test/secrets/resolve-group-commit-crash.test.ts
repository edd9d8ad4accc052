// Group commit of resolves' access records against a crash: a real secrets process under
// concurrent resolves (which it batches per tenant) is SIGKILLed mid-load; after the restart every
// acknowledged resolve has its access records and its secret.resolve audit events in Postgres, and
// no resolve is half there (all of its secrets' records or none).
import { randomUUID } from 'node:crypto';
import { withTenant } from '@parley/db';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecretsWorld, type Scene, type SecretsWorld } from './fixture.js';

let w: SecretsWorld;

beforeAll(async () => {
  w = await startSecretsWorld();
});

afterAll(async () => {
  await w?.stop();
});

/** SECRETS_PER_RESOLVE is how many secrets each scene's agent references (and each resolve records). */
const SECRETS_PER_RESOLVE = 2;

async function sceneWithSecrets(tenantId: string, n: number): Promise<Scene> {
  const llm = await w.put(tenantId, `crash-llm-${n}-${randomUUID().slice(0, 6)}`, `sk-crash-llm-${n}-value`);
  const tts = await w.put(tenantId, `crash-tts-${n}-${randomUUID().slice(0, 6)}`, `tts-crash-${n}-value`, 'tts');
  return w.scene(tenantId, { llm, tts });
}

describe('group commit of resolve access records', () => {
  it('a SIGKILL between batching and commit loses no acknowledged resolve and leaves none half recorded', async () => {
    const hot = randomUUID();
    const others = [randomUUID(), randomUUID()];
    // One conversation per caller, so each caller's acknowledged resolves can be counted in the tables.
    const callers: { scene: Scene; acknowledged: number; failed: number }[] = [];
    for (let i = 0; i < 20; i++) callers.push({ scene: await sceneWithSecrets(hot, i), acknowledged: 0, failed: 0 });
    for (const [i, tenantId] of others.entries())
      callers.push({ scene: await sceneWithSecrets(tenantId, 100 + i), acknowledged: 0, failed: 0 });
    let stop = false;
    const load = Promise.all(
      callers.map(async (c) => {
        while (!stop) {
          let resolved: number;
          try {
            resolved = (await w.resolve(c.scene)).secrets.length;
          } catch {
            // The process died with this resolve in flight: it may or may not have committed.
            c.failed += 1;
            return;
          }
          expect(resolved).toBe(SECRETS_PER_RESOLVE);
          c.acknowledged += 1;
        }
      }),
    );
    const total = () => callers.reduce((n, c) => n + c.acknowledged, 0);
    // 200 resolves, however long a loaded machine takes (the test has 4 minutes).
    const deadline = Date.now() + 150_000;
    while (total() < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    w.stack.secrets.signal('SIGKILL');
    await w.stack.secrets.exited;
    stop = true;
    await load;
    expect(total()).toBeGreaterThanOrEqual(200);
    expect(callers.some((c) => c.failed > 0)).toBe(true); // resolves were in flight when the process died

    for (const c of callers) {
      const { tenantId, conversationId } = c.scene;
      const access = await withTenant(w.secretsDb, tenantId, (trx) =>
        trx.selectFrom('access_events').select(['at']).where('conversation_id', '=', conversationId).execute(),
      );
      const { rows } = await w.admin.query<{ n: string }>(
        `select count(*) as n from parley_secrets.audit_outbox
          where tenant_id = $1 and event->>'action' = 'secret.resolve' and strpos(event::text, $2) > 0`,
        [tenantId, conversationId],
      );
      const audited = Number(rows[0]?.n);
      // Every acknowledged resolve is there; at most the one in flight at the kill besides; none half.
      expect(access.length, conversationId).toBeGreaterThanOrEqual(c.acknowledged * SECRETS_PER_RESOLVE);
      expect(access.length, conversationId).toBeLessThanOrEqual((c.acknowledged + c.failed) * SECRETS_PER_RESOLVE);
      expect(access.length % SECRETS_PER_RESOLVE, conversationId).toBe(0);
      // The audit events commit with the access records: the same resolves.
      expect(audited, conversationId).toBe(access.length);
    }
    // The hot tenant's resolves were group-committed: transactions (one now() each) held several callers' records.
    const hotCommits = await withTenant(w.secretsDb, hot, async (trx) => {
      const r = await sql<{ commits: string; records: string }>`
        select count(distinct at) as commits, count(*) as records from access_events`.execute(trx);
      return r.rows[0]!;
    });
    expect(Number(hotCommits.commits) * SECRETS_PER_RESOLVE).toBeLessThan(Number(hotCommits.records));

    // And resolves go on after the restart.
    w.stack.secrets.start();
    await w.stack.secrets.waitReady();
    const first = callers[0]!;
    expect((await w.resolve(first.scene)).secrets).toHaveLength(SECRETS_PER_RESOLVE);
  }, 240_000);
});
