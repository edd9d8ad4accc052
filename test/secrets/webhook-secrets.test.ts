// Webhook signing secrets in the secrets service as a real process: integrations (only) has one
// made, sees its value once, and reads it back to sign; the value is sealed at rest; no other
// caller and no other kind of secret gets through.
import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { adminPool, serviceUrl } from '../src/pg.js';
import { principalHeaders } from '@parley/platform';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecretsStack, type SecretsStack } from './harness.js';

let stack: SecretsStack;
let admin: pg.Pool;
let integrations: Client<typeof SecretsService>;
const tenant = randomUUID();

async function codeOf(p: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

beforeAll(async () => {
  admin = adminPool(1);
  stack = await startSecretsStack({ databaseUrls: { secrets: serviceUrl('secrets'), tenantData: serviceUrl('tenant-data') } });
  integrations = await stack.clientAs('integrations', SecretsService);
});

afterAll(async () => {
  await stack?.stop();
  await admin?.end();
});

describe('webhook signing secrets', () => {
  it('makes a whsec_ secret of 32 bytes, returns it once, keeps only ciphertext, and gives it back to integrations', async () => {
    const issued = await integrations.issueWebhookSecret({ tenantId: tenant, name: 'webhook-endpoint-1' });
    expect(issued.value).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(issued.secret).toMatchObject({ providerKind: 'webhook', version: 1, setBy: 'service:integrations' });
    const { rows } = await admin.query<{ row: string }>(
      `select row_to_json(v)::text as row from parley_secrets.secret_versions v where secret_id = $1`,
      [issued.secret!.id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.row).not.toContain(issued.value.slice(6));
    const resolved = await integrations.resolveWebhookSecrets({ tenantId: tenant, secretIds: [issued.secret!.id] });
    expect(resolved.secrets.map((s) => s.value)).toEqual([issued.value]);
    expect(stack.logs.join('\n')).not.toContain(issued.value.slice(6));
  });

  it('refuses other callers, other tenants, unknown ids and secrets that are not webhook secrets', async () => {
    const issued = await integrations.issueWebhookSecret({ tenantId: tenant, name: 'webhook-endpoint-2' });
    const id = issued.secret!.id;
    const orchestrator = await stack.clientAs('voice-orchestrator', SecretsService);
    expect(await codeOf(orchestrator.resolveWebhookSecrets({ tenantId: tenant, secretIds: [id] }))).toBe(Code.PermissionDenied);
    expect(await codeOf(orchestrator.issueWebhookSecret({ tenantId: tenant, name: 'x' }))).toBe(Code.PermissionDenied);
    expect(await codeOf(integrations.resolveWebhookSecrets({ tenantId: randomUUID(), secretIds: [id] }))).toBe(Code.NotFound);
    expect(await codeOf(integrations.resolveWebhookSecrets({ tenantId: tenant, secretIds: ['not-a-uuid'] }))).toBe(Code.InvalidArgument);
    expect(await codeOf(integrations.issueWebhookSecret({ tenantId: tenant, name: 'bad name!' }))).toBe(Code.InvalidArgument);
    // A provider key put through the edge is not something integrations may read.
    const edge = await stack.clientAs('edge', SecretsService);
    const principal = {
      tenantId: tenant,
      kind: 'member' as const,
      id: 'operator-1',
      scopes: ['secrets:write'],
      source: '127.0.0.1',
      userAgent: 'vitest',
    };
    const llm = await edge.putSecret(
      { name: 'openai', providerKind: 'llm', value: 'sk-not-for-webhooks-123456' },
      { headers: principalHeaders(principal) },
    );
    expect(await codeOf(integrations.resolveWebhookSecrets({ tenantId: tenant, secretIds: [llm.secret!.id] }))).toBe(Code.PermissionDenied);
  });

  it('keeps the operator API off webhook secrets: no put of that kind, no rotate, no delete, and never resolved for a conversation', async () => {
    const issued = await integrations.issueWebhookSecret({ tenantId: tenant, name: 'webhook-endpoint-3' });
    const id = issued.secret!.id;
    const edge = await stack.clientAs('edge', SecretsService);
    const as = {
      headers: principalHeaders({
        tenantId: tenant,
        kind: 'member' as const,
        id: 'operator-2',
        scopes: ['secrets:write', 'agents:read'],
        source: '127.0.0.1',
        userAgent: 'vitest',
      }),
    };
    expect(await codeOf(edge.putSecret({ name: 'forged', providerKind: 'webhook', value: `whsec_${'A'.repeat(43)}=` }, as))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(edge.rotateSecret({ secretId: id, value: `whsec_${'B'.repeat(43)}=` }, as))).toBe(Code.PermissionDenied);
    expect(await codeOf(edge.deleteSecret({ secretId: id }, as))).toBe(Code.PermissionDenied);
    // Still the one integrations was given: nothing above changed it.
    const resolved = await integrations.resolveWebhookSecrets({ tenantId: tenant, secretIds: [id] });
    expect(resolved.secrets.map((s) => s.value)).toEqual([issued.value]);
  });
});
