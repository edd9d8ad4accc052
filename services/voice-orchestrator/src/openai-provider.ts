import { setTimeout as sleep } from 'node:timers/promises';
import { SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { EgressRefusedError } from '@parley/egress';
import OpenAI from 'openai';
import type { ProviderFetch } from './provider-fetch.js';
import type { OpenAiLlmSettings } from '@parley/conversation';
import { ProviderError, type ChatMessage, type LlmProvider } from './providers.js';

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
          let gotToken = false;
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
                messages: messages.map((m) => ({ role: m.role, content: m.content })),
                stream: true,
                ...(settings.temperature !== undefined ? { temperature: settings.temperature } : {}),
                ...(settings.maxTokens !== undefined ? { max_tokens: settings.maxTokens } : {}),
              },
              { signal: combined },
            );
            for await (const chunk of stream) {
              if (chunk.choices[0]?.finish_reason !== null && chunk.choices[0]?.finish_reason !== undefined) finished = true;
              const delta = chunk.choices[0]?.delta?.content;
              if (delta === undefined || delta === null || delta === '') continue;
              if (!gotToken) {
                gotToken = true;
                clearTimeout(timer);
                span.setAttribute('llm.first_token_ms', Math.round(performance.now() - started));
              }
              chars += delta.length;
              yield delta;
            }
            clearTimeout(timer);
            // The client ends an aborted stream quietly; an abort is never a finished reply.
            if (signal.aborted) throw signal.reason;
            if (firstToken.signal.aborted) throw firstToken.signal.reason;
            // A stream cut before its finish_reason is a provider failure, not a short reply.
            if (!finished) throw new ProviderError('LLM provider stream ended early', { retryable: true });
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
