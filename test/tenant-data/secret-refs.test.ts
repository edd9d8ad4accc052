// An agent's secret_refs must name secrets of its own tenant: tenant-data asks the secrets
// service (SecretsExist, over mTLS) before it stores them, so another tenant's secret id or an
// unknown id is INVALID_ARGUMENT naming the field at write time, not NOT_FOUND at resolve time.
// Real tenant-data and secrets processes on the run's Postgres.
import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure, startTenantData, type TenantData, type TenantDataProcess } from './fixture.js';

let td: TenantDataProcess;
let edge: TenantData;
const tenantA = randomUUID();
const tenantB = randomUUID();
let ownSecret = '';
let foreignSecret = '';
let agentA = '';

beforeAll(async () => {
  td = await startTenantData();
  edge = await td.clientAs('edge');
  const identity = await td.clientAs('identity');
  for (const tenant of [tenantA, tenantB]) await identity.createWorkspace({ tenantId: tenant, name: `refs ${tenant.slice(0, 8)}` });
  ownSecret = await td.putSecret(tenantA);
  foreignSecret = await td.putSecret(tenantB);
  agentA = (await edge.createAgent({ tenantId: tenantA, name: 'refs-base' })).agent?.id ?? '';
}, 120_000);

afterAll(async () => {
  await td?.stop();
});

describe("an agent's secret_refs", () => {
  it('accepts a secret of its own tenant, on create and on update', async () => {
    const created = (await edge.createAgent({ tenantId: tenantA, name: 'own', secretRefs: { llm: ownSecret } })).agent;
    expect(created?.secretRefs).toEqual({ llm: ownSecret });
    const updated = (
      await edge.updateAgent({ tenantId: tenantA, agentId: agentA, replaceSecretRefs: true, secretRefs: { tts: ownSecret } })
    ).agent;
    expect(updated?.secretRefs).toEqual({ tts: ownSecret });
  });

  it("refuses another tenant's secret id with INVALID_ARGUMENT naming the field, and writes nothing", async () => {
    const agentsBefore = await td.rows('agents', tenantA);
    const create = await failure(
      edge.createAgent({ tenantId: tenantA, name: 'stolen', secretRefs: { llm: ownSecret, stt: foreignSecret } }),
    );
    expect(create.code).toBe(Code.InvalidArgument);
    expect(create.message).toMatch(/^secret_refs\.stt: /);
    expect(create.message).toContain(foreignSecret);
    expect(create.message).not.toContain(tenantB);
    expect(await td.rows('agents', tenantA)).toBe(agentsBefore);

    const update = await failure(
      edge.updateAgent({
        tenantId: tenantA,
        agentId: agentA,
        name: 'renamed',
        replaceSecretRefs: true,
        secretRefs: { llm: foreignSecret },
      }),
    );
    expect(update.code).toBe(Code.InvalidArgument);
    expect(update.message).toMatch(/^secret_refs\.llm: /);
    const agent = (await edge.getAgent({ tenantId: tenantA, agentId: agentA })).agent;
    expect(agent?.name).toBe('refs-base');
    expect(agent?.secretRefs).not.toHaveProperty('llm');
  });

  it('refuses a secret id that exists in no tenant, with the same message as another tenant’s', async () => {
    const unknown = randomUUID();
    const res = await failure(edge.createAgent({ tenantId: tenantA, name: 'unknown', secretRefs: { tts: unknown } }));
    expect(res.code).toBe(Code.InvalidArgument);
    expect(res.message).toBe(
      `secret_refs.tts: no secret ${unknown} in this workspace; store it with PutSecret first and reference the id it returns`,
    );
    const foreign = await failure(edge.createAgent({ tenantId: tenantA, name: 'foreign', secretRefs: { tts: foreignSecret } }));
    expect(foreign.message).toBe(
      `secret_refs.tts: no secret ${foreignSecret} in this workspace; store it with PutSecret first and reference the id it returns`,
    );
  });

  it('is UNAVAILABLE while the secrets service is down, and nothing is written', async () => {
    await td.secrets.stop();
    const agentsBefore = await td.rows('agents', tenantA);
    const res = await failure(edge.createAgent({ tenantId: tenantA, name: 'while-down', secretRefs: { llm: ownSecret } }));
    expect(res.code).toBe(Code.Unavailable);
    expect(res.message).toMatch(/secrets/);
    expect(await td.rows('agents', tenantA)).toBe(agentsBefore);
    // An agent without secret_refs needs no answer from secrets.
    expect((await edge.createAgent({ tenantId: tenantA, name: 'no-refs' })).agent?.secretRefs).toEqual({});
  });
});
