import type { JsonObject } from '@bufbuild/protobuf';
import type { ProviderSettings, TelephonySettings } from '@parley/conversation';
import type { GuardrailState } from '@parley/guardrails';
import { recordGuardrailDecision, type Logger } from '@parley/platform';
import type { OrchestratorConfig } from './config.js';
import type { ConversationEventSink } from './conversation-events.js';
import type { ConversationKeys } from './conversation-keys.js';
import { ConversationRecorder } from './conversation-recorder.js';
import { CallRecording, consentGiven } from './call-recording.js';
import type { BlobStore } from '@parley/blob-store';
import type { RecordingBudget } from './recording-budget.js';
import type { GuardrailContext, GuardrailDecision, GuardrailStage } from './guardrail-stage.js';
import type { Peers, SessionGrant } from './peers.js';
import type { ProviderFetch } from './provider-fetch.js';
import { AsyncQueue } from './async-queue.js';
import type { AudioFormat } from './audio.js';
import type { EmbeddedTts } from './embedded-tts.js';
import {
  ProviderError,
  type ChatMessage,
  type LlmProvider,
  type SttProvider,
  type ToolCallRequest,
  type TtsProvider,
} from './providers.js';
import { SentenceBuffer, sentenceSegmenter } from './sentences.js';
import { CLOSE_CODES } from './session-refusal.js';
import type { ReplyWindows } from './reply-windows.js';
import { SlowClient, Speaker } from './speaker.js';
import { EnergyVad } from './vad.js';

/** ServerFrame is a JSON text frame the server sends (README: "Session protocol"). */
export type ServerFrame =
  | { type: 'ready'; conversationId: string; agentId: string; audio?: AudioFormat }
  | { type: 'assistant_text'; text: string; final: boolean; interrupted?: boolean }
  | { type: 'user_transcript'; text: string; final: boolean }
  | { type: 'event'; name: string; [key: string]: unknown }
  | { type: 'error'; code: string; message: string }
  | { type: 'end'; reason: string };

/** ClientChannel is the connection a conversation talks to. */
export interface ClientChannel {
  send(frame: ServerFrame): void;
  close(code: number, reason: string): void;
  /** sendAudio sends PCM16 samples at the connection's declared rate as a binary frame (voice connections). */
  sendAudio?(samples: Int16Array): void;
  /** bufferedBytes is what the connection holds unsent (back-pressure; voice connections). */
  bufferedBytes?(): number;
  /**
   * handOff transfers a phone call to a human when a guardrail rule hands off (telephony channels
   * only), after what the agent said has been heard; it resolves with what happened, for the
   * transcript (never the full number), and never throws.
   */
  handOff?(request: HandOffRequest): Promise<string>;
}

/** HandOffRequest is a hand-off a guardrail rule asked for. */
export interface HandOffRequest {
  readonly tenantId: string;
  readonly agentId: string;
  readonly conversationId: string;
  readonly rule: string | undefined;
  /** target is the rule's hand-off target (a key of the telephony settings' handoffNumbers), if it names one. */
  readonly target: string | undefined;
  readonly telephony: TelephonySettings | undefined;
}

/** ConversationDeps are the runtime's collaborators. */
export interface ConversationDeps {
  readonly peers: Peers;
  readonly logger: Logger;
  readonly events: ConversationEventSink;
  readonly providerFetch: ProviderFetch;
  readonly config: OrchestratorConfig;
  /** createGuardrails builds the guardrail stage for an agent's stored policy (default: createGuardrailStage over @parley/guardrails). */
  readonly createGuardrails?: (policy: unknown, stored?: GuardrailState) => GuardrailStage;
  /** embeddedTts is the process's offline synthesiser (voice connections whose agent names no other TTS). */
  readonly embeddedTts?: EmbeddedTts;
  /** blobs keeps recorded calls' encrypted audio (absent: PARLEY_BLOB_STORE=none, nothing is recorded). */
  readonly blobs?: BlobStore;
  /** recordingBudget bounds the memory all of the replica's call recordings hold (PARLEY_RECORDING_BUFFER_BYTES). */
  readonly recordingBudget?: RecordingBudget;
  /** recordingShutdown is aborted when the replica's wait for recordings at shutdown runs out (PARLEY_RECORDING_SHUTDOWN_WAIT_MS). */
  readonly recordingShutdown?: AbortSignal;
  /** stopping is aborted when the replica starts stopping: turn records are no longer retried (one not stored is counted as lost). */
  readonly stopping?: AbortSignal;
  /** onEnded is told when a conversation is over (the registry forgets it). */
  readonly onEnded?: (conversation: LiveConversation) => void;
  /** replyWindows counts the process's turns waiting for their first output (the recorders' writes wait for none to be). */
  readonly replyWindows?: ReplyWindows;
}

/** STOPPED_NOTE is what the transcript adds when a recording stopped before the call ended. */
const STOPPED_NOTE = {
  none: '',
  size_limit: ' (stopped at the size limit)',
  over_budget: " (stopped: the replica's recording memory was full)",
} as const;

const MAX_HISTORY = 40;
/** MAX_TOOL_ROUNDS bounds the tool calls of one turn before the model must reply (the policy's maxCallsPerTurn also applies). */
const MAX_TOOL_ROUNDS = 5;
/**
 * MAX_REPLY_CHARS bounds one streamed reply: a provider at a customer's base URL may stream without
 * end, and every character is segmented, checked, stored and sent back in the next turn's history.
 */
const MAX_REPLY_CHARS = 16_000;

/** EndOptions control how a conversation is ended. */
export interface EndOptions {
  /** closeCode / closeReason go to the client; default 1000 and the reason. */
  readonly closeCode?: number;
  readonly closeReason?: string;
  /** letReplyFinishMs lets a reply in progress finish first, up to this long (drain). */
  readonly letReplyFinishMs?: number;
  /** recorded is true when the end is already recorded in tenant-data (ended elsewhere). */
  readonly recorded?: boolean;
}

class BargeIn extends Error {
  constructor() {
    super('the user spoke while the agent was replying');
  }
}

/** LiveState is what a started conversation holds until its end (keys and provider included). */
export interface LiveState {
  readonly grant: SessionGrant;
  readonly conversationId: string;
  readonly subjectId: string | undefined;
  readonly prompt: string;
  readonly settings: ProviderSettings;
  readonly keys: ConversationKeys;
  readonly llm: LlmProvider;
  readonly guardrails: GuardrailStage;
  readonly maxDurationMs: number;
  /** voice is present on a connection that declared audio in its start frame. */
  readonly voice?: VoiceState;
}

/** VoiceState is a voice connection's audio format and speech providers. */
export interface VoiceState {
  readonly format: AudioFormat;
  /** stt is absent when the agent names no STT provider (audio then only drives barge-in). */
  readonly stt: SttProvider | undefined;
  readonly tts: TtsProvider;
}

/** INBOX_SECONDS of caller audio wait for a lagging STT provider at most; older audio is dropped. */
const INBOX_SECONDS = 10;

/**
 * LiveConversation is one conversation while its connection lives: the turn loop (user text →
 * LLM stream → guardrail stage sentence by sentence → client), barge-in, transcript capture,
 * timers, and the end. Its state is in memory; what other replicas need (status, turns) is in
 * tenant-data.
 */
export class LiveConversation {
  readonly tenantId: string;
  readonly conversationId: string;
  readonly agentId: string;
  /** callSid is the Twilio call identity minted this conversation's token for ('' when the session is not a call's). */
  readonly callSid: string;
  readonly startedAt = new Date();
  #state: LiveState | undefined;
  #turns = 0;
  /** #ruled counts the decisions rules made (anything but allow), so a turn none acted on is recorded as an allow. */
  #ruled = 0;
  #history: ChatMessage[] = [];
  #reply: AbortController | undefined;
  #replyDone: Promise<void> = Promise.resolve();
  #ending: Promise<void> | undefined;
  #timers: NodeJS.Timeout[] = [];
  #idle: NodeJS.Timeout | undefined;
  /** #liveCheck is the next check for an end made elsewhere (re-armed whenever tenant-data says the conversation is live). */
  #liveCheck: NodeJS.Timeout | undefined;
  readonly #life = new AbortController();
  readonly #speaker: Speaker | undefined;
  readonly #vad: EnergyVad | undefined;
  readonly #inbox: AsyncQueue<Int16Array> | undefined;
  #warnedNoStt = false;
  /** #segmenter cuts every reply of the conversation into sentences (one for all: making one costs more than a short reply's segmenting). */
  readonly #segmenter = sentenceSegmenter();
  #listening: Promise<void> = Promise.resolve();
  /** bargeIns counts replies the caller's voice interrupted. */
  bargeIns = 0;
  readonly #deps: ConversationDeps;
  readonly #channel: ClientChannel;
  readonly #log: Logger;
  readonly #recorder: ConversationRecorder;
  /** #recording keeps both sides' audio when the agent's settings turn recording on (voice connections with a blob store). */
  readonly #recording: CallRecording | undefined;
  #consentTimer: NodeJS.Timeout | undefined;
  /** #closeWindow ends the current turn's reply window (its first output is out, or it is over). */
  #closeWindow: (() => void) | undefined;
  /** #handoff is the hand-off a guardrail rule decided on, carried out at the end. */
  #handoff: { rule: string | undefined; target: string | undefined } | undefined;

  constructor(deps: ConversationDeps, state: LiveState, channel: ClientChannel) {
    this.#deps = deps;
    this.#state = state;
    this.#channel = channel;
    this.tenantId = state.grant.tenantId;
    this.conversationId = state.conversationId;
    this.agentId = state.grant.agentId;
    this.callSid = state.grant.callSid;
    this.#log = deps.logger.child({ conversation_id: state.conversationId, tenant_id: this.tenantId });
    this.#recorder = new ConversationRecorder(
      deps.peers,
      this.#log,
      this.tenantId,
      this.conversationId,
      {
        // A stored turn record is a live check answered: the next one can wait a full interval.
        onLive: () => this.#armLiveCheck(),
        onEnded: () => void this.end('ended by an operator', { recorded: true, letReplyFinishMs: 0 }),
      },
      deps.replyWindows,
      deps.stopping,
    );
    if (state.prompt !== '') this.#history.push({ role: 'system', content: state.prompt });
    const voice = state.voice;
    if (voice !== undefined) {
      const rate = voice.format.sampleRate;
      const send = channel.sendAudio?.bind(channel);
      const buffered = channel.bufferedBytes?.bind(channel);
      if (send === undefined || buffered === undefined) throw new Error('a voice conversation needs a channel that carries audio');
      const recordAgent = (samples: Int16Array) => {
        send(samples);
        this.#windowClosed();
        // What was sent is what the caller heard (a barge-in clears the rest on the client).
        this.#recording?.agent(samples);
      };
      this.#speaker = new Speaker({ sendAudio: recordAgent, bufferedBytes: buffered, close: (c, r) => channel.close(c, r) }, voice.tts, {
        sampleRate: rate,
        frameMs: deps.config.audioFrameMs,
        leadMs: deps.config.playbackLeadMs,
        maxBufferedBytes: deps.config.maxAudioBufferedBytes,
        slowClientMs: deps.config.slowClientMs,
      });
      this.#vad = new EnergyVad(rate);
      // Frames are ~20 ms; the capacity is counted in frames of the smallest size a client sends in practice.
      this.#inbox = new AsyncQueue<Int16Array>(INBOX_SECONDS * 50);
    }
    const recordingSettings = state.settings.recording;
    this.#recording =
      voice !== undefined && recordingSettings !== undefined && deps.blobs !== undefined && deps.recordingBudget !== undefined
        ? new CallRecording(
            {
              peers: deps.peers,
              blobs: deps.blobs,
              log: this.#log,
              maxBytes: deps.config.recordingMaxBytes,
              budget: deps.recordingBudget,
              ...(deps.recordingShutdown === undefined ? {} : { shutdown: deps.recordingShutdown }),
            },
            recordingSettings,
            voice.format.sampleRate,
          )
        : undefined;
    this.#timers.push(setTimeout(() => void this.end('maximum duration reached', { letReplyFinishMs: 0 }), state.maxDurationMs));
    this.#armLiveCheck();
    this.#resetIdle();
    deps.events.emit({
      type: 'conversation.started',
      tenantId: this.tenantId,
      conversationId: this.conversationId,
      agentId: this.agentId,
      at: this.startedAt,
    });
  }

  /** turns is the number of user turns so far. */
  get turns(): number {
    return this.#turns;
  }

  /** ended tells whether end() has begun. */
  get ended(): boolean {
    return this.#ending !== undefined;
  }

  /** keysForTest exposes the key holder (tests prove it is released and unreachable after the end). */
  keysForTest(): ConversationKeys | undefined {
    return this.#state?.keys;
  }

  /** userText takes a user message; while the agent is replying, it cancels that reply first (barge-in). */
  userText(text: string): void {
    if (this.#ending !== undefined) return;
    this.#resetIdle();
    // While the recording's consent is asked, the caller's answer is that answer, not a question for the agent.
    if (this.#recording?.phase === 'awaiting_consent') return this.#consentAnswer(text);
    // #reply is only set while a reply is under way (an Error per turn, with its stack, for nothing otherwise).
    this.#reply?.abort(new BargeIn());
    const controller = new AbortController();
    this.#reply = controller;
    this.#windowClosed();
    this.#closeWindow = this.#deps.replyWindows?.open();
    const previous = this.#replyDone;
    this.#replyDone = previous
      .then(() => this.#turn(text, controller.signal))
      .catch((err: unknown) => {
        this.#log.error({ err }, 'turn failed unexpectedly');
      })
      .finally(() => {
        if (this.#reply === controller) {
          this.#reply = undefined;
          // A turn that sent nothing (a rule that stays silent, an empty reply) is out of its window too.
          this.#windowClosed();
        }
      });
  }

  /**
   * userAudio takes caller audio (PCM16 at the declared rate): it goes to the STT provider, and
   * the voice detector watches it: speech while the agent is talking is a barge-in, which stops
   * the agent's audio at once and cancels the reply (the transcript of what the caller said
   * becomes the next turn).
   */
  userAudio(samples: Int16Array): void {
    if (this.#ending !== undefined || this.#vad === undefined) return;
    this.#recording?.caller(samples);
    if (this.#state?.voice?.stt === undefined) {
      if (!this.#warnedNoStt)
        this.#channel.send({
          type: 'error',
          code: 'no_stt',
          message: 'this agent has no STT provider in its provider settings: its audio is not transcribed; send user_text frames',
        });
      this.#warnedNoStt = true;
    } else this.#inbox?.push(samples);
    if (this.#vad.push(samples) !== 'speech_start') return;
    this.#resetIdle();
    if (this.#speaker?.talking === true) this.#bargeIn();
  }

  /** userDigit takes a key the caller pressed (telephony DTMF): it answers the recording's consent question, and is otherwise ignored. */
  userDigit(digit: string): void {
    if (this.#ending !== undefined || this.#recording?.phase !== 'awaiting_consent') return;
    this.#resetIdle();
    this.#consentAnswer(digit);
  }

  /** #consentAnswer settles the consent step with the caller's answer (or its absence): only a yes keeps the audio. */
  #consentAnswer(answer: string | undefined): void {
    const recording = this.#recording;
    if (recording?.phase !== 'awaiting_consent') return;
    if (this.#consentTimer !== undefined) clearTimeout(this.#consentTimer);
    if (answer !== undefined) this.#record('user', answer);
    const agreed = answer !== undefined && consentGiven(answer);
    recording.consent(agreed);
    this.#channel.send({ type: 'event', name: 'recording', state: agreed ? 'recording' : 'declined' });
    if (agreed) {
      this.#record('system', 'recording consent given: the call is recorded');
      return;
    }
    this.#record('system', `recording consent ${answer === undefined ? 'not answered' : 'refused'}: nothing of the call is recorded`);
    const declined = recording.settings.consent?.declinedLine;
    if (declined === undefined) return;
    this.#record('assistant', declined);
    void this.#say(declined, this.#life.signal)
      .catch(() => undefined)
      .then(() => this.#channel.send({ type: 'assistant_text', text: '', final: true }));
  }

  /**
   * #announceRecording says the recording announcement before anything else (and the consent
   * question, when the settings ask for one), each kept in the transcript; the consent clock
   * starts once the question has been heard.
   */
  #announceRecording(state: LiveState): void {
    const recording = this.#recording;
    if (recording === undefined) {
      if (state.voice !== undefined && state.settings.recording !== undefined)
        this.#record('system', 'call not recorded: no blob store is configured for recordings');
      return;
    }
    recording.prepareKey(this.tenantId, this.conversationId, state.subjectId);
    const lines = [recording.settings.announcement];
    const consent = recording.settings.consent;
    if (consent !== undefined) lines.push(consent.prompt);
    for (const line of lines) this.#record('assistant', line);
    this.#record(
      'system',
      consent === undefined ? 'call recording announced: the call is recorded' : 'call recording announced: consent asked',
    );
    this.#channel.send({ type: 'event', name: 'recording', state: recording.phase });
    const spoken = lines.map((line) => this.#say(line, this.#life.signal));
    void Promise.allSettled(spoken).then(() => {
      this.#channel.send({ type: 'assistant_text', text: '', final: true });
      if (consent !== undefined && recording.phase === 'awaiting_consent' && this.#ending === undefined)
        this.#consentTimer = setTimeout(() => this.#consentAnswer(undefined), consent.timeoutMs);
    });
  }

  /** #storeRecording stores the call's recording at the end (when it was kept) and notes the outcome in the transcript. */
  async #storeRecording(): Promise<void> {
    const recording = this.#recording;
    if (recording === undefined) return;
    if (this.#consentTimer !== undefined) clearTimeout(this.#consentTimer);
    try {
      const stored = await recording.store(this.tenantId, this.conversationId);
      if (stored !== undefined)
        this.#record(
          'system',
          `call recording stored: ${(stored.durationMs / 1000).toFixed(1)} s${STOPPED_NOTE[stored.stopped ?? 'none']}`,
        );
    } catch (err) {
      this.#log.error({ err: err instanceof Error ? err.message : 'unknown' }, 'call recording not stored');
      this.#record('system', 'call recording could not be stored');
    }
  }

  #bargeIn(): void {
    this.bargeIns++;
    this.#reply?.abort(new BargeIn());
    this.#speaker?.clear();
    // The client drops the audio it still holds: what the caller hears stops now.
    this.#channel.send({ type: 'event', name: 'barge_in' });
  }

  /** #listen feeds caller audio to the STT provider for the conversation's life; each final result is a user turn. */
  async #listen(stt: SttProvider, rate: number): Promise<void> {
    const inbox = this.#inbox;
    if (inbox === undefined) return;
    const signal = this.#life.signal;
    try {
      for await (const result of stt.transcribe(inbox, rate, signal)) {
        if (signal.aborted) return;
        this.#channel.send({ type: 'user_transcript', text: result.text, final: result.final });
        if (result.final && result.text.trim() !== '') this.userText(result.text.trim());
      }
    } catch (err) {
      if (signal.aborted) return;
      this.#log.warn(
        { provider: stt.kind, error: err instanceof Error ? err.message : 'unknown' },
        'STT failed; audio is no longer transcribed',
      );
      const egressRule = err instanceof ProviderError ? err.egressRule : undefined;
      this.#channel.send({
        type: 'event',
        name: 'stt_failed',
        reason: egressRule !== undefined ? 'egress_refused' : 'provider_unavailable',
        ...(egressRule !== undefined ? { rule: egressRule } : {}),
      });
      this.#record('system', `speech recognition failed: ${stt.kind} provider unavailable`);
    }
  }

  /** #say sends released text to the client and, on a voice connection, queues its audio; the promise settles when the audio is sent. */
  #say(text: string, signal: AbortSignal): Promise<void> {
    this.#channel.send({ type: 'assistant_text', text, final: false });
    // Without audio the text is the reply's first output; with audio, its first frame is (recordAgent).
    if (this.#speaker === undefined) this.#windowClosed();
    return this.#speaker?.speak(text, signal) ?? Promise.resolve();
  }

  /** #windowClosed ends the current turn's reply window, if one is open. */
  #windowClosed(): void {
    this.#closeWindow?.();
    this.#closeWindow = undefined;
  }

  async #turn(text: string, signal: AbortSignal): Promise<void> {
    const state = this.#state;
    if (state === undefined || signal.aborted) return;
    this.#turns++;
    // The turn's writes (what the caller said, the reply, its decisions and state) go to
    // tenant-data together once the reply is out (HOLD_MAX_MS at most), in one RecordTurn.
    const release = this.#recorder.hold();
    try {
      await this.#answer(text, signal, state);
    } finally {
      release();
    }
  }

  /** #answer runs one turn: the user's text is checked and recorded, the reply streamed, checked sentence by sentence, said and recorded. */
  async #answer(text: string, signal: AbortSignal, state: LiveState): Promise<void> {
    const turn = this.#turns;
    const ruledBefore = this.#ruled;
    const ctx = this.#context();
    this.#record('user', text);
    const userDecision = state.guardrails.checkUserTurn(text, ctx);
    if (userDecision.action !== 'allow') this.#announce(userDecision, 'user');
    const speaking: Promise<void>[] = [];
    if (userDecision.say !== undefined) speaking.push(this.#say(userDecision.say, signal));
    if (userDecision.stopsReply) {
      // The rule answers instead of the LLM (a break, a hand-off, the end).
      await Promise.allSettled(speaking);
      this.#channel.send({ type: 'assistant_text', text: '', final: true });
      if (userDecision.say !== undefined) this.#record('assistant', userDecision.say);
      this.#saveGuardrails();
      if (userDecision.action === 'end' || userDecision.action === 'handoff')
        void this.end(`guardrail: ${userDecision.rule ?? userDecision.action}`);
      return;
    }
    // The LLM sees the user's text as the policy lets it be passed on (personal data it may not keep, redacted).
    this.#remember({ role: 'user', content: userDecision.text });
    const released: string[] = [];
    let endRule: string | undefined;
    let interrupted = false;
    let failed = false;
    const release = (sentence: string) => {
      const decision = state.guardrails.checkSentence(sentence, ctx);
      if (decision.action !== 'allow') this.#announce(decision, 'assistant');
      // Only what the stage released is sent, as text and as speech: a sentence it replaced or
      // dropped is never synthesised, so no audio of it exists.
      if (decision.text !== '') {
        speaking.push(this.#say(decision.text, signal));
        released.push(decision.text);
      }
      if (decision.action === 'end' || decision.action === 'handoff') endRule = decision.rule ?? decision.action;
      if (decision.stopsReply) stopped = true;
    };
    let stopped = false;
    const sentences = new SentenceBuffer(this.#segmenter);
    let received = 0;
    let truncated = false;
    try {
      // The model may ask for tool calls first (several at once, with OpenAI): each is made and its
      // result added, then it is asked again, for at most MAX_TOOL_ROUNDS rounds.
      for (let round = 0; ; round++) {
        const toolCalls: ToolCallRequest[] = [];
        for await (const delta of state.llm.streamReply(this.#history, signal)) {
          if (typeof delta !== 'string') {
            toolCalls.push(delta);
            continue;
          }
          received += delta.length;
          if (received > MAX_REPLY_CHARS) {
            truncated = true;
            break;
          }
          for (const s of sentences.push(delta)) {
            release(s);
            if (stopped) break;
          }
          if (stopped || signal.aborted) break;
        }
        if (toolCalls.length === 0 || stopped || signal.aborted || round >= MAX_TOOL_ROUNDS) break;
        // The calls and then one result per call, in order: OpenAI refuses a result whose call it was not shown.
        this.#remember({ role: 'assistant', content: '', toolCalls });
        for (const call of toolCalls) {
          const content = await this.#callTool(call, ctx);
          this.#remember({ role: 'tool', content, toolCallId: call.id });
        }
      }
      if (signal.aborted) throw signal.reason;
      if (!stopped) for (const s of sentences.flush()) release(s);
    } catch (err) {
      if (signal.aborted) {
        interrupted = true;
      } else {
        failed = true;
        // The message of a ProviderError is safe to log: no prompt text, no key.
        this.#log.warn(
          { provider: state.llm.kind, error: err instanceof Error ? err.message : 'unknown' },
          'LLM reply failed; fallback line said',
        );
        const egressRule = err instanceof ProviderError ? err.egressRule : undefined;
        this.#channel.send(
          egressRule !== undefined
            ? { type: 'event', name: 'turn_failed', reason: 'egress_refused', rule: egressRule }
            : { type: 'event', name: 'turn_failed', reason: 'provider_unavailable' },
        );
        speaking.push(this.#say(state.settings.fallbackLine, signal));
        released.push(state.settings.fallbackLine);
      }
    }
    // The reply is over when its audio is sent; a barge-in meanwhile interrupts it.
    for (const outcome of await Promise.allSettled(speaking)) {
      if (outcome.status === 'fulfilled') continue;
      if (signal.aborted) interrupted = true;
      else if (outcome.reason instanceof SlowClient) interrupted = true;
      else {
        this.#log.warn(
          { error: outcome.reason instanceof Error ? outcome.reason.message : 'unknown' },
          'TTS failed; the reply was sent as text only',
        );
        this.#channel.send({ type: 'event', name: 'tts_failed', reason: 'provider_unavailable' });
        break;
      }
    }
    this.#channel.send({ type: 'assistant_text', text: '', final: true, ...(interrupted ? { interrupted: true } : {}) });
    const said = released.join(' ');
    if (said !== '') {
      this.#remember({ role: 'assistant', content: said });
      this.#record('assistant', said);
    }
    if (truncated) {
      this.#log.warn({ provider: state.llm.kind, max_chars: MAX_REPLY_CHARS }, 'LLM reply cut at the size limit');
      this.#record('system', `reply cut at ${MAX_REPLY_CHARS} characters`);
    }
    if (interrupted) this.#record('system', 'reply interrupted by the user (barge-in)');
    if (failed) this.#record('system', `turn failed: ${state.llm.kind} provider unavailable; fallback line said`);
    // A turn no rule acted on counts as one allow: the chart compares rules' decisions with plain turns.
    if (this.#ruled === ruledBefore) this.#recorder.decision({ turn, rule: '', action: 'allow', on: 'user' });
    this.#saveGuardrails();
    if (endRule !== undefined) void this.end(`guardrail: ${endRule}`);
  }

  /**
   * #callTool makes one tool call the model asked for: the guardrail policy first (tool allowed,
   * calls per turn, arguments), then integrations, which checks the agent's grant and injects the
   * credential (none passes through here). The result, or why there is none, is what the model
   * sees next; the transcript records the call's tool and outcome, never its arguments or answer.
   */
  async #callTool(call: ToolCallRequest, ctx: GuardrailContext): Promise<string> {
    const state = this.#state;
    if (state === undefined) return JSON.stringify({ error: 'ended' });
    if (call.argumentsError !== undefined) {
      this.#record('system', `tool ${call.name}: refused, ${call.argumentsError}`);
      return JSON.stringify({ error: 'INVALID_ARGUMENT', message: call.argumentsError });
    }
    const blocked = state.guardrails.checkToolCall(call.name, call.arguments, ctx);
    if (blocked !== undefined) {
      this.#channel.send({
        type: 'event',
        name: 'guardrail',
        action: 'block_tool',
        on: 'tool',
        rule: blocked.rule,
        reason: blocked.reason,
      });
      this.#record('system', `guardrail block_tool on tool ${call.name}: ${blocked.rule} (${blocked.reason})`);
      this.#ruled++;
      this.#recorder.decision({ turn: this.#turns, rule: blocked.rule, action: 'block_tool', on: 'tool' });
      // The refusal is an access event of the connection too (integrations records it); the turn does not wait on it.
      this.#deps.peers
        .recordToolRefusal({
          tenantId: this.tenantId,
          conversationId: this.conversationId,
          agentId: this.agentId,
          tool: call.name.slice(0, 64),
          rule: blocked.rule,
        })
        .catch((err: unknown) =>
          this.#log.warn(
            { tool: call.name.slice(0, 64), error: err instanceof Error ? err.message : 'unknown' },
            'a refused tool call could not be audited',
          ),
        );
      return JSON.stringify({ error: 'blocked', message: blocked.reason });
    }
    const result = await this.#deps.peers.callTool({
      tenantId: this.tenantId,
      conversationId: this.conversationId,
      agentId: this.agentId,
      tool: call.name,
      arguments: JSON.parse(JSON.stringify(call.arguments)) as JsonObject,
    });
    this.#record('system', `tool ${call.name}: ${result.ok ? `answered ${result.status}` : 'failed'}`);
    return result.content;
  }

  /** #remember adds a message to the history the LLM sees: the system prompt and the last MAX_HISTORY messages, no more. */
  #remember(message: ChatMessage): void {
    this.#history.push(message);
    const system = this.#history[0]?.role === 'system' ? 1 : 0;
    const excess = this.#history.length - system - MAX_HISTORY;
    if (excess > 0) this.#history.splice(system, excess);
  }

  /** #context is the guardrail context of the moment (the end user's zone is not known to the session yet: the policy's fallback zone applies). */
  #context(): GuardrailContext {
    return { conversationId: this.conversationId, turn: this.#turns, now: new Date(), tenantId: this.tenantId };
  }

  /** #announce sends a non-allow decision as an event frame and records it as a system turn: rule, kind and reason, never the text it concerns. */
  #announce(decision: GuardrailDecision, on: 'start' | 'user' | 'assistant'): void {
    // The rule's kind ("no_go" of "no_go:medical") keeps the label's values few.
    recordGuardrailDecision(decision.rule?.split(':')[0] ?? 'unnamed', decision.action);
    // Stored for the decisions-by-rule chart: the rule and its action, never the text it concerned.
    this.#ruled++;
    this.#recorder.decision({ turn: this.#turns, rule: decision.rule ?? 'policy', action: decision.action, on });
    this.#channel.send({
      type: 'event',
      name: 'guardrail',
      action: decision.action,
      on,
      ...(decision.rule !== undefined ? { rule: decision.rule } : {}),
      ...(decision.reason !== undefined ? { reason: decision.reason } : {}),
    });
    if (decision.action === 'escalate' || decision.action === 'handoff')
      this.#channel.send({
        type: 'event',
        name: decision.action === 'handoff' ? 'handoff' : 'escalation',
        ...(decision.rule !== undefined ? { rule: decision.rule } : {}),
        ...(decision.target !== undefined ? { target: decision.target } : {}),
      });
    if (decision.action === 'handoff') this.#handoff ??= { rule: decision.rule, target: decision.target };
    if (decision.action === 'escalate' || decision.action === 'handoff')
      this.#deps.events.emit({ ...this.#eventIds(), type: 'guardrail.escalated', at: new Date() });
    this.#log.info({ guardrail_action: decision.action, guardrail_rule: decision.rule, on }, 'guardrail decision');
    // The operator sees the decision in the transcript as a system turn: the rule and its reason
    // (which describe the rule, never the text it concerned).
    this.#record(
      'system',
      `guardrail ${decision.action} on ${on}: ${decision.rule ?? 'policy'}${decision.reason === undefined ? '' : ` (${decision.reason})`}`,
    );
  }

  /**
   * begin runs the policy's checks on the start (sleep windows, holidays, fatigue), once the
   * client has its ready frame: a rule that refuses the start says its message, sends the event
   * and ends the conversation politely, recorded with the rule.
   */
  begin(): void {
    const state = this.#state;
    if (state === undefined || this.#ending !== undefined) return;
    const voice = state.voice;
    if (voice?.stt !== undefined) this.#listening = this.#listen(voice.stt, voice.format.sampleRate);
    this.#announceRecording(state);
    const decision = state.guardrails.checkStart('inbound', this.#context());
    this.#saveGuardrails();
    if (decision.action === 'allow') return;
    this.#announce(decision, 'start');
    const stop = () => {
      if (decision.stopsReply) void this.end(`guardrail: ${decision.rule ?? decision.action}`);
    };
    if (decision.say === undefined) return stop();
    const said = decision.say;
    this.#record('assistant', said);
    // The rule's message is heard in full before a stopping rule ends the conversation.
    void this.#say(said, this.#life.signal)
      .catch(() => undefined)
      .then(() => {
        this.#channel.send({ type: 'assistant_text', text: '', final: true });
        stop();
      });
  }

  /** #saveGuardrails queues the checker's state for tenant-data after the transcript turns before it (off the reply path). */
  #saveGuardrails(): void {
    const state = this.#state;
    if (state === undefined) return;
    this.#recorder.guardrailState(state.subjectId, state.guardrails.state);
  }

  #eventIds() {
    return { tenantId: this.tenantId, conversationId: this.conversationId, agentId: this.agentId };
  }

  /** #record queues a turn for tenant-data, redacted by the policy (and sealed by the recorder when there is a subject). */
  #record(role: 'user' | 'assistant' | 'system', text: string): void {
    const state = this.#state;
    if (state === undefined) return;
    this.#recorder.turn(role, state.guardrails.redactForTranscript(text), state.subjectId);
  }

  #resetIdle(): void {
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = setTimeout(() => void this.end('idle timeout'), this.#deps.config.idleTimeoutMs);
  }

  /** #armLiveCheck schedules the next live check one interval from now (replacing the one scheduled). */
  #armLiveCheck(): void {
    if (this.#liveCheck !== undefined) clearTimeout(this.#liveCheck);
    if (this.#ending !== undefined) return;
    this.#liveCheck = setTimeout(() => void this.#checkStillLive(), this.#deps.config.liveCheckIntervalMs);
  }

  async #checkStillLive(): Promise<void> {
    if (this.#ending !== undefined) return;
    try {
      const state = await this.#deps.peers.conversationState(this.tenantId, this.conversationId);
      if (state === 'ended') return await this.end('ended by an operator', { recorded: true, letReplyFinishMs: 0 });
    } catch {
      // tenant-data briefly away: check again at the next interval.
    }
    this.#armLiveCheck();
  }

  /**
   * end finishes the conversation once: the reply in progress is cancelled (or, draining, allowed
   * to finish for a moment), queued turns are stored, the provider keys are released, the end is
   * recorded, conversation.ended is emitted and the client gets an end frame and a close.
   */
  end(reason: string, options: EndOptions = {}): Promise<void> {
    this.#ending ??= this.#finish(reason, options);
    return this.#ending;
  }

  async #finish(reason: string, options: EndOptions): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    if (this.#liveCheck !== undefined) clearTimeout(this.#liveCheck);
    const waitMs = options.letReplyFinishMs ?? 0;
    if (waitMs > 0) await Promise.race([this.#replyDone, new Promise((r) => setTimeout(r, waitMs).unref())]);
    this.#reply?.abort(new Error(reason));
    this.#life.abort(new Error(reason));
    this.#windowClosed();
    this.#inbox?.close();
    await this.#replyDone;
    await this.#listening;
    const handoff = this.#handoff;
    if (handoff !== undefined && this.#channel.handOff !== undefined && this.#state !== undefined) {
      // The rule's message has been sent; the channel waits until it is heard, then transfers the call.
      const outcome = await this.#channel.handOff({
        tenantId: this.tenantId,
        agentId: this.agentId,
        conversationId: this.conversationId,
        rule: handoff.rule,
        target: handoff.target,
        telephony: this.#state.settings.telephony,
      });
      this.#record('system', outcome);
    }
    let closed = false;
    if (this.#recording !== undefined) {
      // The call is over for the caller: hang up first, then write the last chunk, complete the
      // object and store its reference, so nobody listens to silence while the blob store works.
      this.#closeChannel(reason, options);
      closed = true;
      await this.#storeRecording();
    }
    await this.#recorder.drained();
    const state = this.#state;
    state?.keys.release();
    // Drop every reference to the keys and the provider that reads them.
    this.#state = undefined;
    this.#history = [];
    if (options.recorded !== true) {
      try {
        await this.#deps.peers.endConversation(this.tenantId, this.conversationId, reason);
      } catch (err) {
        this.#log.error({ err: err instanceof Error ? err.message : 'unknown' }, 'could not record the conversation as ended');
      }
    }
    this.#deps.events.emit({
      type: 'conversation.ended',
      tenantId: this.tenantId,
      conversationId: this.conversationId,
      agentId: this.agentId,
      at: new Date(),
      reason,
      turns: this.#turns,
    });
    // The transcript queue was drained above: every turn is stored.
    if (this.#turns > 0) this.#deps.events.emit({ ...this.#eventIds(), type: 'transcript.ready', at: new Date() });
    if (!closed) this.#closeChannel(reason, options);
    this.#deps.onEnded?.(this);
  }

  /** #closeChannel sends the client the end frame and closes its connection. */
  #closeChannel(reason: string, options: EndOptions): void {
    this.#channel.send({ type: 'end', reason });
    this.#channel.close(options.closeCode ?? CLOSE_CODES.normal, options.closeReason ?? reason);
  }
}
