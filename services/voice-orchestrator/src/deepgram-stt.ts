// Deepgram's live streaming transcription (https://developers.deepgram.com/reference/speech-to-text/listen-streaming):
// a WebSocket to {baseUrl}/listen with the audio's encoding and rate in the query, `Authorization:
// Token <key>`, binary audio frames up, JSON `Results` messages down (`is_final` for a finished
// segment, `speech_final` at the end of an utterance), `{"type":"CloseStream"}` to finish. The
// connection goes through the egress rules: the URL is checked first and the socket resolves
// its name with the egress lookup, so it reaches only what an HTTP provider call could.
import { checkEgressTarget, createEgressLookup, type EgressPolicy } from '@parley/egress';
import type { DeepgramSttSettings } from '@parley/conversation';
import WebSocket from 'ws';
import { AsyncQueue } from './async-queue.js';
import { pcm16ToBytes } from './audio.js';
import { ProviderError, type SttProvider, type SttResult } from './providers.js';

/** DeepgramDeps are what the adapter needs besides its settings. */
export interface DeepgramDeps {
  readonly apiKey: () => string;
  readonly egressPolicy: EgressPolicy;
  /** connectTimeoutMs bounds the WebSocket handshake. */
  readonly connectTimeoutMs: number;
}

/** MAX_UNSENT_BYTES: audio held for a provider that does not read is dropped past this (~10 s at 16 kHz). */
const MAX_UNSENT_BYTES = 320_000;

interface DeepgramMessage {
  type?: unknown;
  is_final?: unknown;
  speech_final?: unknown;
  channel?: { alternatives?: { transcript?: unknown }[] };
}

/** deepgramLiveUrl is the live endpoint for the settings and the audio's rate (https form, for the egress check). */
export function deepgramLiveUrl(settings: DeepgramSttSettings, sampleRate: number): URL {
  const url = new URL(`${settings.baseUrl.replace(/\/+$/, '')}/listen`);
  url.searchParams.set('model', settings.model);
  url.searchParams.set('encoding', 'linear16');
  url.searchParams.set('sample_rate', String(sampleRate));
  url.searchParams.set('channels', '1');
  url.searchParams.set('interim_results', 'true');
  url.searchParams.set('endpointing', String(settings.endpointingMs));
  if (settings.language !== undefined) url.searchParams.set('language', settings.language);
  return url;
}

/**
 * deepgramStreaming is a streaming STT adapter: partial results while the caller speaks (the
 * finished segments of the utterance so far plus the interim one), a final result when Deepgram
 * marks the end of the utterance (`speech_final`).
 */
export function deepgramStreaming(settings: DeepgramSttSettings, deps: DeepgramDeps): SttProvider {
  const checks = { policy: deps.egressPolicy };
  return {
    kind: 'deepgram',
    transcribe(audio, sampleRate, signal) {
      const results = new AsyncQueue<SttResult>();
      const run = async () => {
        const url = deepgramLiveUrl(settings, sampleRate);
        const decision = await checkEgressTarget(url.href, checks);
        if (!decision.allowed)
          throw new ProviderError(`STT provider base URL refused by the egress rule ${decision.rule ?? 'url-syntax'}`, {
            retryable: false,
            egressRule: decision.rule ?? 'url-syntax',
          });
        url.protocol = 'wss:';
        const ws = new WebSocket(url, {
          headers: { authorization: `Token ${deps.apiKey()}` },
          lookup: createEgressLookup(checks),
          handshakeTimeout: deps.connectTimeoutMs,
          maxPayload: 1_048_576,
          perMessageDeflate: false,
          followRedirects: false,
        });
        // Ending the conversation ends the stream the way Deepgram asks: CloseStream, then the close.
        const abort = () => {
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'CloseStream' }));
          ws.close(1000);
        };
        signal.addEventListener('abort', abort, { once: true });
        let done = '';
        ws.on('message', (data: Buffer, binary: boolean) => {
          if (binary) return;
          let m: DeepgramMessage;
          try {
            m = JSON.parse(data.toString('utf8')) as DeepgramMessage;
          } catch {
            return;
          }
          if (m.type !== 'Results') return;
          const transcript = m.channel?.alternatives?.[0]?.transcript;
          const text = typeof transcript === 'string' ? transcript.trim() : '';
          const sofar = [done, text].filter((t) => t !== '').join(' ');
          if (m.is_final === true) done = sofar;
          if (m.speech_final === true) {
            if (done !== '') results.push({ text: done, final: true });
            done = '';
          } else if (sofar !== '') results.push({ text: sofar, final: false });
        });
        const closed = new Promise<void>((resolve, reject) => {
          ws.once('unexpected-response', (_req, res) => {
            reject(
              new ProviderError(`STT provider answered ${res.statusCode ?? 'without a status'}`, {
                retryable: (res.statusCode ?? 500) >= 500,
              }),
            );
            ws.terminate();
          });
          ws.once('error', (err) =>
            reject(err instanceof ProviderError ? err : new ProviderError('STT provider unreachable', { retryable: true, cause: err })),
          );
          ws.once('close', () => resolve());
        });
        closed.catch(() => undefined);
        const opened = new Promise<void>((resolve) => ws.once('open', () => resolve()));
        await Promise.race([opened, closed]);
        try {
          for await (const frame of audio) {
            if (signal.aborted || ws.readyState !== ws.OPEN) break;
            // A provider that stops reading costs bounded memory: audio past the cap is dropped.
            if (ws.bufferedAmount < MAX_UNSENT_BYTES) ws.send(pcm16ToBytes(frame));
          }
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'CloseStream' }));
          await closed;
        } finally {
          signal.removeEventListener('abort', abort);
          if (ws.readyState === ws.OPEN) ws.close(1000);
        }
      };
      run().then(
        () => results.close(),
        (err: unknown) => results.fail(signal.aborted ? signal.reason : err),
      );
      return results;
    },
  };
}
