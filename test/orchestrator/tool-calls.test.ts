// Tool calls from a live conversation through real processes: the scripted model, or an
// OpenAI-compatible one (the stand-in, declared the agent's granted tools) asks for a tool,
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
import { pollUntil } from '../edge/fixture.js';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { scripted, startConversationStack, type ConversationStack } from './fixture.js';

let s: ConversationStack;
let system: Server;
let systemPort: number;
let agentId: string;
let openAiAgentId: string;
let standin: OpenAiStandin;
const providerKey = `sk-test-${randomBytes(16).toString('hex')}`;
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
  // The LLM stand-in follows OpenAI's documented streaming wire format (test/openai-standin/README.md).
  standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 1 });
  s = await startConversationStack(standin.egressEnv, {
    integrations: {
      PARLEY_EGRESS_ALLOWED_PORTS: String(systemPort),
      PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32',
      NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem'),
    },
  });
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
  const llmKey = await s.putSecret('openai-tools', providerKey);
  openAiAgentId = await s.createAgent({
    prompt: 'Use your tools.',
    providerSettings: { llm: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-test', maxRetries: 0 } },
    secretRefs: { llm: llmKey },
    guardrailPolicy: { version: 2, tools: { allowed: [{ name: 'lookup_order', scopes: ['orders:read'] }] } },
  });
}, 180_000);

afterAll(async () => {
  await s?.stop();
  await standin?.stop();
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

  it('offers an OpenAI-compatible model the granted tools, makes the call it streams, and sends it the result', async () => {
    // The model asks for lookup_order when the user asks about an order, cancel_order (never
    // declared to it: not granted) when asked to cancel, and otherwise answers with the last tool result.
    standin.setToolCalls((messages) => {
      const last = messages.at(-1);
      if (last?.role !== 'user') return undefined;
      if (last.content?.includes('cancel') === true) return [{ name: 'cancel_order', arguments: { order_id: 'o_77' } }];
      return [{ name: 'lookup_order', arguments: { order_id: 'o_77' } }];
    });
    standin.setReply((_user, messages) => {
      const last = messages.at(-1);
      return last?.role === 'tool' ? `The tool said: ${last.content ?? ''}` : 'No tool was used.';
    });
    try {
      const { token } = await s.createSession(openAiAgentId);
      const client = await s.connect();
      client.send({ type: 'start', token });
      await client.next((f) => f.type === 'ready');
      const requestsBefore = standin.requests.length;
      const seenBefore = seen.length;
      client.send({ type: 'user_text', text: 'where is my order?' });
      const granted = await client.reply();
      const said = granted.sentences.join(' ');
      expect(said).toContain('shipped');
      expect(said).toContain('Bearer [redacted]');
      // The external system got the call through integrations, the credential injected there.
      expect(seen.slice(seenBefore)).toEqual([{ path: '/api/orders/o_77', authorization: `Bearer ${credential}` }]);
      const [ask, followUp] = standin.requests.slice(requestsBefore);
      // Only the granted tool is declared, with the operation's description and schema.
      expect(ask?.body.tools).toEqual([
        {
          type: 'function',
          function: {
            name: 'lookup_order',
            description: 'Finds an order',
            parameters: { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] },
          },
        },
      ]);
      const assistant = followUp?.body.messages?.find((m) => m.role === 'assistant' && m.tool_calls !== undefined);
      const callId = assistant?.tool_calls?.[0]?.id;
      expect(assistant?.tool_calls).toEqual([
        { id: callId, type: 'function', function: { name: 'lookup_order', arguments: '{"order_id":"o_77"}' } },
      ]);
      const result = followUp?.body.messages?.at(-1);
      expect(result).toMatchObject({ role: 'tool', tool_call_id: callId });
      expect(result?.content).toContain('shipped');
      expect(result?.content).not.toContain(credential);

      // A tool that is not granted: refused by the guardrail before integrations, and the model gets the refusal.
      const afterGranted = standin.requests.length;
      client.send({ type: 'user_text', text: 'cancel it' });
      const blocked = await client.next((f) => f.type === 'event' && f.name === 'guardrail' && f.action === 'block_tool');
      expect(blocked.rule).toBe('tool:cancel_order');
      const refused = await client.reply();
      expect(refused.sentences.join(' ')).toContain('blocked');
      expect(seen.length).toBe(seenBefore + 1);
      const refusal = standin.requests.slice(afterGranted).at(-1)?.body.messages?.at(-1);
      expect(refusal?.role).toBe('tool');
      expect(JSON.parse(refusal?.content ?? '{}')).toMatchObject({ error: 'blocked' });
      // The guardrail's refusal is an access event of the connection, like a call that was made.
      const calls = async () => {
        const res = await s.stack.call(
          '/parley.api.v1.AuditService/ListEvents',
          { filter: { action: 'connection.call' } },
          s.stack.bootstrap.apiKey,
        );
        return ((res.body.events as { description?: Record<string, unknown> }[] | undefined) ?? []).map((e) => e.description ?? {});
      };
      const ofThisAgent = (d: Record<string, unknown>) => d.reason === 'guardrail' && d.agent_id === openAiAgentId;
      await pollUntil(async () => (await calls()).some(ofThisAgent), 30_000);
      const audited = (await calls()).filter(ofThisAgent);
      expect(audited.map((d) => [d.tool, d.outcome, d.rule])).toEqual([['cancel_order', 'refused', 'tool:cancel_order']]);
      expect(JSON.stringify(audited)).not.toContain('o_77');
      client.send({ type: 'end' });
      await client.closed;
      expect(s.logs.join('\n')).not.toContain(credential);
      expect(s.logs.join('\n')).not.toContain(providerKey);
    } finally {
      standin.setToolCalls(undefined);
      standin.setReply(undefined);
    }
  });
});
