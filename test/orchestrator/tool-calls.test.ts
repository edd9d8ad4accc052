// Tool calls from a live conversation through real processes: the scripted model asks for a tool,
// the orchestrator checks it against the agent's guardrail policy and has integrations make it;
// integrations checks the grant, resolves the connection's credential from secrets and calls a local
// HTTPS "external system" (the private allow-list is on for 127.0.0.1 in this file only) that
// echoes the headers it got. The system sees the credential; the conversation, its transcript and
// the orchestrator's logs never do.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scripted, startConversationStack, type ConversationStack } from './fixture.js';

let s: ConversationStack;
let system: Server;
let systemPort: number;
let agentId: string;
const credential = `crm-key-${randomBytes(12).toString('hex')}`;
const seen: Array<{ path: string; authorization: string | undefined }> = [];

beforeAll(async () => {
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['crm.test'], ipAddresses: ['127.0.0.1'] });
  system = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    req.on('end', () =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: 'shipped', auth: req.headers.authorization })),
    );
  });
  await new Promise<void>((resolve) => system.listen(0, '127.0.0.1', resolve));
  systemPort = (system.address() as AddressInfo).port;
  const dir = await mkdtemp(join(tmpdir(), 'parley-tools-ca-'));
  await writeFile(join(dir, 'ca.pem'), authority.certPem);
  s = await startConversationStack(
    {},
    {
      integrations: {
        PARLEY_EGRESS_ALLOWED_PORTS: String(systemPort),
        PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32',
        NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem'),
      },
    },
  );
  const key = s.stack.bootstrap.apiKey;
  const secret = await s.stack.call(
    '/parley.api.v1.SecretService/PutSecret',
    { name: 'crm-key', providerKind: 'tool', value: credential },
    key,
  );
  expect(secret.status, JSON.stringify(secret.body)).toBe(200);
  const connection = await s.stack.call(
    '/parley.api.v1.ConnectionService/CreateConnection',
    {
      name: 'crm',
      baseUrl: `https://127.0.0.1:${systemPort}/api`,
      credentialSecretId: (secret.body.secret as { id: string }).id,
      operations: [
        {
          name: 'lookup_order',
          description: 'Finds an order',
          method: 'GET',
          pathTemplate: '/orders/{order_id}',
          argumentsSchema: { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] },
          scope: 'orders:read',
        },
        {
          name: 'cancel_order',
          method: 'POST',
          pathTemplate: '/orders/{order_id}/cancel',
          argumentsSchema: { type: 'object' },
          scope: 'orders:write',
        },
      ],
    },
    key,
  );
  expect(connection.status, JSON.stringify(connection.body)).toBe(200);
  agentId = await s.createAgent({
    providerSettings: scripted([
      { match: 'where', reply: 'Here is what I found: {tool}', tool: { name: 'lookup_order', arguments: { order_id: 'o_77' } } },
      { match: 'cancel', reply: 'Cancelling: {tool}', tool: { name: 'cancel_order', arguments: { order_id: 'o_77' } } },
    ]),
    guardrailPolicy: { version: 2, tools: { allowed: [{ name: 'lookup_order', scopes: ['orders:read'] }] } },
  });
}, 180_000);

afterAll(async () => {
  await s?.stop();
  system?.closeAllConnections();
  await new Promise((resolve) => system?.close(resolve));
});

describe('tool calls from a conversation', () => {
  it('makes a granted call with the credential injected by integrations, and a refused one never leaves Parley', async () => {
    const { token } = await s.createSession(agentId);
    const client = await s.connect();
    client.send({ type: 'start', token });
    await client.next((f) => f.type === 'ready');
    const before = seen.length;
    client.send({ type: 'user_text', text: 'where is my order?' });
    const granted = await client.reply();
    const said = granted.sentences.join(' ');
    expect(said).toContain('shipped');
    expect(said).toContain('Bearer [redacted]');
    expect(seen.slice(before)).toEqual([{ path: '/api/orders/o_77', authorization: `Bearer ${credential}` }]);
    // The policy does not allow cancel_order: blocked before integrations, nothing sent.
    client.send({ type: 'user_text', text: 'cancel it' });
    const blocked = await client.next((f) => f.type === 'event' && f.name === 'guardrail' && f.action === 'block_tool');
    expect(blocked.rule).toBe('tool:cancel_order');
    const refused = await client.reply();
    expect(refused.sentences.join(' ')).toContain('blocked');
    expect(seen.length).toBe(before + 1);
    client.send({ type: 'end' });
    await client.closed;
    expect(s.logs.join('\n')).not.toContain(credential);
  });
});
