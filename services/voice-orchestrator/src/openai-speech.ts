// OpenAI-compatible speech adapters: transcription (POST {baseUrl}/audio/transcriptions, one
// request per utterance) and speech (POST {baseUrl}/audio/speech with response_format "pcm":
// raw 24 kHz 16-bit little-endian mono, streamed). Both use the official `openai` client over the
// egress fetch, with the key read from the conversation's key holder, like the LLM adapter.
import OpenAI, { toFile } from 'openai';
import type { OpenAiSttSettings, OpenAiTtsSettings } from '@parley/conversation';
import { AsyncQueue } from './async-queue.js';
import { pcm16FromBytes, wavOf } from './audio.js';
import { classifyProviderError } from './openai-provider.js';
import type { ProviderFetch } from './provider-fetch.js';
import type { SttProvider, SttResult, TtsProvider } from './providers.js';
import { EnergyVad } from './vad.js';

/** OPENAI_SPEECH_SAMPLE_RATE is the rate of OpenAI's "pcm" speech format. */
export const OPENAI_SPEECH_SAMPLE_RATE = 24_000;

/** MAX_UTTERANCE_SECONDS cuts an utterance that never pauses, so one request never carries more. */
export const MAX_UTTERANCE_SECONDS = 30;

/** PREROLL_MS of audio before the detected start of speech is kept (the detector needs a few windows to decide). */
const PREROLL_MS = 200;

/** OpenAiSpeechDeps are what the speech adapters need besides their settings. */
export interface OpenAiSpeechDeps {
  readonly apiKey: () => string;
  readonly fetch: ProviderFetch;
  readonly defaultTimeoutMs: number;
}

function clientFor(baseUrl: string, timeoutMs: number, deps: OpenAiSpeechDeps): OpenAI {
  return new OpenAI({
    apiKey: async () => deps.apiKey(),
    baseURL: baseUrl,
    organization: null,
    project: null,
    fetch: deps.fetch,
    maxRetries: 1,
    timeout: timeoutMs,
  });
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
  const client = clientFor(settings.baseUrl, settings.timeoutMs ?? deps.defaultTimeoutMs, deps);
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
          try {
            const file = await toFile(wavOf(utterance, sampleRate), 'utterance.wav', { type: 'audio/wav' });
            const res = await client.audio.transcriptions.create(
              { file, model: settings.model, ...(settings.language !== undefined ? { language: settings.language } : {}) },
              { signal },
            );
            const text = res.text.trim();
            if (text !== '') results.push({ text, final: true });
          } catch (err) {
            if (signal.aborted) break;
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
  const client = clientFor(settings.baseUrl, settings.timeoutMs ?? deps.defaultTimeoutMs, deps);
  return {
    kind: 'openai-compatible',
    sampleRate: OPENAI_SPEECH_SAMPLE_RATE,
    async *synthesize(sentence, signal) {
      let body: ReadableStream<Uint8Array> | null;
      try {
        const res = await client.audio.speech.create(
          {
            model: settings.model,
            voice: settings.voice,
            input: sentence,
            response_format: 'pcm',
            ...(settings.speed !== undefined ? { speed: settings.speed } : {}),
          },
          { signal },
        );
        body = res.body;
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw classifyProviderError(err, 'TTS');
      }
      if (body === null) return;
      // A chunk may end in the middle of a sample: its odd byte waits for the next chunk.
      let odd: Uint8Array | undefined;
      try {
        for await (const chunk of body) {
          let bytes = chunk;
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
