// Connections and tool calls through real processes: the secrets service (Vault stand-in KEK)
// holds the connection's credential, tenant-data holds the agent (its guardrail policy grants the
// tools) and its live conversation, and the integrations process administers connections for a
// forwarded principal with connections:admin and makes CallTool calls for the voice-orchestrator
// to a local HTTPS "external system" (the private allow-list is on for 127.0.0.1 in this file only)
// that echoes the headers it got, so the test sees the credential arrive and the result not carry it.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toJsonString, type JsonObject } from '@bufbuild/protobuf';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { withTenant } from '@parley/db';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { CertificateSource, createServiceClient, peerUrlVariable, principalHeaders, type ServiceName } from '@parley/platform';
import {
  CallToolResponseSchema,
  GetConnectionResponseSchema,
  IntegrationsService,
} from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { createAgent, endConversation, ensureWorkspace, startConversation, type TenantDataDb } from '@parley/tenant-data';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecretsStack, type SecretsStack } from '../secrets/harness.js';
import { adminPool, readOutbox, serviceDb, serviceUrl } from '../src/pg.js';

const MAIN = serviceScript(join(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'integrations');
const MAX_RESPONSE_BYTES = 2048;

type Integrations = Client<typeof IntegrationsService> & { close(): void };

let stack: SecretsStack;
let integrations: ServiceProcess;
let system: Server;
let systemPort: number;
let url: string;
let tenantDb: Kysely<TenantDataDb>;
let admin: pg.Pool;
const clients: Integrations[] = [];
const seen: Array<{ method: string; path: string; headers: Record<string, string | string[] | undefined>; body: string }> = [];

async function clientAs(caller: ServiceName): Promise<Integrations> {
  const client = createServiceClient(IntegrationsService, {
    baseUrl: url,
    certificates: await CertificateSource.open(stack.pki.files(caller)),
    expect: 'integrations',
    trustDomain: 'parley.local',
    defaultTimeoutMs: 15_000,
  });
  clients.push(client);
  return client;
}

/** as forwards an operator of the tenant with the given scopes, as the edge does. */
const as = (tenantId: string, scopes: string[] = ['connections:admin']) => ({
  headers: principalHeaders({
    tenantId,
    kind: 'member',
    id: `operator-${tenantId.slice(0, 8)}`,
    scopes,
    source: '127.0.0.1',
    userAgent: 'vitest',
  }),
});

async function codeOf(p: Promise<unknown>): Promise<{ code: Code | 'ok'; message: string }> {
  try {
    await p;
    return { code: 'ok', message: '' };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
}

beforeAll(async () => {
  stack = await startSecretsStack({ databaseUrls: { secrets: serviceUrl('secrets'), tenantData: serviceUrl('tenant-data') } });
  tenantDb = serviceDb<TenantDataDb>('tenant-data', { max: 2 });
  admin = adminPool(1);
  // The external system: echoes method, path, headers and body as JSON; /big answers past the limit.
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['crm.test'], ipAddresses: ['127.0.0.1'] });
  system = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const got = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      seen.push(got);
      if (got.path.startsWith('/api/big')) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('x'.repeat(MAX_RESPONSE_BYTES * 4));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(got));
    });
  });
  await new Promise<void>((resolve) => system.listen(0, '127.0.0.1', resolve));
  systemPort = (system.address() as AddressInfo).port;
  const dir = await mkdtemp(join(tmpdir(), 'parley-tools-ca-'));
  await writeFile(join(dir, 'ca.pem'), authority.certPem);

  const port = await freePort();
  const health = await freePort();
  const files = stack.pki.files('integrations');
  integrations = new ServiceProcess({
    name: 'integrations',
    script: MAIN,
    env: {
      PARLEY_SERVICE_PORT: String(port),
      PARLEY_HEALTH_PORT: String(health),
      PARLEY_TLS_CERT: files.certFile,
      PARLEY_TLS_KEY: files.keyFile,
      PARLEY_TLS_CA: files.caFile,
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: serviceUrl('integrations'),
      [peerUrlVariable('secrets')]: stack.secretsUrl,
      [peerUrlVariable('tenant-data')]: stack.tenantDataUrl,
      PARLEY_EGRESS_ALLOWED_PORTS: String(systemPort),
      PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32',
      PARLEY_WEBHOOK_WORKER: 'off',
      PARLEY_TOOL_CALL_MAX_RESPONSE_BYTES: String(MAX_RESPONSE_BYTES),
      NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem'),
    },
    healthUrl: `http://127.0.0.1:${health}/readyz`,
  });
  integrations.start();
  await integrations.waitReady();
  url = `https://localhost:${port}`;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await integrations?.stop();
  await stack?.stop();
  await tenantDb?.destroy();
  await admin?.end();
  system?.closeAllConnections();
  await new Promise((resolve) => system?.close(resolve));
});

const lookupSchema = {
  type: 'object',
  properties: { customer_id: { type: 'string', pattern: '^c_[0-9]+$' }, fields: { type: 'string' } },
  required: ['customer_id'],
  additionalProperties: false,
};

/** world makes a tenant with a tool credential, a connection with two operations, and an agent granted only lookup_customer, in a live conversation. */
async function world(options: { grantScopes?: string[] } = {}) {
  const tenantId = randomUUID();
  const credential = `crm-key-${randomBytes(12).toString('hex')}`;
  const edgeSecrets = await stack.clientAs('edge', SecretsService);
  const put = await edgeSecrets.putSecret(
    { name: `crm-${randomUUID().slice(0, 8)}`, providerKind: 'tool', value: credential },
    as(tenantId, ['secrets:write']),
  );
  const edge = await clientAs('edge');
  const created = await edge.createConnection(
    {
      name: 'crm',
      baseUrl: `https://127.0.0.1:${systemPort}/api`,
      credentialSecretId: put.secret!.id,
      description: 'the CRM',
      operations: [
        {
          name: 'lookup_customer',
          description: 'Finds a customer',
          method: 'GET',
          pathTemplate: '/customers/{customer_id}',
          argumentsSchema: lookupSchema,
          scope: 'crm:read',
        },
        {
          name: 'delete_customer',
          description: 'Deletes a customer',
          method: 'DELETE',
          pathTemplate: '/customers/{customer_id}',
          argumentsSchema: lookupSchema,
          scope: 'crm:write',
        },
        {
          name: 'get_document',
          description: 'Reads a document',
          method: 'GET',
          pathTemplate: '/docs/{doc_id}',
          argumentsSchema: { type: 'object', properties: { doc_id: { type: 'string' } }, required: ['doc_id'] },
          scope: 'crm:read',
        },
        {
          name: 'big_report',
          description: 'A report',
          method: 'GET',
          pathTemplate: '/big',
          argumentsSchema: { type: 'object' },
          scope: 'crm:read',
        },
      ],
    },
    // Giving a connection a credential decides where it is sent: that takes secrets:write as well.
    as(tenantId, ['connections:admin', 'secrets:write']),
  );
  const scene = await withTenant(tenantDb, tenantId, async (trx) => {
    await ensureWorkspace(trx, { name: `workspace ${tenantId.slice(0, 8)}` });
    const agent = await createAgent(trx, {
      name: `agent-${randomUUID().slice(0, 8)}`,
      guardrailPolicy: {
        version: 2,
        tools: {
          allowed: [
            { name: 'lookup_customer', scopes: options.grantScopes ?? ['crm:read'] },
            { name: 'big_report', scopes: ['crm:read'] },
            { name: 'get_document', scopes: ['crm:read'] },
          ],
        },
      },
    });
    const conversation = await startConversation(trx, { agentId: agent.id });
    return { agentId: agent.id, conversationId: conversation.id };
  });
  return { tenantId, credential, connection: created.connection!, ...scene };
}

describe('connections and tool calls', () => {
  it('calls a granted operation with the credential injected server-side; the result never carries it', async () => {
    const w = await world();
    const orchestrator = await clientAs('voice-orchestrator');
    const before = seen.length;
    const res = await orchestrator.callTool({
      tenantId: w.tenantId,
      conversationId: w.conversationId,
      agentId: w.agentId,
      tool: 'lookup_customer',
      arguments: { customer_id: 'c_42', fields: 'name email' },
    });
    expect(res.status).toBe(200);
    // The external system got the credential, on the pinned path, with the other arguments in the query.
    const got = seen.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.method).toBe('GET');
    expect(got[0]!.path).toBe('/api/customers/c_42?fields=name+email');
    expect(got[0]!.headers.authorization).toBe(`Bearer ${w.credential}`);
    // What goes back towards the model: the echo with the credential redacted, nowhere in the answer.
    const answer = toJsonString(CallToolResponseSchema, res);
    expect(answer).not.toContain(w.credential);
    expect(JSON.parse(res.body).headers.authorization).toBe('Bearer [redacted]');
    expect(res.connectionId).toBe(w.connection.id);
    // The call is an access event of the connection; the secrets service recorded its own resolve.
    const calls = await readOutbox(admin, 'integrations', w.tenantId, 'connection.call');
    expect(calls.map((e) => [e.targetId, e.actorKind, e.actorId])).toEqual([[w.connection.id, 'service', 'voice-orchestrator']]);
    expect(calls[0]!.description).toMatchObject({ tool: 'lookup_customer', conversation_id: w.conversationId, status: 200 });
    const resolves = await readOutbox(admin, 'secrets', w.tenantId, 'secret.resolve');
    expect(resolves.map((e) => e.description?.purposes)).toEqual([[`connection:${w.connection.id}`]]);
    // The administrator sees the secret id, never the value.
    const shown = await (await clientAs('edge')).getConnection({ connectionId: w.connection.id }, as(w.tenantId));
    expect(shown.connection?.credentialSecretId).toBe(w.connection.credentialSecretId);
    expect(toJsonString(GetConnectionResponseSchema, shown)).not.toContain(w.credential);
  });

  it('refuses an operation the agent is not granted, or granted without its scope, with PERMISSION_DENIED', async () => {
    const w = await world({ grantScopes: [] });
    const orchestrator = await clientAs('voice-orchestrator');
    const before = seen.length;
    const call = (tool: string) =>
      codeOf(
        orchestrator.callTool({
          tenantId: w.tenantId,
          conversationId: w.conversationId,
          agentId: w.agentId,
          tool,
          arguments: { customer_id: 'c_1' },
        }),
      );
    const ungranted = await call('delete_customer');
    expect(ungranted.code).toBe(Code.PermissionDenied);
    expect(ungranted.message).toContain('not granted tool "delete_customer"');
    const unscoped = await call('lookup_customer');
    expect(unscoped.code).toBe(Code.PermissionDenied);
    expect(unscoped.message).toContain('lacks scope crm:read');
    expect(seen.length).toBe(before);
    // Each refusal is an access event of the connection, with why and without the arguments.
    const refusals = await readOutbox(admin, 'integrations', w.tenantId, 'connection.call');
    expect(refusals.map((e) => [e.targetId, e.description?.tool, e.description?.outcome, e.description?.reason])).toEqual([
      [w.connection.id, 'delete_customer', 'refused', 'not_granted'],
      [w.connection.id, 'lookup_customer', 'refused', 'scope_missing'],
    ]);
    expect(refusals[1]!.description?.scopes).toBe('crm:read');
    expect(JSON.stringify(refusals)).not.toContain('c_1');
    expect(JSON.stringify(refusals)).not.toContain(w.credential);
    // Only the orchestrator may call tools.
    for (const caller of ['edge', 'lifecycle'] as const) {
      const c = await clientAs(caller);
      expect(
        (await codeOf(c.callTool({ tenantId: w.tenantId, conversationId: w.conversationId, agentId: w.agentId, tool: 'lookup_customer' })))
          .code,
      ).toBe(Code.PermissionDenied);
    }
  });

  it('refuses arguments that do not match the schema with INVALID_ARGUMENT naming the field', async () => {
    const w = await world();
    const orchestrator = await clientAs('voice-orchestrator');
    const before = seen.length;
    const call = (args: JsonObject) =>
      codeOf(
        orchestrator.callTool({
          tenantId: w.tenantId,
          conversationId: w.conversationId,
          agentId: w.agentId,
          tool: 'lookup_customer',
          arguments: args,
        }),
      );
    const bad = await call({ customer_id: 'DROP TABLE' });
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toMatch(/^arguments\.customer_id: must match pattern/);
    const missing = await call({});
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(missing.message).toMatch(/^arguments\.customer_id: must have required property/);
    expect(seen.length).toBe(before);
    const refusals = await readOutbox(admin, 'integrations', w.tenantId, 'connection.call');
    expect(refusals.map((e) => [e.description?.outcome, e.description?.reason, e.description?.field])).toEqual([
      ['refused', 'arguments_invalid', 'arguments.customer_id'],
      ['refused', 'arguments_invalid', 'arguments.customer_id'],
    ]);
    expect(JSON.stringify(refusals)).not.toContain('DROP TABLE');
  });

  it('refuses a path placeholder value that would leave the fixed path with INVALID_ARGUMENT naming the argument', async () => {
    const w = await world();
    const orchestrator = await clientAs('voice-orchestrator');
    const before = seen.length;
    const call = (docId: string) =>
      codeOf(
        orchestrator.callTool({
          tenantId: w.tenantId,
          conversationId: w.conversationId,
          agentId: w.agentId,
          tool: 'get_document',
          arguments: { doc_id: docId },
        }),
      );
    for (const value of ['..', '.', '...', '%2E%2E', 'a%2Fb', 'a/b', '..\\admin']) {
      const refused = await call(value);
      expect(refused.code, value).toBe(Code.InvalidArgument);
      expect(refused.message, value).toMatch(/^arguments\.doc_id: /);
    }
    expect(seen.length).toBe(before);
    // An ordinary value with dots inside is still a segment.
    const ok = await orchestrator.callTool({
      tenantId: w.tenantId,
      conversationId: w.conversationId,
      agentId: w.agentId,
      tool: 'get_document',
      arguments: { doc_id: 'report.v2' },
    });
    expect(ok.status).toBe(200);
    expect(seen.at(-1)!.path).toBe('/api/docs/report.v2');
  });

  it('refuses an answer larger than the limit, and calls outside a live conversation', async () => {
    const w = await world();
    const orchestrator = await clientAs('voice-orchestrator');
    const big = await codeOf(
      orchestrator.callTool({
        tenantId: w.tenantId,
        conversationId: w.conversationId,
        agentId: w.agentId,
        tool: 'big_report',
        arguments: {},
      }),
    );
    expect(big.code).toBe(Code.FailedPrecondition);
    expect(big.message).toContain(`larger than ${MAX_RESPONSE_BYTES} bytes`);
    await withTenant(tenantDb, w.tenantId, (trx) => endConversation(trx, w.conversationId, 'caller hung up'));
    const ended = await codeOf(
      orchestrator.callTool({
        tenantId: w.tenantId,
        conversationId: w.conversationId,
        agentId: w.agentId,
        tool: 'lookup_customer',
        arguments: { customer_id: 'c_1' },
      }),
    );
    expect(ended.code).toBe(Code.FailedPrecondition);
    expect(ended.message).toContain('tools are called only in live conversations');
  });

  it("refuses an unsafe base URL at save naming the rule, and answers another workspace's connection and tool with NOT_FOUND", async () => {
    const w = await world();
    const edge = await clientAs('edge');
    const op = { name: 'x_tool', description: '', method: 'GET', pathTemplate: '/x', argumentsSchema: { type: 'object' }, scope: 'x:read' };
    for (const [baseUrl, rule] of [
      [`https://169.254.169.254:${systemPort}/latest`, 'address-range'],
      [`http://crm.example.com:${systemPort}/`, 'scheme'],
      [`https://localhost:${systemPort}/`, 'localhost'],
      ['https://crm.example.com:8443/', 'port'],
    ]) {
      const refused = await codeOf(edge.createConnection({ name: 'unsafe', baseUrl, operations: [op] }, as(w.tenantId)));
      expect(refused.code, baseUrl).toBe(Code.InvalidArgument);
      expect(refused.message, baseUrl).toContain(`base_url: refused by egress rule ${rule}`);
    }
    const badOp = await codeOf(
      edge.createConnection(
        { name: 'bad-op', baseUrl: `https://127.0.0.1:${systemPort}/`, operations: [{ ...op, method: 'TRACE' }] },
        as(w.tenantId),
      ),
    );
    expect(badOp).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining('operations[0].method') });
    // Another workspace: its connection id and its tool names do not exist here.
    const other = randomUUID();
    expect((await codeOf(edge.getConnection({ connectionId: w.connection.id }, as(other)))).code).toBe(Code.NotFound);
    expect((await codeOf(edge.deleteConnection({ connectionId: w.connection.id }, as(other)))).code).toBe(Code.NotFound);
    const orchestrator = await clientAs('voice-orchestrator');
    expect(
      (
        await codeOf(
          orchestrator.callTool({
            tenantId: other,
            conversationId: w.conversationId,
            agentId: w.agentId,
            tool: 'lookup_customer',
            arguments: { customer_id: 'c_1' },
          }),
        )
      ).code,
    ).toBe(Code.NotFound);
    // Without connections:admin nothing is served.
    expect((await codeOf(edge.listConnections({}, as(w.tenantId, ['webhooks:admin'])))).code).toBe(Code.PermissionDenied);
  });

  it('lists, updates and deletes connections, each change audited', async () => {
    const w = await world();
    const edge = await clientAs('edge');
    const listed = await edge.listConnections({}, as(w.tenantId));
    expect(listed.connections.map((c) => [c.name, c.operations.map((o) => o.name).sort()])).toEqual([
      ['crm', ['big_report', 'delete_customer', 'get_document', 'lookup_customer']],
    ]);
    const updated = await edge.updateConnection(
      {
        connectionId: w.connection.id,
        name: 'crm',
        baseUrl: `https://127.0.0.1:${systemPort}/v2`,
        credentialSecretId: w.connection.credentialSecretId,
        credentialHeader: 'x-api-key',
        operations: [w.connection.operations[0]!],
      },
      as(w.tenantId),
    );
    expect(updated.connection?.operations.map((o) => o.name)).toEqual([w.connection.operations[0]!.name]);
    expect(updated.connection?.credentialHeader).toBe('x-api-key');
    const refused = await codeOf(
      edge.updateConnection(
        { connectionId: w.connection.id, name: 'crm', baseUrl: `https://10.0.0.1:${systemPort}/`, operations: [] },
        as(w.tenantId),
      ),
    );
    expect(refused).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining('address-range') });
    await edge.deleteConnection({ connectionId: w.connection.id }, as(w.tenantId));
    expect((await codeOf(edge.getConnection({ connectionId: w.connection.id }, as(w.tenantId)))).code).toBe(Code.NotFound);
    const actions = await Promise.all(
      ['connection.create', 'connection.update', 'connection.delete'].map(
        async (a) => (await readOutbox(admin, 'integrations', w.tenantId, a)).length,
      ),
    );
    expect(actions).toEqual([1, 1, 1]);
  });

  it('audits a call that egress refuses at send time with the rule, and sends nothing', async () => {
    const w = await world();
    // A base URL that passed when saved but breaks the rules now (saved under an older policy): checked again at the call.
    await admin.query(`update parley_integrations.connections set base_url = $1 where tenant_id = $2 and id = $3`, [
      `https://10.0.0.1:${systemPort}/api`,
      w.tenantId,
      w.connection.id,
    ]);
    const orchestrator = await clientAs('voice-orchestrator');
    const before = seen.length;
    const refused = await codeOf(
      orchestrator.callTool({
        tenantId: w.tenantId,
        conversationId: w.conversationId,
        agentId: w.agentId,
        tool: 'lookup_customer',
        arguments: { customer_id: 'c_9' },
      }),
    );
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.message).toContain('egress refused');
    expect(seen.length).toBe(before);
    const events = await readOutbox(admin, 'integrations', w.tenantId, 'connection.call');
    expect(events.map((e) => [e.description?.outcome, e.description?.reason, e.description?.rule])).toEqual([
      ['refused', 'egress_refused', 'address-range'],
    ]);
    expect(JSON.stringify(events)).not.toContain('c_9');
  });

  it('checks the credential secret when a connection is saved: it must exist in the workspace and be a tool secret', async () => {
    const w = await world();
    const edge = await clientAs('edge');
    const both = as(w.tenantId, ['connections:admin', 'secrets:write']);
    const op = {
      name: 'ping',
      description: '',
      method: 'GET',
      pathTemplate: '/ping',
      argumentsSchema: { type: 'object' },
      scope: 'x:read',
    };
    const create = (credentialSecretId: string) =>
      codeOf(
        edge.createConnection({ name: 'other', baseUrl: `https://127.0.0.1:${systemPort}/`, credentialSecretId, operations: [op] }, both),
      );
    const unknown = randomUUID();
    const missing = await create(unknown);
    expect(missing.code).toBe(Code.NotFound);
    expect(missing.message).toBe(
      `credential_secret_id: no secret ${unknown} in this workspace; put the credential with SecretService.PutSecret (provider_kind "tool") and use the id it returns`,
    );
    // Another workspace's tool secret is just as unknown here.
    const elsewhere = await world();
    expect((await create(elsewhere.connection.credentialSecretId)).code).toBe(Code.NotFound);
    const edgeSecrets = await stack.clientAs('edge', SecretsService);
    const llm = await edgeSecrets.putSecret(
      { name: `llm-${randomUUID().slice(0, 8)}`, providerKind: 'llm', value: 'sk-x' },
      as(w.tenantId, ['secrets:write']),
    );
    const wrongKind = await create(llm.secret!.id);
    expect(wrongKind.code).toBe(Code.InvalidArgument);
    expect(wrongKind.message).toContain(`secret ${llm.secret!.id} is not of provider kind "tool"`);
    expect((await create('not-a-uuid')).message).toMatch(/^credential_secret_id: must be a UUID/);
    // An update to a missing secret is refused the same way and leaves the connection as it was.
    const update = await codeOf(
      edge.updateConnection(
        {
          connectionId: w.connection.id,
          name: 'crm',
          baseUrl: w.connection.baseUrl,
          credentialSecretId: unknown,
          operations: w.connection.operations,
        },
        both,
      ),
    );
    expect(update.code).toBe(Code.NotFound);
    const listed = await edge.listConnections({}, as(w.tenantId));
    expect(listed.connections.map((c) => [c.name, c.credentialSecretId])).toEqual([['crm', w.connection.credentialSecretId]]);
    expect(await readOutbox(admin, 'integrations', w.tenantId, 'connection.update')).toEqual([]);
  });

  it('refuses an operator with connections:admin alone re-pointing a credential at another host or secret', async () => {
    const w = await world();
    // A second connection of the workspace with its own tool credential: the one the attacker wants.
    const edgeSecrets = await stack.clientAs('edge', SecretsService);
    const both = as(w.tenantId, ['connections:admin', 'secrets:write']);
    const victimKey = `erp-key-${randomBytes(12).toString('hex')}`;
    const victimSecret = await edgeSecrets.putSecret(
      { name: `erp-${randomUUID().slice(0, 8)}`, providerKind: 'tool', value: victimKey },
      as(w.tenantId, ['secrets:write']),
    );
    const edge = await clientAs('edge');
    const erpOp = {
      name: 'erp_ping',
      description: '',
      method: 'GET',
      pathTemplate: '/ping',
      argumentsSchema: { type: 'object' },
      scope: 'erp:read',
    };
    await edge.createConnection(
      { name: 'erp', baseUrl: `https://127.0.0.1:${systemPort}/erp`, credentialSecretId: victimSecret.secret!.id, operations: [erpOp] },
      both,
    );
    const attacker = as(w.tenantId, ['connections:admin']);
    const attackerUrl = `https://attacker.example/collect`;
    const before = seen.length;
    const crm = w.connection;
    const update = (fields: { baseUrl?: string; credentialSecretId?: string }, who = attacker) =>
      codeOf(
        edge.updateConnection(
          {
            connectionId: crm.id,
            name: 'crm',
            baseUrl: fields.baseUrl ?? crm.baseUrl,
            credentialSecretId: fields.credentialSecretId ?? crm.credentialSecretId,
            operations: crm.operations,
          },
          who,
        ),
      );
    // 1. Move the connection, credential and all, to the attacker's host.
    const moved = await update({ baseUrl: attackerUrl });
    expect(moved.code).toBe(Code.PermissionDenied);
    expect(moved.message).toContain('moving a connection that has a credential to another origin needs the "secrets:write" scope');
    // 2. Swap in the other connection's secret.
    const swapped = await update({ credentialSecretId: victimSecret.secret!.id });
    expect(swapped.code).toBe(Code.PermissionDenied);
    expect(swapped.message).toContain(`changing a connection's credential needs the "secrets:write" scope`);
    // 3. A new connection at the attacker's host with the other connection's secret.
    const created = await codeOf(
      edge.createConnection(
        {
          name: 'exfil',
          baseUrl: attackerUrl,
          credentialSecretId: victimSecret.secret!.id,
          operations: [{ ...erpOp, name: 'exfil_ping' }],
        },
        attacker,
      ),
    );
    expect(created.code).toBe(Code.PermissionDenied);
    expect(created.message).toContain('giving a connection a credential needs the "secrets:write" scope');
    // 4. Even with secrets:write, a tool secret serves one connection.
    const shared = await update({ credentialSecretId: victimSecret.secret!.id }, both);
    expect(shared.code).toBe(Code.InvalidArgument);
    expect(shared.message).toContain(`secret ${victimSecret.secret!.id} is already the credential of connection erp`);
    // Nothing changed, nothing was sent anywhere.
    const now = await edge.getConnection({ connectionId: crm.id }, attacker);
    expect([now.connection?.baseUrl, now.connection?.credentialSecretId]).toEqual([crm.baseUrl, crm.credentialSecretId]);
    expect((await edge.listConnections({}, attacker)).connections.map((c) => c.name).sort()).toEqual(['crm', 'erp']);
    expect(seen.length).toBe(before);
    // What connections:admin alone may still do: change the path on the same origin, or drop the credential.
    const samePlace = await update({ baseUrl: `https://127.0.0.1:${systemPort}/api/v2` });
    expect(samePlace.code).toBe('ok');
    const dropped = await update({ credentialSecretId: '' });
    expect(dropped.code).toBe('ok');
    // Giving it back is a credential move again.
    expect((await update({ credentialSecretId: crm.credentialSecretId })).code).toBe(Code.PermissionDenied);
    const moves = (await readOutbox(admin, 'integrations', w.tenantId, 'connection.update')).map(
      (e) => e.description?.auth_destination_changed,
    );
    expect(moves).toEqual([false, false]);
  });
});
