// The Twilio Media Streams side of the session port: a call's audio arrives as JSON text frames
// (https://www.twilio.com/docs/voice/media-streams/websocket-messages): `connected`, then
// `start` (stream and call ids, the custom parameters of the TwiML <Stream>, the media format),
// `media` (base64 G.711 μ-law at 8 kHz, ~20 ms each), `mark` (a mark we sent was played),
// `dtmf` (a key pressed: the recording's consent answer), `stop`. We answer with `media` (μ-law), `mark` (after each reply) and `clear` (drop
// queued audio: a barge-in). The conversation is the same LiveConversation and turn loop as the
// browser's; only the framing differs.
import type { Logger } from '@parley/platform';
import type { RawData, WebSocket } from 'ws';
import { mulawDecode, mulawEncode } from './audio.js';
import type { ClientChannel, HandOffRequest, LiveConversation, ServerFrame } from './conversation.js';
import type { StartRequest } from './conversation-start.js';
import { CLOSE_CODES, SessionRefusal } from './session-refusal.js';

/** TWILIO_SAMPLE_RATE is Media Streams' only rate (audio/x-mulaw, 8 kHz, mono). */
export const TWILIO_SAMPLE_RATE = 8_000;
/** MAX_MEDIA_PAYLOAD_BYTES bounds one media frame's audio (200 ms of μ-law). */
const MAX_MEDIA_PAYLOAD_BYTES = 1_600;
/** Caller audio faster than this much over real time, past a 2 s burst, is dropped. */
const MEDIA_RATE_SLACK = 1.25;
/** HANDOFF_MARK_WAIT_MS bounds the wait for the hand-off message to be played before the call is transferred. */
const HANDOFF_MARK_WAIT_MS = 15_000;

/** TwilioStreamOptions are what serveTwilioMediaStream needs from the session server. */
export interface TwilioStreamOptions {
  readonly logger: Logger;
  readonly startTimeoutMs: number;
  readonly start: (req: StartRequest, channel: ClientChannel) => Promise<LiveConversation>;
  /** onLive / onGone let the server track the connection (drain on shutdown). */
  readonly onLive?: () => void;
  /** handOff transfers the call (by its CallSid) to a human; resolves with the transcript's line, never throws. */
  readonly handOff?: (call: { readonly callSid: string; readonly request: HandOffRequest }) => Promise<string>;
}

interface TwilioMessage {
  event?: unknown;
  streamSid?: unknown;
  start?: { streamSid?: unknown; callSid?: unknown; customParameters?: Record<string, unknown>; mediaFormat?: Record<string, unknown> };
  media?: { track?: unknown; payload?: unknown };
  dtmf?: { track?: unknown; digit?: unknown };
  mark?: { name?: unknown };
}

/**
 * serveTwilioMediaStream runs one call's Media Streams connection: the session token minted for
 * the call comes as the <Stream>'s `token` parameter (never an API key), the start is the same
 * as a browser's (token spent once, agent, keys), and audio is converted between μ-law 8 kHz and
 * PCM16 with alawmulaw. Twilio shows no error frames to anyone, so refusals close the socket with
 * the session protocol's close codes and are logged.
 */
export function serveTwilioMediaStream(ws: WebSocket, options: TwilioStreamOptions): void {
  const log = options.logger;
  let phase: 'awaiting' | 'starting' | 'live' | 'closed' = 'awaiting';
  let conversation: LiveConversation | undefined;
  let streamSid = '';
  let callSid = '';
  let marks = 0;
  /** played resolves marks Twilio echoed (the audio sent before them has been played), by name. */
  const played = new Map<string, () => void>();
  let budget = TWILIO_SAMPLE_RATE;
  let refilled = performance.now();
  const close = (code: number, reason: string) => {
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason.slice(0, 120));
  };
  const sendJson = (message: unknown) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const channel: ClientChannel = {
    send(frame: ServerFrame) {
      // The caller hears audio only; of the text frames, two matter to Twilio.
      if (frame.type === 'event' && frame.name === 'barge_in') sendJson({ event: 'clear', streamSid });
      else if (frame.type === 'assistant_text' && frame.final) sendJson({ event: 'mark', streamSid, mark: { name: `reply-${++marks}` } });
    },
    close,
    sendAudio(samples) {
      sendJson({ event: 'media', streamSid, media: { payload: Buffer.from(mulawEncode(samples)).toString('base64') } });
    },
    bufferedBytes: () => ws.bufferedAmount,
    async handOff(request) {
      if (options.handOff === undefined) return 'hand-off asked for; this deployment does not transfer calls';
      // The call identity minted the token for, never the stream's own word (see onStart).
      if (callSid === '') return 'hand-off asked for; this session was not minted for a call, so no call is transferred';
      // Twilio echoes a mark once the audio sent before it has been played: the caller hears the
      // rule's message before the transfer (the call leaves this stream the moment it is updated).
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, HANDOFF_MARK_WAIT_MS);
        played.set('handoff', () => {
          clearTimeout(timer);
          resolve();
        });
        ws.once('close', () => played.get('handoff')?.());
        sendJson({ event: 'mark', streamSid, mark: { name: 'handoff' } });
      });
      if (ws.readyState !== ws.OPEN) return 'hand-off asked for; the caller hung up first';
      return options.handOff({ callSid, request });
    },
  };
  const startTimer = setTimeout(() => {
    if (phase === 'awaiting') close(CLOSE_CODES.startTimeout, `start message not received within ${options.startTimeoutMs} ms`);
  }, options.startTimeoutMs);

  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (isBinary) return close(CLOSE_CODES.badFrame, 'Media Streams messages are JSON text');
    let message: TwilioMessage;
    try {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
      message = JSON.parse(text) as TwilioMessage;
    } catch {
      return close(CLOSE_CODES.badFrame, 'Media Streams messages are JSON');
    }
    if (typeof message !== 'object' || message === null) return close(CLOSE_CODES.badFrame, 'Media Streams messages are JSON objects');
    switch (message.event) {
      case 'mark':
        if (typeof message.mark?.name === 'string') played.get(message.mark.name)?.();
        return;
      case 'connected':
        return;
      case 'dtmf': {
        // A key the caller pressed answers the recording's consent question ("1" is yes).
        const digit = message.dtmf?.digit;
        if (phase === 'live' && typeof digit === 'string' && /^[0-9*#]$/.test(digit)) conversation?.userDigit(digit);
        return;
      }
      case 'start':
        return onStart(message);
      case 'media':
        return onMedia(message);
      case 'stop':
        if (conversation !== undefined) void conversation.end('the call ended');
        else close(CLOSE_CODES.normal, 'the call ended');
        return;
      default:
        log.info({ event: String(message.event).slice(0, 40) }, 'unknown Media Streams event ignored');
    }
  });

  function onStart(message: TwilioMessage): void {
    if (phase !== 'awaiting') return;
    const start = message.start;
    const token = start?.customParameters?.token;
    const format = start?.mediaFormat;
    if (typeof start?.streamSid !== 'string' || typeof token !== 'string' || token === '' || token.length > 8_192)
      return close(CLOSE_CODES.unauthenticated, 'token invalid: the <Stream> needs a "token" parameter with the session token');
    if (format !== undefined && (format.encoding !== 'audio/x-mulaw' || format.sampleRate !== TWILIO_SAMPLE_RATE || format.channels !== 1))
      return close(CLOSE_CODES.badFrame, 'only audio/x-mulaw at 8000 Hz, mono, is supported');
    streamSid = start.streamSid;
    phase = 'starting';
    clearTimeout(startTimer);
    const agentId = typeof start.customParameters?.agentId === 'string' ? start.customParameters.agentId : undefined;
    options
      .start(
        {
          token,
          origin: '',
          ...(agentId !== undefined ? { agentId } : {}),
          audio: { format: 'pcm16', sampleRate: TWILIO_SAMPLE_RATE },
          // Checked against the CallSid identity recorded for the token: another call's is refused.
          callSid: typeof start.callSid === 'string' ? start.callSid : '',
        },
        channel,
      )
      .then(
        (c) => {
          conversation = c;
          callSid = c.callSid;
          if (phase === 'closed') return void c.end('the call ended during the start');
          phase = 'live';
          refilled = performance.now();
          options.onLive?.();
          c.begin();
        },
        (err: unknown) => {
          if (err instanceof SessionRefusal) {
            log.info({ close_code: err.closeCode, reason: err.message }, 'call refused');
            close(err.closeCode, err.message);
          } else {
            log.error({ err }, 'call start failed');
            close(CLOSE_CODES.internal, 'internal error');
          }
        },
      );
  }

  function onMedia(message: TwilioMessage): void {
    if (phase !== 'live' || conversation === undefined) return;
    const payload = message.media?.payload;
    if (message.media?.track !== undefined && message.media.track !== 'inbound') return;
    if (typeof payload !== 'string') return close(CLOSE_CODES.badFrame, 'media without a payload');
    const bytes = Buffer.from(payload, 'base64');
    if (bytes.length === 0 || bytes.length > MAX_MEDIA_PAYLOAD_BYTES) return close(CLOSE_CODES.badFrame, 'media payload of a bad size');
    const now = performance.now();
    budget = Math.min(TWILIO_SAMPLE_RATE * 2, budget + ((now - refilled) / 1000) * TWILIO_SAMPLE_RATE * MEDIA_RATE_SLACK);
    refilled = now;
    if (budget < bytes.length) return; // faster than a phone line can be: dropped
    budget -= bytes.length;
    conversation.userAudio(mulawDecode(new Uint8Array(bytes)));
  }

  ws.on('close', () => {
    clearTimeout(startTimer);
    const was = phase;
    phase = 'closed';
    if (was === 'live' && conversation !== undefined) void conversation.end('the call ended');
  });
  ws.on('error', (err) => log.info({ error: err.message }, 'media stream connection error'));
}
