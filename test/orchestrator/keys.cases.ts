// Provider keys live only as long as their conversation: the runtime runs in this test process
// (as the voice-orchestrator, with its certificate) against real identity, tenant-data and
// secrets processes, so the test can hold weak references to what the conversation held and
// prove, with the garbage collector, that nothing keeps the keys once the conversation ended.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startConversation, type ServerFrame } from '@parley/voice-orchestrator';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OpenAiStandin } from '../src/openai-standin.js';
import { runtimeDeps, runtimeSession, type RuntimeStack } from './runtime.fixture.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** standin and providerKey are those of the file that registered these tests (set before they run). */
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
    ({ standin, providerKey } = runtime);
  });

  describe('provider keys after the end of a conversation', () => {
    it('are zeroed, refused, and unreachable', async () => {
      const token = await runtimeSession(runtime, { name: 'llm-key', providerKind: 'llm' }, (secretId) => ({
        name: 'keys',
        providerSettings: { llm: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-test' } },
        secretRefs: { llm: secretId },
      }));
      const deps = await runtimeDeps(runtime);
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
