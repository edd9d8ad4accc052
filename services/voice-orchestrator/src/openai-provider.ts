// The OpenAI-compatible LLM adapter: Chat Completions, streamed as server-sent events. The
// request is OpenAI's documented JSON and the events are read with `eventsource-parser`; the
// request goes through the provider door's `request` (undici's request API over the egress pool)
// rather than through the `openai` client, whose per-request work (its request builder, headers,
// logging, WHATWG fetch and web streams) cost more CPU than the rest of a reply's turn
// (bench/README.md, voice: session 7). The `openai` package still supplies the wire types.
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { EgressRefusedError, type EgressStreamResponse } from '@parley/egress';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
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

/** egressRefusal finds an EgressRefusedError in an error's cause chain (undici may wrap what the pool's connect lookup throws). */
function egressRefusal(err: unknown): EgressRefusedError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof EgressRefusedError) return e;
  }
  return undefined;
}

/** classifyProviderError turns what a provider request threw into a ProviderError whose message names the kind of provider ("LLM", "STT", "TTS"). */
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
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    return new ProviderError(`${what} provider timed out`, { retryable: true, cause: err });
  return new ProviderError(`${what} provider unreachable`, { retryable: true, cause: err });
}

/** answeredStatus is a provider's non-2xx answer as a ProviderError: 408, 409, 429 and 5xx are worth another try; other 4xx are the agent's configuration. */
export function answeredStatus(status: number, what: string): ProviderError {
  return new ProviderError(`${what} provider answered ${status}`, {
    retryable: status === 408 || status === 409 || status === 429 || status >= 500,
  });
}

/** providerEndpoint joins a base URL and an API path the way the `openai` client does (`{baseUrl}/chat/completions`). */
export function providerEndpoint(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/${path}`;
}

/** MAX_BYTES_AFTER_DONE is how much of a body after `data: [DONE]` is read (and dropped) to keep its connection. */
const MAX_BYTES_AFTER_DONE = 16 * 1024;
/** MAX_EVENT_CHARS bounds what eventsource-parser may buffer of one unfinished line or event: the provider sits at a customer's base URL. */
export const MAX_EVENT_CHARS = 1024 * 1024;
/** MAX_STREAM_BYTES bounds the body of one answer, events of any kind together (a reply is a few kilobytes of chunks). */
export const MAX_STREAM_BYTES = 16 * 1024 * 1024;
/** MAX_REPLY_CHARS bounds the text of one reply: it is spoken and stored, and no spoken answer is this long. */
export const MAX_REPLY_CHARS = 256 * 1024;

/**
 * chunksOf reads a Chat Completions stream: server-sent events (parsed by eventsource-parser),
 * each `data` a JSON chunk, until `data: [DONE]` or the end of the body. An `error` event or a
 * chunk carrying `error` is the provider failing mid-stream (retryable before the first token, as
 * any failure); data that is not JSON is too. A line or event longer than MAX_EVENT_CHARS, or a
 * body longer than MAX_STREAM_BYTES, fails the answer (not retried: the endpoint would send it
 * again) instead of growing the orchestrator's memory.
 */
async function* chunksOf(body: EgressStreamResponse['body']): AsyncGenerator<ChatCompletionChunk> {
  const events: EventSourceMessage[] = [];
  let overflow = false;
  const parser = createParser({
    onEvent: (event) => events.push(event),
    maxBufferSize: MAX_EVENT_CHARS,
    // Unknown fields and bad `retry` values are ignored, as an EventSource would; only the bound is fatal.
    onError: (err) => {
      if (err.type === 'max-buffer-size-exceeded') overflow = true;
    },
  });
  const text = new TextDecoder();
  let done = false;
  let afterDone = 0;
  let received = 0;
  for await (const bytes of body) {
    // After [DONE] the body is read to its end (a little of it at most), so the connection goes
    // back to the pool instead of being closed under the next request.
    if (done) {
      afterDone += bytes.length;
      if (afterDone > MAX_BYTES_AFTER_DONE) return;
      continue;
    }
    received += bytes.length;
    if (received > MAX_STREAM_BYTES)
      throw new ProviderError(`LLM provider sent an answer longer than ${MAX_STREAM_BYTES} bytes`, { retryable: false });
    parser.feed(text.decode(bytes, { stream: true }));
    if (overflow) throw new ProviderError(`LLM provider sent an event longer than ${MAX_EVENT_CHARS} characters`, { retryable: false });
    for (let i = 0; i < events.length && !done; i++) {
      const event = events[i]!;
      if (event.data === '[DONE]') {
        done = true;
        break;
      }
      let chunk: (ChatCompletionChunk & { error?: unknown }) | null;
      try {
        chunk = JSON.parse(event.data) as ChatCompletionChunk & { error?: unknown };
      } catch (err) {
        throw new ProviderError('LLM provider sent an event that is not JSON', { retryable: true, cause: err });
      }
      if (event.event === 'error' || (chunk !== null && chunk.error !== undefined && chunk.error !== null))
        throw new ProviderError('LLM provider sent an error event', { retryable: true });
      if (chunk !== null) yield chunk;
    }
    events.length = 0;
  }
}

/**
 * openAiCompatibleProvider streams chat completions from an OpenAI-compatible endpoint (OpenAI's
 * documented request and server-sent events, read with eventsource-parser, over the provider
 * door's request). Retries happen only before the first token: once text has reached the user, a
 * retry would repeat it. Spans carry the model, the endpoint's host and timings, never prompt text
 * or the key.
 */
export function openAiCompatibleProvider(settings: OpenAiLlmSettings, deps: OpenAiProviderDeps): LlmProvider {
  const timeoutMs = settings.timeoutMs ?? deps.defaultTimeoutMs;
  const url = providerEndpoint(settings.baseUrl, 'chat/completions');
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
            const res = await deps.fetch.request(url, {
              method: 'POST',
              headers: { authorization: `Bearer ${deps.apiKey()}`, 'content-type': 'application/json', accept: 'text/event-stream' },
              body: JSON.stringify({
                model: settings.model,
                messages: toOpenAiMessages(messages),
                ...(tools !== undefined ? { tools } : {}),
                stream: true,
                ...(settings.temperature !== undefined ? { temperature: settings.temperature } : {}),
                ...(settings.maxTokens !== undefined ? { max_tokens: settings.maxTokens } : {}),
              }),
              signal: combined,
              timeoutMs,
            });
            if (res.status < 200 || res.status >= 300) {
              // The error body is read to its end, so the connection goes back to the pool.
              await res.body.dump().catch(() => undefined);
              throw answeredStatus(res.status, 'LLM');
            }
            for await (const chunk of chunksOf(res.body)) {
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
              if (chars > MAX_REPLY_CHARS)
                throw new ProviderError(`LLM provider sent a reply longer than ${MAX_REPLY_CHARS} characters`, { retryable: false });
              yield delta;
            }
            clearTimeout(timer);
            // An abort is never a finished reply.
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
