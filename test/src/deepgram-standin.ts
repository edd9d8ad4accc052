// A STAND-IN for Deepgram's live streaming transcription, for tests only: no real STT service can
// be reached where Parley's tests run, so this node:https server (its own throwaway CA, a
// certificate for 127.0.0.1) accepts WebSockets at /v1/listen the way Deepgram documents
// (https://developers.deepgram.com/reference/speech-to-text/listen-streaming): `Authorization:
// Token <key>` (else HTTP 401 on the handshake), encoding and rate in the query, binary audio up,
// JSON `Results` messages down with `is_final` / `speech_final`, `{"type":"CloseStream"}` answered
// with a `Metadata` message and a close. It cannot recognise speech: it notices utterances by
// loudness and answers the text a test sets. It is not Deepgram. See test/deepgram-standin/README.md.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { EnergyVad, pcm16FromBytes } from '@parley/voice-orchestrator';
import { WebSocketServer } from 'ws';

/** DeepgramConnection is what a test may check about one streaming connection. */
export interface DeepgramConnection {
  readonly authorization: string;
  readonly query: Record<string, string>;
  audioBytes: number;
  closeStream: boolean;
}

/** DeepgramStandin is a running stand-in. */
export interface DeepgramStandin {
  /** baseUrl is what an agent's stt settings name (https; the adapter connects with wss). */
  readonly baseUrl: string;
  readonly port: number;
  readonly caFile: string;
  readonly egressEnv: Record<string, string>;
  readonly connections: DeepgramConnection[];
  /** setTranscript sets the words of the next utterances (interim: the first word; final: all). */
  setTranscript(text: string): void;
  stop(): Promise<void>;
}

/** startDeepgramStandin starts the stand-in on a free loopback port; it accepts only `Token <apiKey>`. */
export async function startDeepgramStandin(options: { apiKey: string }): Promise<DeepgramStandin> {
  let transcript = 'Stand-in transcript.';
  const connections: DeepgramConnection[] = [];
  const ca = await createCertificateAuthority({ name: 'Deepgram stand-in test CA' });
  const leaf = await issueCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const caFile = join(mkdtempSync(join(tmpdir(), 'parley-deepgram-standin-')), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => {
    res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'https://standin.invalid');
    if (url.pathname !== '/v1/listen') return socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    const authorization = req.headers.authorization ?? '';
    if (authorization !== `Token ${options.apiKey}`)
      return socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n');
    const rate = Number(url.searchParams.get('sample_rate'));
    if (url.searchParams.get('encoding') !== 'linear16' || !Number.isInteger(rate) || rate <= 0)
      return socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    return wss.handleUpgrade(req, socket, head, (ws) => {
      const conn: DeepgramConnection = { authorization, query: Object.fromEntries(url.searchParams), audioBytes: 0, closeStream: false };
      connections.push(conn);
      const vad = new EnergyVad(rate, { endMs: Number(url.searchParams.get('endpointing') ?? 300) });
      const requestId = randomUUID();
      let seconds = 0;
      const results = (text: string, isFinal: boolean, speechFinal: boolean) =>
        ws.send(
          JSON.stringify({
            type: 'Results',
            channel_index: [0, 1],
            duration: 0.5,
            start: seconds,
            is_final: isFinal,
            speech_final: speechFinal,
            channel: { alternatives: [{ transcript: text, confidence: 0.99, words: [] }] },
            metadata: { request_id: requestId, model_info: { name: url.searchParams.get('model') ?? 'general' } },
            from_finalize: false,
          }),
        );
      ws.on('message', (data: Buffer, binary: boolean) => {
        if (!binary) {
          const m = JSON.parse(data.toString('utf8')) as { type?: string };
          if (m.type === 'CloseStream') {
            conn.closeStream = true;
            ws.send(JSON.stringify({ type: 'Metadata', request_id: requestId, duration: seconds, channels: 1 }));
            ws.close(1000);
          }
          return;
        }
        conn.audioBytes += data.length;
        const samples = pcm16FromBytes(new Uint8Array(data));
        seconds += samples.length / rate;
        const event = vad.push(samples);
        const words = transcript.split(' ');
        if (event === 'speech_start') results(words[0] ?? '', false, false);
        if (event === 'speech_end') {
          // Two finished segments, the second one ending the utterance.
          const half = Math.ceil(words.length / 2);
          results(words.slice(0, half).join(' '), true, false);
          results(words.slice(half).join(' '), true, true);
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `https://127.0.0.1:${port}/v1`,
    port,
    caFile,
    egressEnv: { PARLEY_EGRESS_ALLOWED_PORTS: String(port), PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32', NODE_EXTRA_CA_CERTS: caFile },
    connections,
    setTranscript(text) {
      transcript = text;
    },
    async stop() {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
