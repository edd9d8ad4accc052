// The session port's text frames as the server sends them (README "Session protocol" and
// "Voice: audio on the session port"). Unknown frame types are passed through as `unknown`.

/** ReadyFrame says the conversation is live. */
export interface ReadyFrame {
  readonly type: 'ready';
  readonly conversationId: string;
  readonly agentId: string;
  readonly audio?: { readonly format: 'pcm16'; readonly sampleRate: number };
}

/** AssistantTextFrame is one released sentence of the reply, or (final) the reply's end. */
export interface AssistantTextFrame {
  readonly type: 'assistant_text';
  readonly text: string;
  readonly final: boolean;
  readonly interrupted?: boolean;
}

/** UserTranscriptFrame is what the STT heard (final: the user's turn). */
export interface UserTranscriptFrame {
  readonly type: 'user_transcript';
  readonly text: string;
  readonly final: boolean;
}

/** EventFrame is a conversation event: guardrail, escalation, handoff, barge_in, turn_failed, stt_failed, tts_failed… */
export interface EventFrame {
  readonly type: 'event';
  readonly name: string;
  readonly [field: string]: unknown;
}

/** ErrorFrame is a refused client frame; the connection stays open. */
export interface ErrorFrame {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
}

/** EndFrame says the server ended the conversation (a close follows). */
export interface EndFrame {
  readonly type: 'end';
  readonly reason: string;
}

/** ServerFrame is any text frame the session port sends. */
export type ServerFrame = ReadyFrame | AssistantTextFrame | UserTranscriptFrame | EventFrame | ErrorFrame | EndFrame;

/** parseServerFrame reads a text frame; anything that is not a JSON object with a string `type` is undefined. */
export function parseServerFrame(text: string): ServerFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || typeof (value as { type?: unknown }).type !== 'string') return undefined;
  return value as ServerFrame;
}
