import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '@parley/platform';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { pcm16FromBytes, pcm16ToBytes, SAMPLE_RATES, type AudioFormat } from './audio.js';
import type { ClientChannel, LiveConversation, ServerFrame } from './conversation.js';
import type { StartRequest } from './conversation-start.js';
import { CLOSE_CODES, SessionRefusal } from './session-refusal.js';
import { serveTwilioMediaStream, type TwilioStreamOptions } from './twilio-media-stream.js';
import { handleTwilioCall, TWILIO_VOICE_PATH, type TwilioCallDeps } from './twilio-call-webhook.js';

/** TWILIO_MEDIA_STREAM_PATH is where Twilio Media Streams connect (the TwiML <Stream url>). */
export const TWILIO_MEDIA_STREAM_PATH = '/v1/telephony/twilio/media-stream';

/** MAX_USER_TEXT_CHARS bounds one user message. */
export const MAX_USER_TEXT_CHARS = 4_000;
const MAX_TOKEN_CHARS = 8_192;
/** MAX_AUDIO_FRAME_MS bounds one binary audio frame from a client (the detector and STT work in small steps). */
export const MAX_AUDIO_FRAME_MS = 200;
/**
 * AUDIO_RATE_SLACK lets a client send audio this much faster than real time (network jitter
 * bunches frames up), with a burst of AUDIO_BURST_SECONDS; past that frames are dropped.
 */
const AUDIO_RATE_SLACK = 1.25;
const AUDIO_BURST_SECONDS = 2;
/** AUDIO_OVERRUNS_TO_CLOSE dropped audio frames close the connection. */
const AUDIO_OVERRUNS_TO_CLOSE = 100;

/** parseAudioFormat reads a start frame's "audio" member: undefined when absent, a message saying what to fix when wrong. */
export function parseAudioFormat(value: unknown): AudioFormat | string | undefined {
  if (value === undefined) return undefined;
  const v = value as { format?: unknown; sampleRate?: unknown };
  if (
    typeof value !== 'object' ||
    value === null ||
    v.format !== 'pcm16' ||
    typeof v.sampleRate !== 'number' ||
    !SAMPLE_RATES.includes(v.sampleRate)
  )
    return `"audio" must be {"format":"pcm16","sampleRate":R} with R one of ${SAMPLE_RATES.join(', ')}`;
  return { format: 'pcm16', sampleRate: v.sampleRate };
}

/** SessionServerOptions configure createSessionServer. */
export interface SessionServerOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly logger: Logger;
  readonly startTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly messagesPerSecond: number;
  readonly messageBurst: number;
  /** start runs a conversation's start for a connection (startConversation with its deps). */
  readonly start: (req: StartRequest, channel: ClientChannel) => Promise<LiveConversation>;
  /** twilioCall serves Twilio's inbound call webhook (POST /v1/telephony/twilio/voice/{tenantId}/{agentId}). */
  readonly twilioCall: Omit<TwilioCallDeps, 'logger' | 'mediaStreamPath'>;
  /** handOffCall transfers a Media Streams call to a human (call-handoff.ts); without it a hand-off only ends the call. */
  readonly handOffCall?: TwilioStreamOptions['handOff'];
}

/** SessionServer is the public session port. */
export interface SessionServer {
  listen(port: number, host: string): Promise<number>;
  setCertificate(cert: Buffer, key: Buffer): void;
  /** stopAccepting refuses new connections (503 on upgrade) and closes those still before their start. */
  stopAccepting(): void;
  close(): Promise<void>;
}

// Reasons in close frames are limited to 123 bytes by RFC 6455.
function clip(reason: string): string {
  return Buffer.byteLength(reason) <= 123 ? reason : Buffer.from(reason).subarray(0, 120).toString('utf8');
}

/**
 * corkUntilTickEnd holds a connection's writes until the current tick's work is done, so the
 * audio frames one tick sends (the first lead of a sentence's audio: 20 ms frames, sent back to
 * back) leave in one TLS write and one syscall instead of one each (bench/README.md, voice). ws keeps its socket as `_socket`; Node counts corks, so ws's own cork per frame nests.
 */
function corkUntilTickEnd(ws: WebSocket, state: { corked: boolean }): void {
  const socket = (ws as unknown as { _socket?: Duplex })._socket;
  if (state.corked || socket === undefined) return;
  state.corked = true;
  socket.cork();
  process.nextTick(() => {
    state.corked = false;
    socket.uncork();
  });
}

function channelOf(ws: WebSocket): ClientChannel {
  const cork = { corked: false };
  return {
    send(frame: ServerFrame) {
      // Text frames go at once: a transcript frame is when the caller sees that a turn began.
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
    },
    close(code, reason) {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, clip(reason));
    },
    sendAudio(samples) {
      if (ws.readyState !== ws.OPEN) return;
      corkUntilTickEnd(ws, cork);
      ws.send(pcm16ToBytes(samples), { binary: true });
    },
    bufferedBytes() {
      return ws.bufferedAmount;
    },
  };
}

/** SESSION_PATHS are where the WebSocket is served: the protocol's path and the session URL identity hands out. */
function isSessionPath(path: string): boolean {
  return path === '/v1/session' || /^\/v1\/sessions\/[0-9a-fA-F-]{36}$/.test(path);
}

/**
 * createSessionServer is the session port: TLS, WebSocket upgrades on /v1/session, JSON text
 * frames, a start frame within the start timeout, a frame size limit and a per-connection token
 * bucket. Everything about the conversation itself is LiveConversation's.
 */
export function createSessionServer(options: SessionServerOptions): SessionServer {
  const log = options.logger;
  let accepting = true;
  const waiting = new Set<WebSocket>();
  const https: Server = createServer({ cert: options.cert, key: options.key, minVersion: 'TLSv1.2' }, (req, res) => {
    if (TWILIO_VOICE_PATH.test((req.url ?? '/').split('?')[0]!)) {
      if (!accepting) {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('shutting down; try again shortly');
        return;
      }
      void handleTwilioCall(req, res, { ...options.twilioCall, logger: log, mediaStreamPath: TWILIO_MEDIA_STREAM_PATH });
      return;
    }
    res.writeHead(426, { 'content-type': 'application/json', upgrade: 'websocket' });
    res.end('{"error":"this port speaks WebSocket at /v1/session; see the session protocol in README"}');
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes, perMessageDeflate: false });

  https.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'https://session.invalid');
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    const twilio = url.pathname === TWILIO_MEDIA_STREAM_PATH;
    if (!twilio && !isSessionPath(url.pathname)) return refuse(404, 'Not Found');
    if (!accepting) return refuse(503, 'Service Unavailable');
    if (twilio)
      return wss.handleUpgrade(req, socket, head, (ws) => {
        waiting.add(ws);
        ws.once('close', () => waiting.delete(ws));
        serveTwilioMediaStream(ws, {
          logger: log,
          startTimeoutMs: options.startTimeoutMs,
          start: options.start,
          onLive: () => waiting.delete(ws),
          ...(options.handOffCall !== undefined ? { handOff: options.handOffCall } : {}),
        });
      });
    wss.handleUpgrade(req, socket, head, (ws) => {
      const origin = typeof req.headers.origin === 'string' ? req.headers.origin : '';
      const agentParam = url.searchParams.get('agent_id');
      serve(ws, origin, agentParam ?? undefined);
    });
  });

  function serve(ws: WebSocket, origin: string, agentParam: string | undefined): void {
    const channel = channelOf(ws);
    let phase: 'awaiting' | 'starting' | 'live' | 'closed' = 'awaiting';
    let conversation: LiveConversation | undefined;
    let tokens = options.messageBurst;
    let refilled = performance.now();
    let overruns = 0;
    let audio: AudioFormat | undefined;
    let audioBytes = 0;
    let audioRefilled = performance.now();
    let audioOverruns = 0;
    waiting.add(ws);
    const startTimer = setTimeout(() => {
      if (phase === 'awaiting') channel.close(CLOSE_CODES.startTimeout, `start frame not received within ${options.startTimeoutMs} ms`);
    }, options.startTimeoutMs);
    const error = (code: string, message: string) => channel.send({ type: 'error', code, message });

    /** onAudio takes a binary frame: PCM16 at the declared rate, within the frame size and the audio rate. */
    function onAudio(data: RawData): void {
      if (phase !== 'live' || conversation === undefined)
        return error('not_started', phase === 'starting' ? 'wait for the ready frame before sending audio' : 'send a start frame first');
      if (audio === undefined)
        return error(
          'audio_not_declared',
          'declare the audio format in the start frame ("audio":{"format":"pcm16","sampleRate":16000}) to send binary frames',
        );
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      const rate = audio.sampleRate * 2;
      if (bytes.length % 2 !== 0) return error('bad_frame', 'audio frames are 16-bit samples: an even number of bytes');
      if (bytes.length > (rate * MAX_AUDIO_FRAME_MS) / 1000)
        return error(
          'too_long',
          `an audio frame may hold at most ${MAX_AUDIO_FRAME_MS} ms (${(rate * MAX_AUDIO_FRAME_MS) / 1000} bytes at ${audio.sampleRate} Hz)`,
        );
      const now = performance.now();
      audioBytes = Math.min(rate * AUDIO_BURST_SECONDS, audioBytes + ((now - audioRefilled) / 1000) * rate * AUDIO_RATE_SLACK);
      audioRefilled = now;
      if (audioBytes < bytes.length) {
        audioOverruns++;
        if (audioOverruns > AUDIO_OVERRUNS_TO_CLOSE)
          return channel.close(CLOSE_CODES.policy, 'audio sent faster than real time, repeatedly');
        // One error frame per ten dropped frames: the answer to a flood is not a flood.
        if (audioOverruns % 10 === 1) error('rate_limited', `audio faster than real time at ${audio.sampleRate} Hz; frames were dropped`);
        return;
      }
      audioBytes -= bytes.length;
      // A copy: ws may reuse the buffer, and the samples live on in the STT queue.
      conversation.userAudio(pcm16FromBytes(new Uint8Array(bytes)));
    }

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return onAudio(data);
      const now = performance.now();
      tokens = Math.min(options.messageBurst, tokens + ((now - refilled) / 1000) * options.messagesPerSecond);
      refilled = now;
      if (tokens < 1) {
        overruns++;
        if (overruns > options.messageBurst) channel.close(CLOSE_CODES.policy, 'message rate limit exceeded repeatedly');
        else error('rate_limited', `at most ${options.messagesPerSecond} messages per second; this one was dropped`);
        return;
      }
      tokens -= 1;
      let frame: unknown;
      try {
        frame = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
      } catch {
        return error('bad_frame', 'frames must be JSON text');
      }
      if (typeof frame !== 'object' || frame === null || Array.isArray(frame) || typeof (frame as { type?: unknown }).type !== 'string')
        return error('bad_frame', 'frames must be JSON objects with a string "type"');
      const f = frame as Record<string, unknown>;
      switch (f.type) {
        case 'start':
          return onStart(f);
        case 'user_text': {
          if (phase !== 'live' || conversation === undefined)
            return error('not_started', phase === 'starting' ? 'wait for the ready frame before sending text' : 'send a start frame first');
          const text = f.text;
          if (typeof text !== 'string' || text.trim() === '') return error('bad_frame', 'user_text needs a non-empty string "text"');
          if (text.length > MAX_USER_TEXT_CHARS) return error('too_long', `"text" may be at most ${MAX_USER_TEXT_CHARS} characters`);
          conversation.userText(text);
          return;
        }
        case 'end':
          if (conversation !== undefined) void conversation.end('ended by the client');
          else channel.close(CLOSE_CODES.normal, 'ended by the client');
          return;
        default:
          return error('unknown_type', `unknown frame type "${String(f.type).slice(0, 40)}"; expected start, user_text or end`);
      }
    });

    function onStart(f: Record<string, unknown>): void {
      if (phase !== 'awaiting') return error('already_started', 'a connection takes one start frame');
      const token = f.token;
      if (typeof token !== 'string' || token === '' || token.length > MAX_TOKEN_CHARS)
        return channel.close(CLOSE_CODES.unauthenticated, 'token invalid');
      const agentId = typeof f.agentId === 'string' ? f.agentId : agentParam;
      const declared = parseAudioFormat(f.audio);
      if (typeof declared === 'string') return error('bad_frame', declared);
      audio = declared;
      // The first second's budget is there at once, so a client may start speaking right after ready.
      audioBytes = audio === undefined ? 0 : audio.sampleRate * 2;
      phase = 'starting';
      clearTimeout(startTimer);
      waiting.delete(ws);
      options
        .start({ token, origin, ...(agentId !== undefined ? { agentId } : {}), ...(audio !== undefined ? { audio } : {}) }, channel)
        .then(
          (c) => {
            conversation = c;
            if (phase === 'closed') {
              void c.end('the client left during the start');
              return;
            }
            phase = 'live';
            audioRefilled = performance.now();
            channel.send({
              type: 'ready',
              conversationId: c.conversationId,
              agentId: c.agentId,
              ...(audio !== undefined ? { audio } : {}),
            });
            c.begin();
          },
          (err: unknown) => {
            if (err instanceof SessionRefusal) {
              // A caller's mistake (token, origin) is info; a peer that is down is the operator's.
              if (err.closeCode === CLOSE_CODES.tryAgainLater)
                log.warn(
                  { close_code: err.closeCode, reason: err.message, err: err.cause },
                  'session refused: a service it needs is unavailable',
                );
              else log.info({ close_code: err.closeCode, reason: err.message }, 'session refused');
              channel.close(err.closeCode, err.message);
            } else {
              log.error({ err }, 'session start failed');
              channel.close(CLOSE_CODES.internal, 'internal error; try again');
            }
          },
        );
    }

    ws.on('close', () => {
      clearTimeout(startTimer);
      waiting.delete(ws);
      const was = phase;
      phase = 'closed';
      if (was === 'live' && conversation !== undefined) void conversation.end('the client disconnected');
    });
    ws.on('error', (err) => {
      // Oversized frames and protocol violations arrive here; ws closes with 1009 / 1002 itself.
      log.info({ error: err.message }, 'session connection error');
    });
  }

  return {
    async listen(port, host) {
      await new Promise<void>((resolve, reject) => {
        https.once('error', reject);
        https.listen(port, host, () => {
          https.off('error', reject);
          resolve();
        });
      });
      return (https.address() as AddressInfo).port;
    },
    setCertificate(cert, key) {
      https.setSecureContext({ cert, key });
    },
    stopAccepting() {
      accepting = false;
      for (const ws of waiting) channelOf(ws).close(CLOSE_CODES.tryAgainLater, 'server shutting down; reconnect');
    },
    async close() {
      accepting = false;
      // Let closing handshakes started by the drain complete, so clients see 1001 and not 1006.
      const closing = [...wss.clients].map(
        (ws) =>
          new Promise<void>((resolve) => {
            if (ws.readyState === ws.CLOSED) return resolve();
            const timer = setTimeout(resolve, 1_000);
            ws.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      );
      await Promise.all(closing);
      for (const ws of wss.clients) ws.terminate();
      const closed = new Promise<void>((resolve) => https.close(() => resolve()));
      https.closeAllConnections();
      await closed;
    },
  };
}
