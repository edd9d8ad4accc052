// ParleyVoiceClient: one conversation on Parley's session port from a browser, with nothing but
// a session token that the customer's backend minted (never an API key: the port refuses one,
// and a page must never hold one). Text frames carry the protocol; binary frames carry PCM16
// audio at the rate declared in `start`, both ways.
import { TypedEmitter } from './emitter.js';
import { Microphone, type CaptureKind } from './microphone.js';
import { pcm16FromBytes, pcm16ToBytes, SAMPLE_RATES } from './pcm.js';
import { AudioPlayer } from './player.js';
import { parseServerFrame, type EventFrame, type ReadyFrame, type ServerFrame } from './protocol.js';

/** ParleyVoiceClientOptions say where to connect, with which token, and whether to talk. */
export interface ParleyVoiceClientOptions {
  /** sessionUrl is the session port's WebSocket URL (`wss://…/v1/session`), as the backend hands it out. */
  readonly sessionUrl: string;
  /** token is the single-use session token from the backend's CreateSession. */
  readonly token: string;
  /** audio turns voice on at this rate (8000, 16000, 24000 or 48000; default 16000); false: a text-only conversation. */
  readonly audio?: false | { readonly sampleRate?: number };
  /** agentId, when given, must be the token's agent (the server checks). */
  readonly agentId?: string;
  /** audioContext lets a page share its own AudioContext; by default the client makes one on connect. */
  readonly audioContext?: AudioContext;
  /** microphone overrides capture details (constraints, where the worklet file is served). */
  readonly microphone?: { readonly constraints?: MediaTrackConstraints; readonly workletUrl?: string | URL };
}

/** Transcript is one line of the conversation as the page shows it. */
export interface Transcript {
  /** role: `user` for what the STT heard (or what was typed), `agent` for released sentences. */
  readonly role: 'user' | 'agent';
  readonly text: string;
  /** final: the user's turn is complete / (agent) the reply is complete. */
  readonly final: boolean;
}

/** ParleyVoiceEvents are the client's events and their payloads. */
export interface ParleyVoiceEvents {
  /** ready: the conversation is live. */
  ready: ReadyFrame;
  /** transcript: a line heard or said (agent sentences arrive one by one; a final agent line with empty text ends the reply). */
  transcript: Transcript;
  /** replyEnd: the agent's reply is complete, or was cut by a barge-in (`interrupted`). */
  replyEnd: { readonly interrupted: boolean };
  /** event: a conversation event (guardrail, escalation, handoff, barge_in, turn_failed, stt_failed, tts_failed…). */
  event: EventFrame;
  /** bargeIn: the caller spoke over the agent; queued agent audio was dropped. */
  bargeIn: undefined;
  /** audio: an agent audio frame arrived (and was queued for playback). */
  audio: { readonly samples: Int16Array; readonly sampleRate: number };
  /** error: the server refused a frame (the connection stays open). */
  error: { readonly code: string; readonly message: string };
  /** end: the server ended the conversation, with its reason. */
  end: { readonly reason: string };
  /** close: the connection closed (code and reason as the README's table gives them). */
  close: { readonly code: number; readonly reason: string };
  /** microphone: capture started (with the capture path in use) or stopped. */
  microphone: { readonly on: boolean; readonly capture?: CaptureKind };
}

/** ConnectionState is where the client is in its life. */
export type ConnectionState = 'idle' | 'connecting' | 'live' | 'closed';

/** ParleyConnectionError is why connect() failed: the close code and reason the session port gave. */
export class ParleyConnectionError extends Error {
  override readonly name = 'ParleyConnectionError';
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(
      code === 1006 ? 'could not reach the session port (network or TLS)' : `the session port closed the connection (${code}: ${reason})`,
    );
  }
}

/**
 * ParleyVoiceClient holds one conversation. Call connect() from a user gesture (a click): browsers
 * only let audio start there. Then startMicrophone() to talk, sendText() to type, end() to finish.
 */
export class ParleyVoiceClient extends TypedEmitter<ParleyVoiceEvents> {
  private socket: WebSocket | undefined;
  private context: AudioContext | undefined;
  private player: AudioPlayer | undefined;
  private microphone: Microphone | undefined;
  private readonly sampleRate: number | undefined;
  private currentState: ConnectionState = 'idle';
  /** stats count the audio that went each way (bytes of PCM16), for a page's meters and for tests. */
  readonly stats = { audioBytesSent: 0, audioBytesReceived: 0, audioFramesReceived: 0 };

  constructor(private readonly options: ParleyVoiceClientOptions) {
    super();
    if (options.token === '' || options.token.split('.').length !== 3) {
      throw new TypeError('ParleyVoiceClient: token must be a session token from CreateSession (never an API key)');
    }
    const url = new URL(options.sessionUrl);
    // The token travels in the connection: plain ws:// only to this machine (local development).
    const local = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
    if (url.protocol !== 'wss:' && !(url.protocol === 'ws:' && local))
      throw new TypeError(`ParleyVoiceClient: sessionUrl must be wss:// (ws:// only to localhost; got ${url.protocol}//${url.host})`);
    if (options.audio !== false) {
      const rate = options.audio?.sampleRate ?? 16_000;
      if (!SAMPLE_RATES.includes(rate))
        throw new RangeError(`ParleyVoiceClient: audio.sampleRate must be one of ${SAMPLE_RATES.join(', ')}`);
      this.sampleRate = rate;
    }
  }

  /** state is where the client is: idle, connecting, live or closed. */
  get state(): ConnectionState {
    return this.currentState;
  }

  /** queuedAudioSeconds is how much of the agent's audio is scheduled and not yet played (0: the agent is silent). */
  get queuedAudioSeconds(): number {
    return this.player?.queuedSeconds ?? 0;
  }

  /** connect opens the session port, sends `start` and resolves with `ready`; it rejects with a ParleyConnectionError. */
  connect(): Promise<ReadyFrame> {
    if (this.currentState !== 'idle') return Promise.reject(new Error('ParleyVoiceClient: connect() may be called once'));
    this.currentState = 'connecting';
    if (this.sampleRate !== undefined) {
      // Made (or resumed) before the first await, while the user gesture still counts.
      this.context = this.options.audioContext ?? new AudioContext({ latencyHint: 'interactive' });
      void this.context.resume();
      this.player = new AudioPlayer(this.context, this.sampleRate);
    }
    const socket = new WebSocket(this.options.sessionUrl);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    return new Promise<ReadyFrame>((resolve, reject) => {
      socket.addEventListener('open', () => {
        const start: Record<string, unknown> = { type: 'start', token: this.options.token };
        if (this.options.agentId !== undefined) start.agentId = this.options.agentId;
        if (this.sampleRate !== undefined) start.audio = { format: 'pcm16', sampleRate: this.sampleRate };
        socket.send(JSON.stringify(start));
      });
      socket.addEventListener('message', (event: MessageEvent<string | ArrayBuffer>) => {
        if (typeof event.data === 'string') {
          const frame = parseServerFrame(event.data);
          if (frame?.type === 'ready') {
            this.currentState = 'live';
            resolve(frame);
          }
          if (frame !== undefined) this.onFrame(frame);
        } else {
          this.onAudio(event.data);
        }
      });
      socket.addEventListener('close', (event) => {
        const wasConnecting = this.currentState === 'connecting';
        this.currentState = 'closed';
        this.release();
        if (wasConnecting) reject(new ParleyConnectionError(event.code, event.reason));
        this.emit('close', { code: event.code, reason: event.reason });
      });
    });
  }

  /** startMicrophone asks for the microphone and streams it to the agent (the conversation must be live with audio). */
  async startMicrophone(): Promise<void> {
    if (this.currentState !== 'live') throw new Error('ParleyVoiceClient: startMicrophone() needs a live conversation');
    if (this.context === undefined || this.sampleRate === undefined)
      throw new Error('ParleyVoiceClient: this conversation was started without audio');
    if (this.microphone !== undefined) return;
    await this.context.resume();
    this.microphone = await Microphone.open({
      context: this.context,
      sampleRate: this.sampleRate,
      onFrame: (frame) => this.sendAudio(frame),
      ...this.options.microphone,
    });
    this.emit('microphone', { on: true, capture: this.microphone.kind });
  }

  /** stopMicrophone stops capture and releases the device; the conversation goes on. */
  stopMicrophone(): void {
    if (this.microphone === undefined) return;
    this.microphone.stop();
    this.microphone = undefined;
    this.emit('microphone', { on: false });
  }

  /** sendAudio sends PCM16 samples at the declared rate (startMicrophone does this for the microphone). */
  sendAudio(samples: Int16Array): void {
    if (this.socket?.readyState !== WebSocket.OPEN || this.currentState !== 'live') return;
    const bytes = pcm16ToBytes(samples);
    this.socket.send(bytes);
    this.stats.audioBytesSent += bytes.byteLength;
  }

  /** sendText sends a typed user message (at most 4,000 characters); sent while the agent replies, it interrupts it. */
  sendText(text: string): void {
    if (this.socket?.readyState !== WebSocket.OPEN || this.currentState !== 'live')
      throw new Error('ParleyVoiceClient: the conversation is not live');
    this.player?.stop();
    this.socket.send(JSON.stringify({ type: 'user_text', text }));
    this.emit('transcript', { role: 'user', text, final: true });
  }

  /** end asks the server to end the conversation (it answers with `end` and a close). */
  end(): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: 'end' }));
  }

  /** close drops the connection at once (the server records the conversation as ended by the client). */
  close(): void {
    this.socket?.close(1000, 'client closed');
    this.release();
  }

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'ready':
        this.emit('ready', frame);
        break;
      case 'user_transcript':
        this.emit('transcript', { role: 'user', text: frame.text, final: frame.final });
        break;
      case 'assistant_text':
        if (frame.final && frame.interrupted === true) this.player?.stop();
        this.emit('transcript', { role: 'agent', text: frame.text, final: frame.final });
        if (frame.final) this.emit('replyEnd', { interrupted: frame.interrupted === true });
        break;
      case 'event':
        if (frame.name === 'barge_in') {
          // The caller is talking: what is still queued of the agent's voice must not play over them.
          this.player?.stop();
          this.emit('bargeIn', undefined);
        }
        this.emit('event', frame);
        break;
      case 'error':
        this.emit('error', { code: frame.code, message: frame.message });
        break;
      case 'end':
        this.emit('end', { reason: frame.reason });
        break;
    }
  }

  private onAudio(bytes: ArrayBuffer): void {
    if (this.sampleRate === undefined) return;
    const samples = pcm16FromBytes(bytes);
    this.stats.audioBytesReceived += bytes.byteLength;
    this.stats.audioFramesReceived += 1;
    this.player?.play(samples);
    this.emit('audio', { samples, sampleRate: this.sampleRate });
  }

  private release(): void {
    this.stopMicrophone();
    this.player?.stop();
    // A context the page lent us is the page's to close.
    if (this.context !== undefined && this.options.audioContext === undefined && this.context.state !== 'closed') void this.context.close();
  }
}
