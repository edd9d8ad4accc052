// The tenant-data stores called directly with bad input, on the run's Postgres as the
// tenant-data role: the error names the proto field, another tenant's ids are NotFound, and
// nothing is written. (The same stores behind the API: test/tenant-data/api.test.ts.)
import { randomUUID } from 'node:crypto';
import { withTenant } from '@parley/db';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '@parley/platform';
import {
  createAgent,
  findSubjectByContact,
  getAgent,
  getConversation,
  getSubject,
  listAgents,
  startConversation,
  updateAgent,
  type TenantDataDb,
} from '@parley/tenant-data';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, serviceDb } from '../src/pg.js';
import { seedTenantData, type TenantDataSeed } from './seeders/index.js';
import { SEED_PEPPER as PEPPER } from './seeders/tenant-data.js';

const tenantA = randomUUID();
const tenantB = randomUUID();
let admin: pg.Pool;
let tenantData: Kysely<TenantDataDb>;
let seededA: TenantDataSeed;
let seededB: TenantDataSeed;
const db = () => tenantData;

beforeAll(async () => {
  admin = adminPool(2);
  tenantData = serviceDb<TenantDataDb>('tenant-data', { max: 2 });
  seededA = await seedTenantData(tenantData as Kysely<unknown>, tenantA);
  seededB = await seedTenantData(tenantData as Kysely<unknown>, tenantB);
});

afterAll(async () => {
  await tenantData?.destroy();
  await admin?.end();
});

/** count counts a tenant-data table's rows of tenant A past RLS (the admin is a superuser). */
async function count(table: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`select count(*)::int as n from parley_tenant_data.${table} where tenant_id = $1`, [
    tenantA,
  ]);
  return rows[0]?.n ?? 0;
}

describe('bad input to the stores', () => {
  const agentCount = () => count('agents');

  it('a malformed tenant id is InvalidArgument naming tenant_id', async () => {
    const err = await withTenant(db(), 'not-a-uuid', async () => 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe('tenant_id');
  });

  it("a malformed id is InvalidArgument; an unknown id and another tenant's id are both NotFound", async () => {
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, '1234'))).rejects.toMatchObject({
      name: 'InvalidArgumentError',
      field: 'agent_id',
    });
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, randomUUID()))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, seededB.agentId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getConversation(trx, seededB.conversationId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getSubject(trx, seededB.subjectId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantB, (trx) => updateAgent(trx, seededA.agentId, { name: 'stolen' }))).rejects.toBeInstanceOf(
      NotFoundError,
    );
    expect((await withTenant(db(), tenantA, (trx) => getAgent(trx, seededA.agentId))).name).toBe('support');
  });

  it("referencing another tenant's agent or subject is NotFound and writes nothing", async () => {
    const before = await count('conversations');
    const err = await withTenant(db(), tenantA, (trx) => startConversation(trx, { agentId: seededB.agentId })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe('agent_id does not name an existing agents of this tenant');
    await expect(
      withTenant(db(), tenantA, (trx) => startConversation(trx, { agentId: seededA.agentId, subjectId: seededB.subjectId })),
    ).rejects.toBeInstanceOf(NotFoundError);
    expect(await count('conversations')).toBe(before);
  });

  it('oversized fields are InvalidArgument naming the field, and nothing is written', async () => {
    const before = await agentCount();
    const cases: [Parameters<typeof createAgent>[1], string][] = [
      [{ name: 'x'.repeat(201) }, 'name'],
      [{ name: '' }, 'name'],
      [{ name: 'big', prompt: 'p'.repeat(32_001) }, 'prompt'],
      [{ name: 'big', voice: { blob: 'v'.repeat(9000) } }, 'voice'],
      [{ name: 'big', secretRefs: { llm: 'not-a-uuid' } }, 'secret_refs.llm'],
    ];
    for (const [input, field] of cases) {
      const err = await withTenant(db(), tenantA, (trx) => createAgent(trx, input)).catch((e: unknown) => e);
      expect(err, field).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).field, field).toBe(field);
    }
    expect(await agentCount()).toBe(before);
  });

  it('invalid guardrail policy documents are InvalidArgument naming the field, and nothing is written or changed', async () => {
    const before = await agentCount();
    const cases: [unknown, string][] = [
      [{ version: 3 }, 'guardrail_policy.version'],
      [{ version: 2, noGoZones: [{ id: 'z', patterns: ['(?<=x)y'], action: 'end' }] }, 'guardrail_policy.noGoZones.0.patterns.0'],
      [{ version: 1, noGoZones: [{ id: 'Bad Id', description: 'x', action: 'refuse' }] }, 'guardrail_policy.noGoZones.0.id'],
      [
        { version: 1, sleepWindows: [{ timezone: 'Mars/Olympus', days: ['mon'], start: '22:00', end: '07:00', message: 'zzz' }] },
        'guardrail_policy.sleepWindows.0.timezone',
      ],
      [{ version: 1, fatigue: { maxConversationMinutes: 0, action: 'suggest_break' } }, 'guardrail_policy.fatigue.maxConversationMinutes'],
      [{ version: 1, piiBoundaries: {} }, 'guardrail_policy'],
      [
        {
          version: 1,
          noGoZones: Array.from({ length: 50 }, (_, i) => ({
            id: `z${i}`,
            description: 'd'.repeat(500),
            examples: Array.from({ length: 20 }, () => 'e'.repeat(300)),
            action: 'refuse',
          })),
        },
        'guardrail_policy',
      ],
    ];
    for (const [policy, field] of cases) {
      const err = await withTenant(db(), tenantA, (trx) => createAgent(trx, { name: `p-${field}`, guardrailPolicy: policy })).catch(
        (e: unknown) => e,
      );
      expect(err, field).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).field, JSON.stringify(policy).slice(0, 80)).toBe(field);
    }
    expect(await agentCount()).toBe(before);
    const err = await withTenant(db(), tenantA, (trx) =>
      updateAgent(trx, seededA.agentId, {
        prompt: 'changed',
        guardrailPolicy: { version: 1, tools: { allowed: [{ name: 'x', scopes: [''] }] } },
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    const agent = await withTenant(db(), tenantA, (trx) => getAgent(trx, seededA.agentId));
    expect([agent.prompt, agent.policy_version]).toEqual(['Be kind.', 1]);
  });

  it('a valid new policy bumps policy_version; a duplicate agent name is AlreadyExists', async () => {
    const policy = {
      version: 1,
      noGoZones: [{ id: 'medical', description: 'No diagnoses', action: 'redirect', response: 'Please ask a doctor.' }],
      fatigue: { maxConversationMinutes: 30, action: 'suggest_break' },
    };
    const agent = await withTenant(db(), tenantA, (trx) => updateAgent(trx, seededA.agentId, { guardrailPolicy: policy }));
    expect(agent.policy_version).toBe(2);
    expect(agent.guardrail_policy.noGoZones[0]?.id).toBe('medical');
    await expect(withTenant(db(), tenantA, (trx) => createAgent(trx, { name: 'support' }))).rejects.toBeInstanceOf(AlreadyExistsError);
  });

  it('subjects are found by keyed hash of phone or e-mail in any spelling, only within the tenant', async () => {
    const s = await withTenant(db(), tenantA, (trx) => findSubjectByContact(trx, { phone: '+4915112345678' }, PEPPER));
    expect(s.id).toBe(seededA.subjectId);
    const byMail = await withTenant(db(), tenantB, (trx) => findSubjectByContact(trx, { email: ' ada@example.COM ' }, PEPPER));
    expect(byMail.id).toBe(seededB.subjectId);
    const { rows } = await admin.query<{ row: string }>(
      `select row_to_json(s)::text as row from parley_tenant_data.subjects s where tenant_id = $1`,
      [tenantA],
    );
    // The seeded phone in any spelling and the e-mail; not bare "151", which a random id or hash may hold.
    expect(rows[0]?.row).not.toMatch(/151\s*1234\s*5678|15112345678|ada@example/i);
    await expect(withTenant(db(), tenantA, (trx) => findSubjectByContact(trx, { phone: '12' }, PEPPER))).rejects.toMatchObject({
      field: 'phone',
    });
  });

  it('lists page with an opaque cursor in a stable order and reject a foreign cursor', async () => {
    const names = await withTenant(db(), tenantB, async (trx) => {
      for (let i = 0; i < 5; i++) await createAgent(trx, { name: `agent-${i}` });
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await listAgents(trx, { pageSize: 2, ...(cursor === undefined ? {} : { cursor }) });
        seen.push(...page.items.map((a) => a.name));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      return seen;
    });
    expect(names).toEqual(['support', 'agent-0', 'agent-1', 'agent-2', 'agent-3', 'agent-4']);
    await expect(withTenant(db(), tenantB, (trx) => listAgents(trx, { cursor: 'garbage' }))).rejects.toMatchObject({ field: 'page_token' });
    await expect(withTenant(db(), tenantB, (trx) => listAgents(trx, { pageSize: 10_000 }))).rejects.toMatchObject({ field: 'page_size' });
  });
});
