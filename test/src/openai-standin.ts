// A STAND-IN for an OpenAI-compatible chat-completions endpoint, for tests only: no real LLM can
// be reached where Parley's tests run, so this node:https server (its own throwaway CA, a
// certificate for 127.0.0.1, since the orchestrator's egress client speaks https only) answers POST
// /v1/chat/completions with `stream: true` in OpenAI's documented wire format (Server-Sent
// Events: `data: <chat.completion.chunk JSON>` events, then `data: [DONE]`; errors as
// `{"error":{...}}` JSON with an HTTP status). It also answers the audio endpoints the speech
// adapters use: POST /v1/audio/transcriptions (multipart form with `file` and `model`, answering
// `{"text": ...}`) and POST /v1/audio/speech (JSON with `model`, `input`, `voice`,
// `response_format: "pcm"`, answering raw 24 kHz 16-bit mono samples, streamed). It is not
// OpenAI. See test/openai-standin/README.md.
import { randomUUID } from 'node:crypto';
import { writeFileSync, mkdtempSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { pcmOfWav } from '@parley/voice-orchestrator';
import type { AddressInfo, Socket } from 'node:net';

/** OpenAiStandinMode is how the stand-in answers the next requests. */
export type OpenAiStandinMode =
  /** up streams the reply. */
  | 'up'
  /** unavailable answers 503 (a provider outage) to every request. */
  | 'unavailable'
  /** drop sends the first two chunks and then resets the connection (a provider dying mid-reply). */
  | 'drop'
  /** hang accepts the request and never answers. */
  | 'hang'
  /** stall answers headers (chat: and two tokens; speech: the first chunk of audio) and then sends nothing more, never ending the body. */
  | 'stall'
  /** error_event starts the stream and sends an `error` object as its data (how OpenAI reports a failure mid-stream), then ends it. */
  | 'error_event'
  /** endless_line sends one token, then a `data:` line that never ends (a hostile or broken endpoint), until the client hangs up. */
  | 'endless_line'
  /** flood sends one token, then chunks without text forever, until the client hangs up. */
  | 'flood';

/** StandinMessage is a chat message as a request carries it (content is null on an assistant message with tool_calls). */
export interface StandinMessage {
  role: string;
  content: string | null;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

/** RecordedRequest is what a test may check about a request. */
export interface RecordedRequest {
  readonly authorization: string;
  readonly body: {
    model?: string;
    stream?: boolean;
    messages?: StandinMessage[];
    tools?: { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
  };
}

/** StandinToolCall is a tool call the stand-in asks for; `arguments` is sent as given (a string may be invalid JSON on purpose). */
export interface StandinToolCall {
  readonly name: string;
  readonly arguments: string | Record<string, unknown>;
}

/** AudioRequest is what a test may check about a transcription or speech request. */
export interface AudioRequest {
  readonly endpoint: 'transcriptions' | 'speech';
  readonly authorization: string;
  readonly model: string;
  /** transcriptions: the uploaded file's rate and duration; speech: the input text and voice. */
  readonly sampleRate?: number;
  readonly seconds?: number;
  readonly input?: string;
  readonly voice?: string;
}

/** STANDIN_SPEECH_SECONDS_PER_CHAR is how long the stand-in's speech lasts per input character (a tone, not speech). */
export const STANDIN_SPEECH_SECONDS_PER_CHAR = 0.05;

/** OpenAiStandin is a running stand-in. */
export interface OpenAiStandin {
  /** baseUrl is what an agent's provider settings name, e.g. https://127.0.0.1:1234/v1. */
  readonly baseUrl: string;
  /** port is the stand-in's port (the egress port list must name it). */
  readonly port: number;
  /** caPem / caFile are the stand-in's CA (NODE_EXTRA_CA_CERTS for a process that must trust it). */
  readonly caPem: string;
  readonly caFile: string;
  /** egressEnv is the orchestrator environment that lets the egress client reach the stand-in on loopback (tests only). */
  readonly egressEnv: Record<string, string>;
  readonly requests: RecordedRequest[];
  /** audioRequests are the transcription and speech requests, in order. */
  readonly audioRequests: AudioRequest[];
  /** endlessBytesSent is what the last endless_line or flood answer wrote before its client hung up (0 until then). */
  readonly endlessBytesSent: number;
  /** setTranscript sets what a transcription answers for an uploaded utterance (default "Stand-in transcript."). */
  setTranscript(fn: ((audio: { samples: Int16Array; sampleRate: number }) => string) | undefined): void;
  /** mode applies to later requests; failFirst makes that many next requests answer 503 first. */
  setMode(mode: OpenAiStandinMode): void;
  failNext(count: number): void;
  /** reply sets the text streamed (default: "Stand-in reply. You said: <last user message>"). */
  setReply(reply: ((lastUser: string, messages: readonly StandinMessage[]) => string) | undefined): void;
  /**
   * setToolCalls makes the stand-in answer a request with tool calls instead of text when `fn`
   * returns some for its messages: streamed as `delta.tool_calls` fragments (id and name first,
   * the arguments in pieces), then `finish_reason: "tool_calls"`.
   */
  setToolCalls(fn: ((messages: readonly StandinMessage[]) => readonly StandinToolCall[] | undefined) | undefined): void;
  stop(): Promise<void>;
}

function words(text: string): string[] {
  return text.match(/\S+\s*/gu) ?? [];
}

/** startOpenAiStandin starts the stand-in on a free loopback port; it accepts only `Bearer <apiKey>`. */
export async function startOpenAiStandin(options: { apiKey: string; chunkDelayMs?: number }): Promise<OpenAiStandin> {
  let mode: OpenAiStandinMode = 'up';
  let failures = 0;
  let replyOf: ((lastUser: string, messages: readonly StandinMessage[]) => string) | undefined;
  let toolCallsOf: ((messages: readonly StandinMessage[]) => readonly StandinToolCall[] | undefined) | undefined;
  const requests: RecordedRequest[] = [];
  const audioRequests: AudioRequest[] = [];
  let transcriptOf: ((audio: { samples: Int16Array; sampleRate: number }) => string) | undefined;
  const sockets = new Set<Socket>();
  const delay = options.chunkDelayMs ?? 10;
  let endlessBytesSent = 0;
  // Writes `piece` until the client hangs up (waiting for the socket to drain, so the stand-in itself stays small), then records how much it sent.
  const endless = async (res: ServerResponse, piece: string) => {
    let sent = 0;
    endlessBytesSent = 0;
    const closed = new Promise<void>((resolve) => res.once('close', resolve));
    while (!res.destroyed && !res.writableEnded) {
      sent += Buffer.byteLength(piece);
      if (!res.write(piece)) await Promise.race([new Promise((r) => res.once('drain', r)), closed]);
    }
    endlessBytesSent = sent;
  };

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method === 'POST' && (req.url === '/v1/audio/transcriptions' || req.url === '/v1/audio/speech'))
      return audio(req, res, Buffer.concat(chunks));
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions')
      return json(res, 404, { error: { message: 'Not found', type: 'invalid_request_error', param: null, code: null } });
    let body: RecordedRequest['body'];
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RecordedRequest['body'];
    } catch {
      return json(res, 400, {
        error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null },
      });
    }
    requests.push({ authorization: req.headers.authorization ?? '', body });
    if (req.headers.authorization !== `Bearer ${options.apiKey}`)
      return json(res, 401, {
        error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
      });
    if (failures > 0) {
      failures--;
      return json(res, 503, { error: { message: 'The server is overloaded.', type: 'server_error', param: null, code: null } });
    }
    if (mode === 'unavailable')
      return json(res, 503, { error: { message: 'The server is overloaded.', type: 'server_error', param: null, code: null } });
    if (mode === 'hang') return;
    if (body.stream !== true)
      return json(res, 400, {
        error: { message: 'the stand-in only streams', type: 'invalid_request_error', param: 'stream', code: null },
      });
    const messages = body.messages ?? [];
    const lastUser = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model ?? 'stand-in', system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
    const toolCalls = toolCallsOf?.(messages);
    if (toolCalls !== undefined && toolCalls.length > 0) {
      // Like a real model, it may name a tool the request did not declare: callers must refuse it.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.write(chunk({ role: 'assistant', content: null }, null));
      for (const [index, call] of toolCalls.entries()) {
        // As OpenAI streams them: the first fragment of a call carries its id, type and name; the arguments follow in pieces.
        res.write(
          chunk(
            {
              tool_calls: [
                { index, id: `call_${randomUUID().replaceAll('-', '')}`, type: 'function', function: { name: call.name, arguments: '' } },
              ],
            },
            null,
          ),
        );
        const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments);
        for (let at = 0; at < args.length; at += 7) {
          if (res.destroyed) return;
          res.write(chunk({ tool_calls: [{ index, function: { arguments: args.slice(at, at + 7) } }] }, null));
          await new Promise((r) => setTimeout(r, delay));
        }
      }
      res.write(chunk({}, 'tool_calls'));
      res.end('data: [DONE]\n\n');
      return;
    }
    const text = replyOf?.(lastUser ?? '', messages) ?? `Stand-in reply. You said: ${lastUser}`;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(chunk({ role: 'assistant', content: '' }, null));
    if (mode === 'error_event') {
      const error = { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null };
      res.end(`data: ${JSON.stringify({ error })}\n\n`);
      return;
    }
    if (mode === 'endless_line') {
      res.write(chunk({ content: 'Hello ' }, null));
      res.write('data: {"choices":[{"index":0,"delta":{"content":"');
      return endless(res, 'x'.repeat(64 * 1024));
    }
    if (mode === 'flood') {
      res.write(chunk({ content: 'Hello ' }, null));
      return endless(res, chunk({ content: '' }, null).repeat(64));
    }
    let sent = 0;
    for (const w of words(text)) {
      if (res.destroyed) return;
      res.write(chunk({ content: w }, null));
      sent++;
      // The connection stays open and the stream unended: a provider stalled mid-reply.
      if (mode === 'stall' && sent === 2) return;
      if (mode === 'drop' && sent === 2) {
        await new Promise((r) => setTimeout(r, delay));
        res.socket?.destroy();
        return;
      }
      await new Promise((r) => setTimeout(r, delay));
    }
    res.write(chunk({}, 'stop'));
    res.end('data: [DONE]\n\n');
  };
  const invalid = (res: ServerResponse, message: string, param: string | null) =>
    json(res, 400, { error: { message, type: 'invalid_request_error', param, code: null } });
  // The audio endpoints, as OpenAI documents them (https://platform.openai.com/docs/api-reference/audio).
  const audio = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const authorization = req.headers.authorization ?? '';
    const authorized = authorization === `Bearer ${options.apiKey}`;
    const unauthorized = () =>
      json(res, 401, {
        error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
      });
    if (mode === 'unavailable')
      return json(res, 503, { error: { message: 'The server is overloaded.', type: 'server_error', param: null, code: null } });
    if (mode === 'stall' && authorized) {
      res.writeHead(200, {
        'content-type': req.url === '/v1/audio/speech' ? 'audio/pcm' : 'application/json',
        'transfer-encoding': 'chunked',
      });
      res.write(req.url === '/v1/audio/speech' ? Buffer.alloc(4_800) : '{"text": "Stand-in');
      return;
    }
    if (req.url === '/v1/audio/transcriptions') {
      // The multipart body is read by the platform's own form-data parser (undici's), not by hand.
      let form: FormData;
      try {
        form = await new Request('https://standin.invalid/', {
          method: 'POST',
          headers: { 'content-type': req.headers['content-type'] ?? '' },
          body,
        }).formData();
      } catch {
        return invalid(res, 'Could not parse multipart form', null);
      }
      const file = form.get('file');
      const model = form.get('model');
      if (typeof model !== 'string' || model === '') return invalid(res, 'you must provide a model parameter', 'model');
      if (!(file instanceof Blob)) return invalid(res, 'you must provide a file parameter', 'file');
      let wav: { samples: Int16Array; sampleRate: number };
      try {
        wav = pcmOfWav(new Uint8Array(await file.arrayBuffer()));
      } catch {
        return invalid(res, 'Invalid file format. Supported formats: flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm', 'file');
      }
      audioRequests.push({
        endpoint: 'transcriptions',
        authorization,
        model,
        sampleRate: wav.sampleRate,
        seconds: wav.samples.length / wav.sampleRate,
      });
      if (!authorized) return unauthorized();
      return json(res, 200, { text: transcriptOf?.(wav) ?? 'Stand-in transcript.' });
    }
    let speech: { model?: unknown; input?: unknown; voice?: unknown; response_format?: unknown };
    try {
      speech = JSON.parse(body.toString('utf8')) as typeof speech;
    } catch {
      return invalid(res, 'We could not parse the JSON body of your request.', null);
    }
    if (typeof speech.input !== 'string' || speech.input === '') return invalid(res, 'you must provide an input parameter', 'input');
    if (typeof speech.model !== 'string' || typeof speech.voice !== 'string') return invalid(res, 'model and voice are required', 'model');
    audioRequests.push({ endpoint: 'speech', authorization, model: speech.model, input: speech.input, voice: speech.voice });
    if (!authorized) return unauthorized();
    if (speech.response_format !== 'pcm') return invalid(res, 'the stand-in only answers response_format "pcm"', 'response_format');
    // Not speech: a 220 Hz tone as long as the input warrants, in OpenAI's "pcm" format (24 kHz, 16-bit LE, mono, no header).
    const samples = new Int16Array(Math.round(speech.input.length * STANDIN_SPEECH_SECONDS_PER_CHAR * 24_000));
    for (let i = 0; i < samples.length; i++) samples[i] = Math.round(8_000 * Math.sin((2 * Math.PI * 220 * i) / 24_000));
    const bytes = Buffer.from(samples.buffer);
    res.writeHead(200, { 'content-type': 'audio/pcm', 'transfer-encoding': 'chunked' });
    // Odd-sized chunks, as a network may cut them: the adapter must not split a sample.
    for (let at = 0; at < bytes.length; at += 4_801) {
      if (res.destroyed) return;
      res.write(bytes.subarray(at, at + 4_801));
      await new Promise((r) => setTimeout(r, delay));
    }
    res.end();
  };
  const ca = await createCertificateAuthority({ name: 'OpenAI stand-in test CA' });
  const leaf = await issueCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const caFile = join(mkdtempSync(join(tmpdir(), 'parley-openai-standin-')), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `https://127.0.0.1:${port}/v1`,
    port,
    caPem: ca.certPem,
    caFile,
    egressEnv: { PARLEY_EGRESS_ALLOWED_PORTS: String(port), PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32', NODE_EXTRA_CA_CERTS: caFile },
    requests,
    audioRequests,
    get endlessBytesSent() {
      return endlessBytesSent;
    },
    setTranscript(fn) {
      transcriptOf = fn;
    },
    setMode(m) {
      mode = m;
    },
    failNext(count) {
      failures = count;
    },
    setReply(fn) {
      replyOf = fn;
    },
    setToolCalls(fn) {
      toolCallsOf = fn;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
