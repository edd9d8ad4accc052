// A turn's reply window (the caller's words → the reply's first output) as LiveConversation keeps
// it: the runtime runs in this test process against real identity, tenant-data and secrets
// processes, the scripted LLM and the OpenAI-compatible stand-in for TTS. The window must be open until the
// first audio frame of a voice reply (not merely its text), closed once it is out, and the turn's
// transcript still stored (the recorder waits for the window, not for ever).
import { ReplyWindows, startConversation, type ConversationDeps, type ServerFrame } from '@parley/voice-orchestrator';
import { beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, type PublicStack } from '../edge/fixture.js';
import type { OpenAiStandin } from '../src/openai-standin.js';
import { runtimeDeps, runtimeSession, type RuntimeStack } from './runtime.fixture.js';

/** stack and standin are those of the file that registered these tests (set before they run). */
let stack: PublicStack;
let standin: OpenAiStandin;

/** CountedWindows is the process's ReplyWindows, counting how many are open. */
class CountedWindows extends ReplyWindows {
  opened = 0;
  override open(): () => void {
    this.opened++;
    return super.open();
  }
}

/** replyWindowsCases registers the tests of reply windows, on the file's stack. */
export function replyWindowsCases(runtime: RuntimeStack): void {
  beforeAll(() => {
    ({ stack, standin } = runtime);
  });

  describe('reply windows', () => {
    it("stay open until a voice reply's first audio frame, close then, and the turn is still stored", async () => {
      const token = await runtimeSession(runtime, { name: 'speech-key', providerKind: 'tts' }, (secretId) => ({
        name: 'windows',
        providerSettings: {
          llm: { provider: 'scripted', rules: [{ match: 'hello', reply: 'Hi there. How can I help?' }], delayMs: 0 },
          tts: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-4o-mini-tts', voice: 'alloy' },
        },
        secretRefs: { tts: secretId },
      }));
      const windows = new CountedWindows();
      const deps: ConversationDeps = { ...(await runtimeDeps(runtime)), replyWindows: windows };
      // What the window was when each output left: open (false) or quiet (true).
      const atText: boolean[] = [];
      const atAudio: boolean[] = [];
      const frames: ServerFrame[] = [];
      const conversation = await startConversation(
        deps,
        { token, origin: 'https://app.example.com', audio: { format: 'pcm16', sampleRate: 16_000 } },
        {
          send: (f) => {
            frames.push(f);
            if (f.type === 'assistant_text' && !f.final) atText.push(windows.quiet);
          },
          close: () => undefined,
          sendAudio: () => {
            atAudio.push(windows.quiet);
          },
          bufferedBytes: () => 0,
        },
      );
      conversation.begin();
      expect(windows.quiet).toBe(true);
      conversation.userText('hello');
      expect(windows.opened).toBe(1);
      expect(windows.quiet).toBe(false);
      await pollUntil(async () => frames.some((f) => f.type === 'assistant_text' && f.final), 30_000, 10);
      // The reply's text went while the window was open, and so did its first audio frame (the window
      // closes right after it); every later frame found it closed.
      expect(atText[0]).toBe(false);
      expect(atAudio.length).toBeGreaterThan(1);
      expect(atAudio[0]).toBe(false);
      expect(atAudio.slice(1).every((quiet) => quiet)).toBe(true);
      expect(windows.quiet).toBe(true);
      await conversation.end('test over');

      // The turn (question and reply) was stored, after the window.
      const turns = await stack.call(
        '/parley.api.v1.ConversationService/ListTranscriptTurns',
        { conversationId: conversation.conversationId },
        stack.bootstrap.apiKey,
      );
      const roles = ((turns.body.turns ?? []) as { role: string }[]).map((t) => t.role);
      expect(roles.slice(0, 2)).toEqual(['user', 'assistant']);
    });
  });
}
