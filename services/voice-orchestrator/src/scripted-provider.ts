import { setTimeout as sleep } from 'node:timers/promises';
import { compileScriptedMatch, type ScriptedLlmSettings } from '@parley/conversation';
import type { ChatMessage, LlmProvider, ToolCallRequest } from './providers.js';

/**
 * scriptedProvider is the embedded default LLM: the reply comes from the agent's own rules (the
 * first whose regular expression matches the last user message, else the default reply, where
 * "{user}" echoes the message), streamed word by word with the configured delay. A rule with a
 * tool asks for that tool call first and then replies with "{tool}" replaced by its result. It lets the dev
 * stack hold a whole conversation offline and tests make the agent say exactly what they need.
 */
export function scriptedProvider(settings: ScriptedLlmSettings): LlmProvider {
  const rules = settings.rules.map((r) => ({ pattern: compileScriptedMatch(r.match), reply: r.reply, tool: r.tool }));
  return {
    kind: 'scripted',
    async *streamReply(messages: readonly ChatMessage[], signal: AbortSignal): AsyncIterable<string | ToolCallRequest> {
      const user = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
      const rule = rules.find((r) => r.pattern.test(user));
      // A rule with a tool asks for it once per user message: after its result, the reply follows.
      const last = messages[messages.length - 1];
      if (rule?.tool !== undefined && last?.role === 'user') {
        yield { type: 'tool_call', id: `call_scripted_${messages.length}`, name: rule.tool.name, arguments: rule.tool.arguments };
        return;
      }
      const toolResult = last?.role === 'tool' ? last.content : '';
      const template = rule?.reply ?? settings.defaultReply;
      const reply = template.replaceAll('{user}', user).replaceAll('{tool}', toolResult);
      const words = reply.match(/\S+\s*/gu) ?? [];
      for (const [i, word] of words.entries()) {
        signal.throwIfAborted();
        if (i > 0 && settings.delayMs > 0) await sleep(settings.delayMs, undefined, { signal });
        yield word;
      }
    },
  };
}
