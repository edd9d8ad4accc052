// Provider keys live only as long as their conversation: the runtime runs in this test process
// (as the voice-orchestrator, with its certificate) against real identity, tenant-data and
// secrets processes, so the test can hold weak references to what the conversation held and
// prove, with the garbage collector, that nothing keeps the keys once the conversation ended.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createLogger } from '@parley/platform';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import {
  createPeers,
  createProviderFetch,
  loadOrchestratorConfig,
  startConversation,
  type ConversationDeps,
  type ServerFrame,
} from '@parley/voice-orchestrator';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PublicStack } from '../edge/fixture.js';
import type { OpenAiStandin } from '../src/openai-standin.js';
import type { RuntimeStack } from './fixture.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** stack, standin and providerKey are those of the file that registered these tests (set before they run). */
let stack: PublicStack;
let standin: OpenAiStandin;
let providerKey: string;

async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** keysCases registers the tests of provider keys after the end of a conversation, on the file's stack. */
export function keysCases(runtime: RuntimeStack): void {
  beforeAll(() => {
    ({ stack, standin, providerKey } = runtime);
  });

  describe('provider keys after the end of a conversation', () => {
    it('are zeroed, refused, and unreachable', async () => {
      const owner = stack.bootstrap.apiKey;
      const secret = await stack.call(
        '/parley.api.v1.SecretService/PutSecret',
        { name: 'llm-key', providerKind: 'llm', value: providerKey },
        owner,
      );
      const secretId = (secret.body.secret as { id: string }).id;
      const agent = await stack.call(
        '/parley.api.v1.AgentService/CreateAgent',
        {
          name: 'keys',
          providerSettings: { llm: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-test' } },
          secretRefs: { llm: secretId },
        },
        owner,
      );
      const agentId = (agent.body.agent as { id: string }).id;
      const session = await stack.call(
        '/parley.api.v1.SessionService/CreateSession',
        { agentId, origin: 'https://app.example.com' },
        owner,
      );
      const token = session.body.token as string;

      const peers = createPeers({
        identity: await stack.clientAs('voice-orchestrator', 'identity', IdentityService),
        tenantData: await stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService),
        secrets: await stack.clientAs('voice-orchestrator', 'secrets', SecretsService),
      });
      const deps: ConversationDeps = {
        peers,
        logger: createLogger({ service: 'voice-orchestrator', version: 'test', level: 'silent' }),
        events: { emit: () => undefined },
        // The stand-in is on loopback: this test alone allows it (and trusts its CA).
        providerFetch: createProviderFetch(loadOrchestratorConfig(standin.egressEnv).egressPolicy, { ca: standin.caPem }),
        config: loadOrchestratorConfig({}),
      };
      const frames: ServerFrame[] = [];
      let closed: number | undefined;

      // Everything that touches the conversation stays inside this function; only weak references
      // and the buffers (to check they were zeroed) come out.
      const run = async () => {
        const conversation = await startConversation(
          deps,
          { token, origin: 'https://app.example.com' },
          {
            send: (f) => frames.push(f),
            close: (code) => {
              closed = code;
            },
          },
        );
        const keys = conversation.keysForTest();
        if (keys === undefined) throw new Error('a live conversation has its keys');
        expect(keys.reveal('llm')).toBe(providerKey);
        const buffers = keys.buffers();
        conversation.userText('hello');
        // Up to 30 s (was 200 polls of 10 ms, about 2 s, which a loaded machine's reply through the
        // LLM stand-in can take); it ends as soon as the reply is final.
        const replyDeadline = Date.now() + 30_000;
        while (Date.now() < replyDeadline && !frames.some((f) => f.type === 'assistant_text' && f.final))
          await new Promise((r) => setTimeout(r, 10));
        expect(frames.filter((f) => f.type === 'assistant_text' && !f.final).map((f) => (f as { text: string }).text)).toEqual([
          'Stand-in reply.',
          'You said: hello',
        ]);
        await conversation.end('test over');
        expect(conversation.keysForTest()).toBeUndefined();
        expect(() => keys.reveal('llm')).toThrow(/released/);
        return { buffers, keysRef: new WeakRef(keys), conversationRef: new WeakRef(conversation) };
      };
      const { buffers, keysRef, conversationRef } = await run();

      expect(closed).toBe(1000);
      expect(buffers.length).toBeGreaterThan(0);
      for (const b of buffers) expect(b.every((byte) => byte === 0)).toBe(true);
      await collectGarbage();
      expect(keysRef.deref()).toBeUndefined();
      expect(conversationRef.deref()).toBeUndefined();
    });
  });
}
