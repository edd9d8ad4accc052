import { RE2JS } from 're2js';
import { z } from 'zod';

/**
 * compileScriptedMatch compiles a scripted rule's pattern with RE2 (linear time, case-insensitive):
 * the pattern is a tenant's and is run on end users' text, so a backtracking engine would let one
 * agent stall every conversation of the replica.
 */
export function compileScriptedMatch(source: string): { test(text: string): boolean } {
  const re = RE2JS.compile(source, RE2JS.CASE_INSENSITIVE);
  return { test: (text) => re.matcher(text).find() };
}

const scriptedRule = z.strictObject({
  /** match is a case-insensitive RE2 regular expression tried against the user's message. */
  match: z
    .string()
    .min(1)
    .max(500)
    .refine((source) => {
      try {
        compileScriptedMatch(source);
        return true;
      } catch {
        return false;
      }
    }, 'must be a valid RE2 regular expression (no backreferences or lookaround)'),
  /** reply is said when match matches; "{user}" is replaced by the user's message, "{tool}" by the tool's result. */
  reply: z.string().min(1).max(4_000),
  /** tool, when set, is called first (name and arguments as a model would ask); the reply follows with its result. */
  tool: z
    .strictObject({
      name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
      arguments: z.record(z.string(), z.unknown()).default({}),
    })
    .optional(),
});

/** scriptedLlmSettings configures the embedded scripted provider: ordered rules, then the default reply. */
export const scriptedLlmSettings = z.strictObject({
  provider: z.literal('scripted'),
  rules: z.array(scriptedRule).max(200).default([]),
  defaultReply: z.string().min(1).max(4_000).default('You said: {user}'),
  /** delayMs is the pause between streamed words (0 in benchmarks). */
  delayMs: z.int().min(0).max(5_000).default(30),
});

/** openAiLlmSettings configures an OpenAI-compatible chat-completions provider; the key is the agent's "llm" secret. */
export const openAiLlmSettings = z.strictObject({
  provider: z.literal('openai-compatible'),
  baseUrl: z
    .url({ protocol: /^https?$/ })
    .max(500)
    .default('https://api.openai.com/v1'),
  model: z.string().min(1).max(200),
  temperature: z.number().min(0).max(2).optional(),
  maxTokens: z.int().min(1).max(32_768).optional(),
  /** timeoutMs bounds the wait for the first token. */
  timeoutMs: z.int().min(100).max(600_000).optional(),
  /** maxRetries: attempts after the first, only before any token has arrived. */
  maxRetries: z.int().min(0).max(5).default(2),
  /** secretPurpose names the agent's secret_refs entry holding the API key. */
  secretPurpose: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,31}$/)
    .default('llm'),
});

const providerBaseUrl = z
  .url({ protocol: /^https?$/ })
  .max(500)
  .default('https://api.openai.com/v1');
const secretPurpose = (purpose: string) =>
  z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,31}$/)
    .default(purpose);

/** openAiSttSettings configures OpenAI-compatible transcription (POST /audio/transcriptions per utterance); the key is the agent's "stt" secret. */
export const openAiSttSettings = z.strictObject({
  provider: z.literal('openai-compatible'),
  baseUrl: providerBaseUrl,
  model: z.string().min(1).max(200).default('whisper-1'),
  /** language is the ISO-639-1 code of the caller's speech, when known (better accuracy and latency). */
  language: z
    .string()
    .regex(/^[a-z]{2}$/)
    .optional(),
  /** silenceMs of silence ends an utterance and sends it for transcription. */
  silenceMs: z.int().min(100).max(5_000).default(600),
  timeoutMs: z.int().min(100).max(600_000).optional(),
  secretPurpose: secretPurpose('stt'),
});

/** deepgramSttSettings configures Deepgram's live streaming transcription (a WebSocket per conversation); the key is the agent's "stt" secret. */
export const deepgramSttSettings = z.strictObject({
  provider: z.literal('deepgram'),
  /** baseUrl is the API's https base; the live endpoint is its /listen over wss. */
  baseUrl: z
    .url({ protocol: /^https$/ })
    .max(500)
    .default('https://api.deepgram.com/v1'),
  model: z.string().min(1).max(100).default('nova-3'),
  language: z
    .string()
    .regex(/^[a-z]{2}(-[A-Z]{2})?$/)
    .optional(),
  /** endpointingMs of silence ends an utterance (Deepgram's speech_final). */
  endpointingMs: z.int().min(10).max(5_000).default(300),
  secretPurpose: secretPurpose('stt'),
});

/** embeddedTtsSettings configures the embedded offline synthesiser (eSpeak NG in-process; no key, no network). */
export const embeddedTtsSettings = z.strictObject({
  provider: z.literal('embedded'),
  /** voice is an eSpeak NG voice name, e.g. "en-us", "en-gb", "de", "fr". */
  voice: z
    .string()
    .regex(/^[a-z]{2,3}(-[a-z0-9]{2,8}){0,2}$/)
    .default('en-us'),
});

/** openAiTtsSettings configures OpenAI-compatible speech (POST /audio/speech, raw PCM); the key is the agent's "tts" secret. */
export const openAiTtsSettings = z.strictObject({
  provider: z.literal('openai-compatible'),
  baseUrl: providerBaseUrl,
  model: z.string().min(1).max(200).default('gpt-4o-mini-tts'),
  voice: z.string().min(1).max(100).default('alloy'),
  speed: z.number().min(0.25).max(4).optional(),
  timeoutMs: z.int().min(100).max(600_000).optional(),
  secretPurpose: secretPurpose('tts'),
});

/**
 * recordingSettings turns call recording on for an agent's voice conversations. The announcement
 * is said first (and kept in the transcript); with `consent`, the caller must agree (a yes said or
 * typed, or the key 1 on a phone) before anything is kept, and nothing is stored otherwise.
 */
export const recordingSettings = z.strictObject({
  /** announcement is said before anything else, e.g. "This call is recorded for quality and training." */
  announcement: z.string().trim().min(1).max(500).default('This call is recorded.'),
  consent: z
    .strictObject({
      /** prompt asks for agreement after the announcement. */
      prompt: z.string().trim().min(1).max(500).default('Say yes, or press 1, if you agree to the recording.'),
      /** declinedLine is said when the caller does not agree (the call goes on unrecorded). */
      declinedLine: z.string().trim().min(1).max(500).default('Understood. This call will not be recorded.'),
      /** timeoutMs: no answer by then counts as no. */
      timeoutMs: z.int().min(1_000).max(60_000).default(10_000),
    })
    .optional(),
});

/** RecordingSettings is a validated recording part of the settings. */
export type RecordingSettings = z.output<typeof recordingSettings>;

/**
 * providerSettingsSchema is the shape of an agent's provider_settings: which LLM adapter it uses
 * and how, and the fallback line said when the provider fails mid-reply. An empty object means
 * the scripted provider echoing the user. tenant-data validates it on every agent write.
 */
export const providerSettingsSchema = z.strictObject({
  llm: z.discriminatedUnion('provider', [scriptedLlmSettings, openAiLlmSettings]).default({
    provider: 'scripted',
    rules: [],
    defaultReply: 'You said: {user}',
    delayMs: 30,
  }),
  fallbackLine: z.string().min(1).max(1_000).default("Sorry, I'm having trouble answering right now. Please try again in a moment."),
  /** stt transcribes a voice connection's audio; absent: audio in is refused with an error frame (text still works). */
  stt: z.discriminatedUnion('provider', [openAiSttSettings, deepgramSttSettings]).optional(),
  /** tts speaks to a voice connection; absent: the embedded synthesiser with its default voice. */
  tts: z.discriminatedUnion('provider', [embeddedTtsSettings, openAiTtsSettings]).optional(),
  /** recording, when present, records voice conversations (both sides, encrypted); absent: nothing is recorded. */
  recording: recordingSettings.optional(),
});

/** ProviderSettings is a validated provider_settings document with defaults filled in. */
export type ProviderSettings = z.output<typeof providerSettingsSchema>;

/** ScriptedLlmSettings is the scripted provider's part of the settings. */
export type ScriptedLlmSettings = z.output<typeof scriptedLlmSettings>;

/** OpenAiLlmSettings is the OpenAI-compatible provider's part of the settings. */
export type OpenAiLlmSettings = z.output<typeof openAiLlmSettings>;

/** OpenAiSttSettings is the OpenAI-compatible transcription adapter's part of the settings. */
export type OpenAiSttSettings = z.output<typeof openAiSttSettings>;

/** TtsSettings is a validated tts part of the settings. */
export type TtsSettings = z.output<typeof embeddedTtsSettings> | z.output<typeof openAiTtsSettings>;

/** OpenAiTtsSettings is the OpenAI-compatible speech adapter's part of the settings. */
export type OpenAiTtsSettings = z.output<typeof openAiTtsSettings>;

/** DeepgramSttSettings is the Deepgram streaming adapter's part of the settings. */
export type DeepgramSttSettings = z.output<typeof deepgramSttSettings>;
