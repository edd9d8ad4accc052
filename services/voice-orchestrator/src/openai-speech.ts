// OpenAI-compatible speech adapters: transcription (POST {baseUrl}/audio/transcriptions, one
// request per utterance) and speech (POST {baseUrl}/audio/speech with response_format "pcm":
// raw 24 kHz 16-bit little-endian mono, streamed). Both send OpenAI's documented wire format
// through the provider door's `request` (the egress checks and pool of the LLM adapter's fetch),
// with the key read from the conversation's key holder. They do not go through the `openai`
// client as the LLM adapter does: these are one plain request each (a multipart upload with a
// JSON answer; a JSON request with a raw audio body, no SSE), on the path of every spoken turn,
// and the client's per-request work over WHATWG fetch was about a third of the orchestrator's
// CPU per spoken turn (bench/README.md, voice: session 7).
import { setTimeout as sleep } from 'node:timers/promises';
import type { OpenAiSttSettings, OpenAiTtsSettings } from '@parley/conversation';
import type { EgressStreamResponse } from '@parley/egress';
import { AsyncQueue } from './async-queue.js';
import { pcm16FromBytes, wavOf } from './audio.js';
import { answeredStatus, classifyProviderError, providerEndpoint } from './openai-provider.js';
import type { ProviderFetch } from './provider-fetch.js';
import { ProviderError, type SttProvider, type SttResult, type TtsProvider } from './providers.js';
import { EnergyVad } from './vad.js';

/** OPENAI_SPEECH_SAMPLE_RATE is the rate of OpenAI's "pcm" speech format. */
export const OPENAI_SPEECH_SAMPLE_RATE = 24_000;

/** MAX_UTTERANCE_SECONDS cuts an utterance that never pauses, so one request never carries more. */
export const MAX_UTTERANCE_SECONDS = 30;

/** PREROLL_MS of audio before the detected start of speech is kept (the detector needs a few windows to decide). */
const PREROLL_MS = 200;

/** RETRY_DELAY_MS is the pause before the one retry of a failed speech request (the `openai` client's first backoff). */
const RETRY_DELAY_MS = 500;

/** MAX_TRANSCRIPT_BYTES bounds a transcription answer: the provider sits at a customer's base URL. */
const MAX_TRANSCRIPT_BYTES = 1024 * 1024;

/** OpenAiSpeechDeps are what the speech adapters need besides their settings. */
export interface OpenAiSpeechDeps {
  readonly apiKey: () => string;
  readonly fetch: ProviderFetch;
  readonly defaultTimeoutMs: number;
}

/** SpeechRequest is one request of a speech adapter: where, what, and how long to wait. */
interface SpeechRequest {
  readonly url: string;
  readonly contentType: string;
  readonly accept: string;
  readonly body: string | Uint8Array;
  readonly timeoutMs: number;
}

/**
 * send makes a speech request with the key as a bearer token, and retries once what is worth
 * another try (no answer, 408, 409, 429, 5xx), as the `openai` client did with maxRetries 1. The
 * answer is a 2xx response whose body the caller reads; anything else throws ProviderError (its
 * message names the kind of provider and the status, never the key or the text).
 */
async function send(deps: OpenAiSpeechDeps, req: SpeechRequest, what: string, signal: AbortSignal): Promise<EgressStreamResponse> {
  for (let attempt = 1; ; attempt++) {
    let failure: ProviderError;
    try {
      const res = await deps.fetch.request(req.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${deps.apiKey()}`, 'content-type': req.contentType, accept: req.accept },
        body: req.body,
        signal,
        timeoutMs: req.timeoutMs,
      });
      if (res.status >= 200 && res.status < 300) return res;
      // The error body is read to its end, so the connection goes back to the pool.
      await res.body.dump().catch(() => undefined);
      failure = answeredStatus(res.status, what);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      failure = classifyProviderError(err, what);
    }
    if (!failure.retryable || attempt > 1) throw failure;
    await sleep(RETRY_DELAY_MS, undefined, { signal }).catch(() => signal.throwIfAborted());
  }
}

/**
 * multipartOf encodes a transcription request as multipart/form-data with the platform's own
 * encoder (a Response over FormData: its boundary, escaping and framing), as OpenAI documents the
 * upload: `file` (a WAV), `model`, and `language` when set.
 */
async function multipartOf(wav: Uint8Array, settings: OpenAiSttSettings): Promise<{ body: Uint8Array; contentType: string }> {
  const form = new FormData();
  form.append('file', new Blob([wav as Uint8Array<ArrayBuffer>], { type: 'audio/wav' }), 'utterance.wav');
  form.append('model', settings.model);
  if (settings.language !== undefined) form.append('language', settings.language);
  const encoded = new Response(form);
  return {
    body: new Uint8Array(await encoded.arrayBuffer()),
    contentType: encoded.headers.get('content-type') ?? 'multipart/form-data',
  };
}

/** transcriptOf reads a transcription answer, `{"text": ...}`, within MAX_TRANSCRIPT_BYTES. */
async function transcriptOf(res: EgressStreamResponse): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.length;
    if (size > MAX_TRANSCRIPT_BYTES)
      throw new ProviderError(`STT provider's answer exceeds ${MAX_TRANSCRIPT_BYTES} bytes`, { retryable: false });
    chunks.push(chunk);
  }
  let answer: unknown;
  try {
    answer = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
  } catch (err) {
    throw new ProviderError('STT provider answered something other than JSON', { retryable: false, cause: err });
  }
  const text = (answer as { text?: unknown } | null)?.text;
  if (typeof text !== 'string') throw new ProviderError('STT provider answered without a "text"', { retryable: false });
  return text;
}

function concat(chunks: Int16Array[]): Int16Array {
  const out = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * openAiTranscription is an STT adapter for OpenAI-compatible transcription, which is not a
 * streaming API: the energy detector cuts the caller's audio into utterances (speech, then
 * `silenceMs` of silence), each is sent as a WAV file, and its text is a final result (there are
 * no partial results). Utterances are transcribed in order, one request at a time.
 */
export function openAiTranscription(settings: OpenAiSttSettings, deps: OpenAiSpeechDeps): SttProvider {
  const url = providerEndpoint(settings.baseUrl, 'audio/transcriptions');
  const timeoutMs = settings.timeoutMs ?? deps.defaultTimeoutMs;
  // Two attempts of at most timeoutMs each (headers, then each pause in the body) and the wait between.
  const sttDeadlineMs = 2 * timeoutMs + RETRY_DELAY_MS;
  return {
    kind: 'openai-compatible',
    transcribe(audio, sampleRate, signal) {
      const results = new AsyncQueue<SttResult>();
      const utterances = new AsyncQueue<Int16Array>(8);
      const segment = async () => {
        const vad = new EnergyVad(sampleRate, { endMs: settings.silenceMs });
        const preroll: Int16Array[] = [];
        let prerollSamples = 0;
        let speech: Int16Array[] = [];
        let speechSamples = 0;
        for await (const frame of audio) {
          if (signal.aborted) break;
          const event = vad.push(frame);
          if (vad.speaking || event === 'speech_end') {
            if (event === 'speech_start') {
              speech = [...preroll];
              speechSamples = prerollSamples;
            }
            speech.push(frame);
            speechSamples += frame.length;
            if (event === 'speech_end' || speechSamples >= MAX_UTTERANCE_SECONDS * sampleRate) {
              utterances.push(concat(speech));
              speech = [];
              speechSamples = 0;
            }
          } else {
            preroll.push(frame);
            prerollSamples += frame.length;
            while (preroll.length > 1 && prerollSamples - (preroll[0]?.length ?? 0) >= (PREROLL_MS * sampleRate) / 1000)
              prerollSamples -= preroll.shift()?.length ?? 0;
          }
        }
        // The audio ended mid-utterance (the caller hung up or ended): transcribe what there is.
        if (speech.length > 0 && !signal.aborted) utterances.push(concat(speech));
        utterances.close();
      };
      const transcribeAll = async () => {
        for await (const utterance of utterances) {
          if (signal.aborted) break;
          // One utterance's whole exchange (a retry and the answer's body included) has a deadline:
          // a provider that trickles its answer would otherwise hold the caller's turn forever.
          const overall = AbortSignal.timeout(sttDeadlineMs);
          try {
            const { body, contentType } = await multipartOf(wavOf(utterance, sampleRate), settings);
            const within = AbortSignal.any([signal, overall]);
            const res = await send(deps, { url, contentType, accept: 'application/json', body, timeoutMs }, 'STT', within);
            const text = (await transcriptOf(res)).trim();
            if (text !== '') results.push({ text, final: true });
          } catch (err) {
            if (signal.aborted) break;
            if (overall.aborted)
              throw new ProviderError(`STT provider did not finish a transcription within ${sttDeadlineMs} ms`, {
                retryable: true,
                cause: err,
              });
            throw classifyProviderError(err, 'STT');
          }
        }
      };
      const segmenting = segment().catch((err: unknown) => utterances.fail(err));
      transcribeAll().then(
        async () => {
          await segmenting;
          results.close();
        },
        (err: unknown) => results.fail(err),
      );
      return results;
    },
  };
}

/**
 * openAiSpeech is a TTS adapter for OpenAI-compatible speech: one request per released sentence,
 * `response_format: "pcm"`, the body streamed to the caller as it arrives.
 */
export function openAiSpeech(settings: OpenAiTtsSettings, deps: OpenAiSpeechDeps): TtsProvider {
  const url = providerEndpoint(settings.baseUrl, 'audio/speech');
  const timeoutMs = settings.timeoutMs ?? deps.defaultTimeoutMs;
  return {
    kind: 'openai-compatible',
    sampleRate: OPENAI_SPEECH_SAMPLE_RATE,
    async *synthesize(sentence, signal) {
      const request = JSON.stringify({
        model: settings.model,
        voice: settings.voice,
        input: sentence,
        response_format: 'pcm',
        ...(settings.speed !== undefined ? { speed: settings.speed } : {}),
      });
      let body: EgressStreamResponse['body'];
      try {
        body = (
          await send(
            deps,
            { url, contentType: 'application/json', accept: 'application/octet-stream', body: request, timeoutMs },
            'TTS',
            signal,
          )
        ).body;
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw classifyProviderError(err, 'TTS');
      }
      // A chunk may end in the middle of a sample: its odd byte waits for the next chunk.
      let odd: Uint8Array | undefined;
      try {
        for await (const chunk of body) {
          let bytes: Uint8Array = chunk;
          if (odd !== undefined) {
            bytes = new Uint8Array(odd.length + chunk.length);
            bytes.set(odd);
            bytes.set(chunk, odd.length);
            odd = undefined;
          }
          if (bytes.length % 2 === 1) {
            odd = bytes.slice(-1);
            bytes = bytes.subarray(0, -1);
          }
          if (bytes.length > 0) yield pcm16FromBytes(bytes.slice());
        }
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw classifyProviderError(err, 'TTS');
      }
    },
  };
}
