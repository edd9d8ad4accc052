// The provider interfaces of the turn pipeline. LLM adapters exist today (scripted, OpenAI
// compatible); STT and TTS are declared here and filled by the audio issue.

/** ChatMessage is one message of the conversation as an LLM sees it ("tool": a tool call's result). */
export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant' | 'tool';
  readonly content: string;
}

/** ToolCallRequest is the model asking for a tool call instead of (or before) replying. */
export interface ToolCallRequest {
  readonly type: 'tool_call';
  readonly name: string;
  readonly arguments: Record<string, unknown>;
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

/** SttProvider turns caller audio into text (filled by the audio issue). */
export interface SttProvider {
  readonly kind: string;
  /** transcribe consumes PCM frames and yields final transcripts of user utterances. */
  transcribe(audio: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncIterable<{ readonly text: string; readonly final: boolean }>;
}

/** TtsProvider turns released assistant sentences into audio (filled by the audio issue). */
export interface TtsProvider {
  readonly kind: string;
  /** synthesize yields PCM frames for one sentence. */
  synthesize(sentence: string, signal: AbortSignal): AsyncIterable<Uint8Array>;
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
