import { setTimeout as sleep } from 'node:timers/promises';
import { SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { EgressRefusedError } from '@parley/egress';
import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionFunctionTool, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { ProviderFetch } from './provider-fetch.js';
import type { OpenAiLlmSettings } from '@parley/conversation';
import { ProviderError, type ChatMessage, type LlmProvider, type ToolCallRequest, type ToolDeclaration } from './providers.js';

/** OpenAiProviderDeps are what the adapter needs besides its settings. */
export interface OpenAiProviderDeps {
  /** apiKey reads the key from the conversation's key holder at each attempt (throws once released). */
  readonly apiKey: () => string;
  /** fetch is the provider door (createProviderFetch: the egress client). */
  readonly fetch: ProviderFetch;
  /** defaultTimeoutMs applies when the agent's settings name none. */
  readonly defaultTimeoutMs: number;
  /** tracer defaults to the global provider's (tests pass their own). */
  readonly tracer?: Tracer;
  /** tools are declared to the model (the agent's granted tools); none: the request names no tools. */
  readonly tools?: readonly ToolDeclaration[];
}

/** MAX_TOOL_CALLS bounds the calls one streamed answer may ask for: the provider sits at a customer's base URL. */
const MAX_TOOL_CALLS = 16;
/** MAX_TOOL_ARGUMENT_CHARS bounds the arguments text of one answer's tool calls, all together. */
const MAX_TOOL_ARGUMENT_CHARS = 64 * 1024;
/** MAX_TOOL_NAME_CHARS / MAX_TOOL_CALL_ID_CHARS bound what the model may put in a call's name and id (they go into the transcript and back to the provider). */
const MAX_TOOL_NAME_CHARS = 64;
const MAX_TOOL_CALL_ID_CHARS = 128;

/** toOpenAiTools declares tools the way Chat Completions documents them: `{type: "function", function: {name, description, parameters}}`. */
function toOpenAiTools(tools: readonly ToolDeclaration[]): ChatCompletionFunctionTool[] {
  return tools.map((t) => ({
    type: 'function',
    function: { name: t.name, ...(t.description !== '' ? { description: t.description } : {}), parameters: t.parameters },
  }));
}

/**
 * toOpenAiMessages turns the history into Chat Completions messages: an assistant message with
 * its tool_calls, then one `role: "tool"` message per result naming its tool_call_id. A result
 * whose call is not in the history (cut by the history limit, or made with another provider) is
 * left out, since the API refuses it.
 */
export function toOpenAiMessages(messages: readonly ChatMessage[]): ChatCompletionMessageParam[] {
  const offered = new Set<string>();
  const out: ChatCompletionMessageParam[] = [];
  for (const m of messages) {
    if (m.role === 'tool') {
      if (m.toolCallId !== undefined && offered.has(m.toolCallId))
        out.push({ role: 'tool', tool_call_id: m.toolCallId, content: m.content });
    } else if (m.role === 'assistant' && m.toolCalls !== undefined && m.toolCalls.length > 0) {
      for (const c of m.toolCalls) offered.add(c.id);
      out.push({
        role: 'assistant',
        content: m.content === '' ? null : m.content,
        tool_calls: m.toolCalls.map((c) => ({
          id: c.id,
          type: 'function',
          function: { name: c.name, arguments: JSON.stringify(c.arguments) },
        })),
      });
    } else {
      out.push({ role: m.role, content: m.content });
    }
  }
  return out;
}

/** PartialToolCall is one tool call being assembled from a stream's fragments. */
interface PartialToolCall {
  id: string;
  name: string;
  arguments: string;
}

/**
 * ToolCallAssembler gathers streamed `delta.tool_calls` fragments by their index: the first names
 * the id and function name, later ones append to function.arguments.
 */
class ToolCallAssembler {
  readonly #calls = new Map<number, PartialToolCall>();
  #chars = 0;

  get size(): number {
    return this.#calls.size;
  }

  add(fragments: NonNullable<ChatCompletionChunk.Choice.Delta['tool_calls']>): void {
    for (const f of fragments) {
      let call = this.#calls.get(f.index);
      if (call === undefined) {
        if (this.#calls.size >= MAX_TOOL_CALLS)
          throw new ProviderError(`LLM provider asked for more than ${MAX_TOOL_CALLS} tool calls at once`, { retryable: false });
        call = { id: '', name: '', arguments: '' };
        this.#calls.set(f.index, call);
      }
      if (f.id !== undefined && f.id !== '') call.id = f.id;
      // The name comes whole in a call's first fragment (set, not appended, as the openai client's own accumulator does).
      if (f.function?.name !== undefined && f.function.name !== '') call.name = f.function.name;
      if (call.name.length > MAX_TOOL_NAME_CHARS || call.id.length > MAX_TOOL_CALL_ID_CHARS)
        throw new ProviderError(
          `LLM provider's tool call name or id is too long (at most ${MAX_TOOL_NAME_CHARS} and ${MAX_TOOL_CALL_ID_CHARS} characters)`,
          { retryable: false },
        );
      const more = f.function?.arguments ?? '';
      this.#chars += more.length;
      if (this.#chars > MAX_TOOL_ARGUMENT_CHARS)
        throw new ProviderError(`LLM provider's tool call arguments exceed ${MAX_TOOL_ARGUMENT_CHARS} characters`, { retryable: false });
      call.arguments += more;
    }
  }

  /** requests are the finished calls in index order; arguments that are not a JSON object make a call that is refused, not made. */
  requests(): ToolCallRequest[] {
    return [...this.#calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, c]) => {
        const base = { type: 'tool_call' as const, id: c.id !== '' ? c.id : `call_${index}`, name: c.name };
        let parsed: unknown;
        try {
          parsed = c.arguments.trim() === '' ? {} : JSON.parse(c.arguments);
        } catch {
          return { ...base, arguments: {}, argumentsError: 'the arguments are not valid JSON; send a JSON object' };
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          return { ...base, arguments: {}, argumentsError: 'the arguments are not a JSON object' };
        return { ...base, arguments: parsed as Record<string, unknown> };
      });
  }
}

/** egressRefusal finds an EgressRefusedError in an error's cause chain (the openai client wraps what fetch throws). */
function egressRefusal(err: unknown): EgressRefusedError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof EgressRefusedError) return e;
  }
  return undefined;
}

/** classifyProviderError turns what the openai client threw into a ProviderError whose message names the kind of provider ("LLM", "STT", "TTS"). */
export function classifyProviderError(err: unknown, what = 'LLM'): ProviderError {
  if (err instanceof ProviderError) return err;
  const refused = egressRefusal(err);
  // The agent's base URL breaks an egress rule: the workspace must fix it, another try cannot help.
  if (refused !== undefined)
    return new ProviderError(`${what} provider base URL refused by the egress rule ${refused.rule}`, {
      retryable: false,
      cause: err,
      egressRule: refused.rule,
    });
  if (err instanceof OpenAI.APIError) {
    const status = err.status;
    // 408, 409, 429 and 5xx are worth another try; other 4xx are the agent's configuration.
    const retryable = status === undefined || status === 408 || status === 409 || status === 429 || status >= 500;
    return new ProviderError(`${what} provider answered ${status ?? 'without a status'}`, { retryable, cause: err });
  }
  return new ProviderError(`${what} provider unreachable`, { retryable: true, cause: err });
}

/**
 * openAiCompatibleProvider streams chat completions from an OpenAI-compatible endpoint with the
 * official `openai` client (its SSE decoding, our fetch). Retries happen only before the first
 * token: once text has reached the user, a retry would repeat it. Spans carry the model, the
 * endpoint's host and timings, never prompt text or the key.
 */
export function openAiCompatibleProvider(settings: OpenAiLlmSettings, deps: OpenAiProviderDeps): LlmProvider {
  const timeoutMs = settings.timeoutMs ?? deps.defaultTimeoutMs;
  const client = new OpenAI({
    apiKey: async () => deps.apiKey(),
    baseURL: settings.baseUrl,
    organization: null,
    project: null,
    fetch: deps.fetch,
    // Our own loop retries, and only before the first token.
    maxRetries: 0,
    timeout: timeoutMs,
  });
  const host = new URL(settings.baseUrl).host;
  const tools = deps.tools !== undefined && deps.tools.length > 0 ? toOpenAiTools(deps.tools) : undefined;
  const tracer = deps.tracer ?? trace.getTracer('@parley/voice-orchestrator');
  return {
    kind: 'openai-compatible',
    async *streamReply(messages: readonly ChatMessage[], signal: AbortSignal) {
      const span = tracer.startSpan('llm.chat_completions', {
        attributes: { 'gen_ai.system': 'openai-compatible', 'gen_ai.request.model': settings.model, 'server.address': host },
      });
      const started = performance.now();
      let attempt = 0;
      let chars = 0;
      try {
        for (;;) {
          attempt++;
          // gotToken: text reached the caller (no retry after that); answered: the provider sent anything (the timer stops).
          let gotToken = false;
          let answered = false;
          const calls = new ToolCallAssembler();
          // The first token must arrive within the timeout; after that the stream runs as long as the reply.
          const firstToken = new AbortController();
          const timer = setTimeout(() => firstToken.abort(new ProviderError('LLM provider timed out', { retryable: true })), timeoutMs);
          // Aborted when this attempt is left early (a consumer that stops reading), so the request never lingers.
          const attemptDone = new AbortController();
          const combined = AbortSignal.any([signal, firstToken.signal, attemptDone.signal]);
          let finished = false;
          try {
            const stream = await client.chat.completions.create(
              {
                model: settings.model,
                messages: toOpenAiMessages(messages),
                ...(tools !== undefined ? { tools } : {}),
                stream: true,
                ...(settings.temperature !== undefined ? { temperature: settings.temperature } : {}),
                ...(settings.maxTokens !== undefined ? { max_tokens: settings.maxTokens } : {}),
              },
              { signal: combined },
            );
            for await (const chunk of stream) {
              const choice = chunk.choices[0];
              if (choice?.finish_reason !== null && choice?.finish_reason !== undefined) finished = true;
              const fragments = choice?.delta?.tool_calls;
              const delta = choice?.delta?.content;
              const hasText = delta !== undefined && delta !== null && delta !== '';
              if (!hasText && (fragments === undefined || fragments === null || fragments.length === 0)) continue;
              if (!answered) {
                answered = true;
                clearTimeout(timer);
                span.setAttribute('llm.first_token_ms', Math.round(performance.now() - started));
              }
              // Tool calls are assembled and handed over once the answer is complete; nothing of them reaches the caller.
              if (fragments !== undefined && fragments !== null && fragments.length > 0) calls.add(fragments);
              if (!hasText) continue;
              gotToken = true;
              chars += delta.length;
              yield delta;
            }
            clearTimeout(timer);
            // The client ends an aborted stream quietly; an abort is never a finished reply.
            if (signal.aborted) throw signal.reason;
            if (firstToken.signal.aborted) throw firstToken.signal.reason;
            // A stream cut before its finish_reason is a provider failure, not a short reply.
            if (!finished) throw new ProviderError('LLM provider stream ended early', { retryable: true });
            // finish_reason "tool_calls": the turn makes them and asks again with their results.
            if (calls.size > 0) {
              const requests = calls.requests();
              span.setAttribute('llm.tool_calls', requests.length);
              yield* requests;
            }
            return;
          } catch (err) {
            clearTimeout(timer);
            if (signal.aborted) throw signal.reason;
            const failure = firstToken.signal.aborted ? (firstToken.signal.reason as ProviderError) : classifyProviderError(err);
            if (gotToken || !failure.retryable || attempt > settings.maxRetries) throw failure;
            await sleep(Math.min(2_000, 100 * 2 ** (attempt - 1)), undefined, { signal });
          } finally {
            attemptDone.abort();
          }
        }
      } catch (err) {
        if (!signal.aborted) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : 'failed' });
        throw err;
      } finally {
        span.setAttributes({ 'llm.attempts': attempt, 'llm.output_chars': chars, 'llm.cancelled': signal.aborted });
        span.end();
      }
    },
  };
}
