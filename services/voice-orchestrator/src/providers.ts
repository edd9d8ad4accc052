// The provider interfaces of the turn pipeline: LLM (scripted, OpenAI compatible), STT (OpenAI
// compatible transcription) and TTS (embedded eSpeak NG, OpenAI compatible speech).

/** ChatMessage is one message of the conversation as an LLM sees it ("tool": a tool call's result). */
export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant' | 'tool';
  readonly content: string;
  /** toolCalls are, on an assistant message, the calls the model asked for (OpenAI wants them before their results). */
  readonly toolCalls?: readonly ToolCallRequest[];
  /** toolCallId is, on a tool message, the id of the call it answers. */
  readonly toolCallId?: string;
}

/** ToolCallRequest is the model asking for a tool call instead of (or before) replying. */
export interface ToolCallRequest {
  readonly type: 'tool_call';
  /** id is the provider's id of the call (its result names it); the scripted provider makes its own. */
  readonly id: string;
  readonly name: string;
  readonly arguments: Record<string, unknown>;
  /** argumentsError says why the model's arguments could not be read (not JSON, not an object): the call is refused, not made. */
  readonly argumentsError?: string;
}

/** ToolDeclaration is a tool the model is told it may call: an agent's granted tool as integrations describes it. */
export interface ToolDeclaration {
  readonly name: string;
  readonly description: string;
  /** parameters is the JSON schema of the arguments (an object schema). */
  readonly parameters: Record<string, unknown>;
}

/** LlmProvider streams a reply to a conversation. */
export interface LlmProvider {
  /** kind names the adapter in spans and logs ("scripted", "openai-compatible"). */
  readonly kind: string;
  /**
   * streamReply yields the reply as text deltas, or a tool call the model wants made first (the
   * turn makes it and asks again with its result). Aborting the signal (barge-in, end) stops the
   * stream; a provider failure throws ProviderError.
   */
  streamReply(messages: readonly ChatMessage[], signal: AbortSignal): AsyncIterable<string | ToolCallRequest>;
}

/** SttResult is one transcript of the caller's speech: partial ones may change, a final one is a user turn. */
export interface SttResult {
  readonly text: string;
  readonly final: boolean;
}

/** SttProvider turns caller audio into text, streaming. */
export interface SttProvider {
  /** kind names the adapter in logs ("openai-compatible", "deepgram"). */
  readonly kind: string;
  /**
   * transcribe consumes PCM16 mono samples at `sampleRate` as they arrive and yields partial and
   * final results. It ends when the audio ends or the signal aborts; a provider failure throws
   * ProviderError.
   */
  transcribe(audio: AsyncIterable<Int16Array>, sampleRate: number, signal: AbortSignal): AsyncIterable<SttResult>;
}

/** TtsProvider turns released assistant sentences into audio, one sentence at a time. */
export interface TtsProvider {
  /** kind names the adapter in logs ("embedded", "openai-compatible"). */
  readonly kind: string;
  /** sampleRate is the rate of the samples synthesize yields (the session resamples to the client's). */
  readonly sampleRate: number;
  /**
   * synthesize yields PCM16 mono chunks for one sentence, as soon as each is ready. It is only
   * ever given text the guardrail stage released. Aborting the signal (barge-in, end) stops it.
   */
  synthesize(sentence: string, signal: AbortSignal): AsyncIterable<Int16Array>;
}

/** ProviderError is a provider failure; the message is safe to log (no prompt text, no key). */
export class ProviderError extends Error {
  /** retryable is true for failures worth another attempt before the first token. */
  readonly retryable: boolean;
  /** egressRule names the egress rule that refused the provider's URL, when that is the failure. */
  readonly egressRule: string | undefined;

  constructor(message: string, options: { retryable: boolean; cause?: unknown; egressRule?: string }) {
    super(message, { cause: options.cause });
    this.name = 'ProviderError';
    this.retryable = options.retryable;
    this.egressRule = options.egressRule;
  }
}
