// The audit events the secrets service records in its outbox: a real process over mTLS with the
// Vault stand-in and real tenant-data (see fixture.ts); no audit service runs, so rows stay.
import { randomBytes, randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, codeOf, leaks, principal, startSecretsWorld, type SecretsWorld } from './fixture.js';

let w: SecretsWorld;

beforeAll(async () => {
  w = await startSecretsWorld();
});

afterAll(async () => {
  await w?.stop();
});

describe('secrets service audit events (outbox)', () => {
  const tenant = randomUUID();
  const operatorId = principal(tenant).id;

  it('put, rotate and delete record one event each with the operator as actor, and no value or hint', async () => {
    const value = `sk-audit-${randomBytes(12).toString('hex')}`;
    const id = await w.put(tenant, 'audited-llm', value);
    expect((await codeOf(w.edge.rotateSecret({ secretId: id, value: `${value}-x`, expectedVersion: 5 }, as(tenant)))).code).toBe(
      Code.FailedPrecondition,
    );
    await w.edge.rotateSecret({ secretId: id, value: `${value}-v2`, expectedVersion: 1 }, as(tenant));
    await w.edge.deleteSecret({ secretId: id }, as(tenant));
    expect((await codeOf(w.edge.deleteSecret({ secretId: id }, as(tenant)))).code).toBe(Code.NotFound);

    const [created] = await w.outbox(tenant, 'secret.create');
    expect(created).toMatchObject({
      actorKind: 'member',
      actorId: operatorId,
      sourceAddress: '127.0.0.1',
      targetType: 'secret',
      targetId: id,
    });
    expect(created?.description).toEqual({ name: 'audited-llm', provider_kind: 'llm', version: 1 });
    const rotations = await w.outbox(tenant, 'secret.rotate');
    expect(rotations).toHaveLength(1);
    expect(rotations[0]).toMatchObject({
      actorId: operatorId,
      targetId: id,
      description: { name: 'audited-llm', version: { from: 1, to: 2 }, previous_readable_seconds: 5 },
    });
    const deletions = await w.outbox(tenant, 'secret.delete');
    expect(deletions).toHaveLength(1);
    expect(deletions[0]).toMatchObject({ actorId: operatorId, targetId: id, description: { name: 'audited-llm', versions_destroyed: 2 } });
    const { rows } = await w.admin.query<{ text: string }>(
      `select event::text as text from parley_secrets.audit_outbox where tenant_id = $1`,
      [tenant],
    );
    for (const r of rows) {
      expect(leaks(r.text, value)).toEqual([]);
      expect(r.text).not.toContain(value.slice(-4));
    }
  });

  it('resolve records one secret.resolve access event per secret, by the voice-orchestrator, naming conversation, agent and version', async () => {
    const llm = await w.put(tenant, 'resolve-audit-llm', 'sk-resolve-audit-0001');
    const tts = await w.put(tenant, 'resolve-audit-tts', 'tts-resolve-audit-0002', 'tts');
    const s = await w.scene(tenant, { llm, tts });
    await w.resolve(s);
    const events = (await w.outbox(tenant, 'secret.resolve')).filter((e) => e.description?.conversation_id === s.conversationId);
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
    const lifecycle = await w.stack.clientAs('lifecycle', SecretsService);
    expect((await codeOf(w.resolve(s, [], lifecycle))).code).toBe(Code.PermissionDenied);
    expect((await w.outbox(tenant, 'secret.resolve')).filter((e) => e.description?.conversation_id === s.conversationId)).toHaveLength(2);
  });

  it('shredding a subject key records subject_key.shred by lifecycle once; a repeated shred records nothing', async () => {
    const lifecycle = await w.stack.clientAs('lifecycle', SecretsService);
    const withKey = randomUUID();
    const withoutKey = randomUUID();
    await w.orchestrator.encryptForSubject({ tenantId: tenant, subjectId: withKey, purpose: '', plaintext: Buffer.from('x') });
    for (const subjectId of [withKey, withKey, withoutKey, withoutKey]) await lifecycle.shredSubjectKey({ tenantId: tenant, subjectId });
    const events = await w.outbox(tenant, 'subject_key.shred');
    expect(events.map((e) => [e.actorKind, e.actorId, e.targetType, e.targetId, e.description?.had_data_key])).toEqual([
      ['service', 'lifecycle', 'subject', withKey, true],
      ['service', 'lifecycle', 'subject', withoutKey, false],
    ]);
  });
});
