import { setTimeout as sleep } from 'node:timers/promises';
import { compileScriptedMatch, type ScriptedLlmSettings } from '@parley/conversation';
import type { ChatMessage, LlmProvider } from './providers.js';

/**
 * scriptedProvider is the embedded default LLM: the reply comes from the agent's own rules (the
 * first whose regular expression matches the last user message, else the default reply, where
 * "{user}" echoes the message), streamed word by word with the configured delay. It lets the dev
 * stack hold a whole conversation offline and tests make the agent say exactly what they need.
 */
export function scriptedProvider(settings: ScriptedLlmSettings): LlmProvider {
  const rules = settings.rules.map((r) => ({ pattern: compileScriptedMatch(r.match), reply: r.reply }));
  return {
    kind: 'scripted',
    async *streamReply(messages: readonly ChatMessage[], signal: AbortSignal) {
      const user = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
      const template = rules.find((r) => r.pattern.test(user))?.reply ?? settings.defaultReply;
      const reply = template.replaceAll('{user}', user);
      const words = reply.match(/\S+\s*/gu) ?? [];
      for (const [i, word] of words.entries()) {
        signal.throwIfAborted();
        if (i > 0 && settings.delayMs > 0) await sleep(settings.delayMs, undefined, { signal });
        yield word;
      }
    },
  };
}
