// Live conversations through the APIs: the public ConversationService, the internal
// OrchestratorService, and an operator ending a conversation in tenant-data.
import { randomBytes } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { CertificateSource, createServiceClient } from '@parley/platform';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { scripted } from './fixture.js';
import { conversationRow, rules, type LiveConversations } from './live-conversation.fixture.js';

/** apisCases registers the tests of the public ConversationService, the internal OrchestratorService, and an operator ending a conversation in tenant-data, on the file's live conversations. */
export function apisCases(live: LiveConversations): void {
  describe('the public ConversationService', () => {
    const call = (method: string, body: unknown, key = live.s.stack.bootstrap.apiKey) =>
      live.s.stack.call(`/parley.api.v1.ConversationService/${method}`, body, key);

    it('lists with filters and pages, reads one, and returns the transcript decrypted with each read audited', async () => {
      const agent = await live.s.createAgent({ providerSettings: scripted(rules) });
      const since = new Date(Date.now() - 1_000).toISOString();
      const subjectRef = `customer-${randomBytes(4).toString('hex')}`;
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { client, conversationId } = await live.start(agent, { subjectRef });
        ids.push(conversationId);
        client.send({ type: 'user_text', text: 'hello' });
        await client.reply();
        if (i < 2) {
          client.send({ type: 'end' });
          await client.closed;
        } else {
          client.ws.terminate();
        }
      }
      await pollUntil(async () => (await conversationRow(ids[2] ?? ''))?.state === 'ended', 30_000);
      const first = await call('ListConversations', { agentId: agent, state: 'ended', startedAfter: since, pageSize: 2 });
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      const page1 = first.body.conversations as { id: string; state: string; agentId: string }[];
      expect(page1).toHaveLength(2);
      const second = await call('ListConversations', {
        agentId: agent,
        state: 'ended',
        startedAfter: since,
        pageSize: 2,
        pageToken: first.body.nextPageToken,
      });
      const all = [...page1, ...(second.body.conversations as { id: string }[])].map((c) => c.id);
      expect(all.sort()).toEqual([...ids].sort());
      expect((await call('ListConversations', { agentId: agent, startedBefore: since })).body.conversations ?? []).toEqual([]);
      expect((await call('ListConversations', { state: 'paused' })).status).toBe(400);

      const one = await call('GetConversation', { conversationId: ids[0] });
      expect(one.body.conversation).toMatchObject({ id: ids[0], agentId: agent, state: 'ended', endReason: 'ended by the client' });

      const transcript = await call('ListTranscriptTurns', { conversationId: ids[0] });
      expect(transcript.status, JSON.stringify(transcript.body)).toBe(200);
      expect((transcript.body.turns as { role: string; text: string }[]).map((t) => [t.role, t.text])).toEqual([
        ['user', 'hello'],
        ['assistant', 'Hello there. How can I help you today?'],
      ]);
      await pollUntil(async () => {
        const events = await live.s.stack.call(
          '/parley.api.v1.AuditService/ListEvents',
          { filter: { action: 'transcript.read', targetId: ids[0] } },
          live.s.stack.bootstrap.apiKey,
        );
        return ((events.body.events as unknown[] | undefined) ?? []).length > 0;
      }, 10_000);
    });

    it('refuses a key without conversations:read', async () => {
      const created = await live.s.stack.call(
        '/parley.api.v1.ApiKeyService/CreateApiKey',
        { name: 'agents only', scopes: ['agents:read'] },
        live.s.stack.bootstrap.apiKey,
      );
      const key = created.body.secret as string;
      const res = await call('ListConversations', {}, key);
      expect(res.status).toBe(403);
      expect(res.body.message).toMatch(/conversations:read/);
    });

    it('ends a live conversation, and its connection closes', async () => {
      const { client, conversationId } = await live.start();
      const res = await call('EndConversation', { conversationId, reason: 'operator took over' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.conversation).toMatchObject({ state: 'ended', endReason: 'operator took over' });
      expect((await client.closed).code).toBe(1000);
      expect((await call('EndConversation', { conversationId })).status).toBe(400);
      await pollUntil(async () => {
        const events = await live.s.stack.call(
          '/parley.api.v1.AuditService/ListEvents',
          { filter: { action: 'conversation.end', targetId: conversationId } },
          live.s.stack.bootstrap.apiKey,
        );
        return ((events.body.events as unknown[] | undefined) ?? []).length === 1;
      }, 10_000);
    });
  });

  describe('the internal OrchestratorService', () => {
    it('reports the live conversations of the replica and ends one politely; callers off the allow-list are refused', async () => {
      const orchestrator = createServiceClient(OrchestratorService, {
        baseUrl: live.s.orchestratorUrl,
        certificates: await CertificateSource.open(live.s.stack.pki.files('edge')),
        expect: 'voice-orchestrator',
        trustDomain: 'parley.local',
      });
      const tenantId = live.s.stack.bootstrap.tenantId;
      const { client, conversationId } = await live.start();
      client.send({ type: 'user_text', text: 'hello' });
      await client.reply();
      const { conversations } = await orchestrator.listLiveConversations({ tenantId });
      expect(conversations.find((c) => c.conversationId === conversationId)).toMatchObject({ agentId: live.scriptedAgent, turns: 1 });
      expect((await orchestrator.getConversationStatus({ tenantId, conversationId })).state).toBe('live');
      await expect(orchestrator.endConversation({ tenantId, conversationId: 'nope' })).rejects.toMatchObject({
        code: Code.InvalidArgument,
      });
      expect((await orchestrator.endConversation({ tenantId, conversationId, reason: 'lifecycle purge' })).endedHere).toBe(true);
      expect(await client.next((f) => f.type === 'end')).toMatchObject({ reason: 'lifecycle purge' });
      expect((await client.closed).code).toBe(1000);
      expect((await orchestrator.getConversationStatus({ tenantId, conversationId })).state).toBe('ended');
      expect(await conversationRow(conversationId)).toMatchObject({ state: 'ended', end_reason: 'lifecycle purge' });

      const asSecrets = createServiceClient(OrchestratorService, {
        baseUrl: live.s.orchestratorUrl,
        certificates: await CertificateSource.open(live.s.stack.pki.files('secrets')),
        expect: 'voice-orchestrator',
        trustDomain: 'parley.local',
      });
      await expect(asSecrets.listLiveConversations({})).rejects.toMatchObject({ code: Code.PermissionDenied });
    });
  });

  describe('an operator ends a conversation', () => {
    it('closes the connection when the conversation is ended in tenant-data', async () => {
      const { client, conversationId } = await live.start();
      const td = await live.s.tenantData();
      await td.endConversation({ tenantId: live.s.stack.bootstrap.tenantId, conversationId, endReason: 'ended by an operator' });
      expect((await client.closed).code).toBe(1000);
    });
  });
}
