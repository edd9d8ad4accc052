import { blobStoreConfigFromEnv, type BlobStoreConfig } from '@parley/blob-store';
import { egressPolicyFromEnv, type EgressPolicy } from '@parley/egress';
import { envInt, envOptional, envPort, envString, envUrl, parseTrustedProxies, type Env, type TrustedProxies } from '@parley/platform';

/** OrchestratorConfig is the voice-orchestrator's own configuration (the kernel reads the rest). */
export interface OrchestratorConfig {
  /** sessionHost / sessionPort: the public TLS port browsers and devices open WebSockets on. */
  readonly sessionHost: string;
  readonly sessionPort: number;
  /** sessionTls overrides the session port's certificate; default: the service's own (dev) certificate. */
  readonly sessionTls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** startTimeoutMs: a connection that has not sent its start frame by then is closed. */
  readonly startTimeoutMs: number;
  /** idleTimeoutMs: a conversation with no user message for this long is ended. */
  readonly idleTimeoutMs: number;
  /** maxDurationMs: no conversation lives longer (the policy's fatigue limit may be shorter). */
  readonly maxDurationMs: number;
  /** maxMessageBytes: a larger frame closes the connection (1009). */
  readonly maxMessageBytes: number;
  /** messagesPerSecond / messageBurst: the per-connection token bucket for client frames. */
  readonly messagesPerSecond: number;
  readonly messageBurst: number;
  /** liveCheckIntervalMs: how often a live conversation checks tenant-data for an end made elsewhere. */
  readonly liveCheckIntervalMs: number;
  /** providerTimeoutMs: the default deadline until an LLM provider's first token. */
  readonly providerTimeoutMs: number;
  /** egressPolicy is the port list and private allow-list every provider base URL is checked against (PARLEY_EGRESS_*). */
  readonly egressPolicy: EgressPolicy;
  /** audioFrameMs: the duration of one binary audio frame the server sends. */
  readonly audioFrameMs: number;
  /** playbackLeadMs: how far ahead of real time agent audio is sent (bounds what a barge-in must silence). */
  readonly playbackLeadMs: number;
  /** maxAudioBufferedBytes / slowClientMs: a client holding more unsent data than this for that long is disconnected. */
  readonly maxAudioBufferedBytes: number;
  readonly slowClientMs: number;
  /** embeddedTtsWorkers: worker threads of the embedded synthesiser (0: none; voice agents then need another TTS). */
  readonly embeddedTtsWorkers: number;
  /** embeddedTtsMaxWaiting: sentences that may wait for a free embedded TTS worker before one fails fast (tts_failed). */
  readonly embeddedTtsMaxWaiting: number;
  /** blobStore is where recorded calls' encrypted audio is put (PARLEY_BLOB_STORE and friends; `none`: calls are not recorded). */
  readonly blobStore: BlobStoreConfig;
  /** recordingMaxBytes bounds one call recording's audio; past it the rest of the call is not recorded. */
  readonly recordingMaxBytes: number;
  /** recordingBufferBytes bounds the memory all call recordings of the replica hold at once; past it a recording stops (over_budget). */
  readonly recordingBufferBytes: number;
  /**
   * recordingShutdownWaitMs is how long, from SIGTERM, the replica waits for recordings still
   * being written (the last chunk, the object's completion, the reference) before giving them up
   * as failed (PARLEY_RECORDING_SHUTDOWN_WAIT_MS); undefined: the drain delay plus the shutdown
   * grace less 5 s, so it runs out before the kill that follows.
   */
  readonly recordingShutdownWaitMs: number | undefined;
  /** publicUrl is the session port's public https URL (PARLEY_SESSION_PUBLIC_URL): Twilio signs its call webhook over it and streams to it. */
  readonly publicUrl: string;
  /** trustedProxies are the proxies in front of the session port whose X-Forwarded-For names the client (rate limits key on it). */
  readonly trustedProxies: TrustedProxies;
  /** callWebhook: the Twilio call webhook's per-source-address bucket, auth token cache and replay window. */
  readonly callWebhook: {
    readonly perSecond: number;
    readonly burst: number;
    readonly authTokenCacheMs: number;
    readonly callSidTtlMs: number;
  };
}

function publicUrlOf(env: Env): string {
  const url = envUrl(env, 'PARLEY_SESSION_PUBLIC_URL', ['https:', 'wss:']);
  if (url === undefined) return `https://localhost:${envPort(env, 'PARLEY_PUBLIC_PORT', 9444)}`;
  return url.replace(/^wss:/, 'https:');
}

/** loadOrchestratorConfig reads the orchestrator's variables (main.ts passes none: this process's). */
export function loadOrchestratorConfig(env: Env = process.env): OrchestratorConfig {
  const certFile = envOptional(env, 'PARLEY_PUBLIC_TLS_CERT');
  const keyFile = envOptional(env, 'PARLEY_PUBLIC_TLS_KEY');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    envString(env, certFile === undefined ? 'PARLEY_PUBLIC_TLS_CERT' : 'PARLEY_PUBLIC_TLS_KEY');
  }
  return Object.freeze({
    sessionHost: envString(env, 'PARLEY_PUBLIC_HOST', envString(env, 'PARLEY_HOST', '127.0.0.1')),
    sessionPort: envPort(env, 'PARLEY_PUBLIC_PORT', 9444),
    sessionTls: certFile !== undefined && keyFile !== undefined ? Object.freeze({ certFile, keyFile }) : undefined,
    startTimeoutMs: envInt(env, 'PARLEY_SESSION_START_TIMEOUT_MS', 5_000, 100, 60_000),
    idleTimeoutMs: envInt(env, 'PARLEY_SESSION_IDLE_TIMEOUT_MS', 300_000, 1_000, 86_400_000),
    maxDurationMs: envInt(env, 'PARLEY_SESSION_MAX_DURATION_MS', 3_600_000, 1_000, 86_400_000),
    maxMessageBytes: envInt(env, 'PARLEY_SESSION_MAX_MESSAGE_BYTES', 16_384, 1_024, 1_048_576),
    messagesPerSecond: envInt(env, 'PARLEY_SESSION_MESSAGES_PER_SECOND', 10, 1, 1_000),
    messageBurst: envInt(env, 'PARLEY_SESSION_MESSAGE_BURST', 20, 1, 10_000),
    trustedProxies: parseTrustedProxies(envString(env, 'PARLEY_SESSION_TRUSTED_PROXIES', ''), 'PARLEY_SESSION_TRUSTED_PROXIES'),
    callWebhook: Object.freeze({
      perSecond: envInt(env, 'PARLEY_CALL_WEBHOOK_PER_SECOND', 5, 1, 10_000),
      burst: envInt(env, 'PARLEY_CALL_WEBHOOK_BURST', 20, 1, 100_000),
      authTokenCacheMs: envInt(env, 'PARLEY_CALL_WEBHOOK_TOKEN_CACHE_MS', 30_000, 0, 600_000),
      callSidTtlMs: envInt(env, 'PARLEY_CALL_WEBHOOK_CALL_SID_TTL_MS', 86_400_000, 60_000, 604_800_000),
    }),
    liveCheckIntervalMs: envInt(env, 'PARLEY_SESSION_LIVE_CHECK_INTERVAL_MS', 5_000, 100, 600_000),
    providerTimeoutMs: envInt(env, 'PARLEY_PROVIDER_TIMEOUT_MS', 20_000, 100, 600_000),
    egressPolicy: egressPolicyFromEnv(env),
    audioFrameMs: envInt(env, 'PARLEY_VOICE_FRAME_MS', 40, 10, 200),
    playbackLeadMs: envInt(env, 'PARLEY_VOICE_PLAYBACK_LEAD_MS', 100, 0, 60_000),
    maxAudioBufferedBytes: envInt(env, 'PARLEY_VOICE_MAX_BUFFERED_BYTES', 262_144, 16_384, 16_777_216),
    slowClientMs: envInt(env, 'PARLEY_VOICE_SLOW_CLIENT_MS', 2_000, 100, 60_000),
    embeddedTtsWorkers: envInt(env, 'PARLEY_TTS_EMBEDDED_WORKERS', 1, 0, 16),
    embeddedTtsMaxWaiting: envInt(env, 'PARLEY_TTS_EMBEDDED_MAX_WAITING', 32, 1, 10_000),
    publicUrl: publicUrlOf(env),
    blobStore: blobStoreConfigFromEnv(env),
    recordingMaxBytes: envInt(env, 'PARLEY_RECORDING_MAX_BYTES', 67_108_864, 1_048_576, 1_073_741_824),
    recordingBufferBytes: envInt(env, 'PARLEY_RECORDING_BUFFER_BYTES', 134_217_728, 1_048_576, 4_294_967_296),
    recordingShutdownWaitMs:
      envOptional(env, 'PARLEY_RECORDING_SHUTDOWN_WAIT_MS') === undefined
        ? undefined
        : envInt(env, 'PARLEY_RECORDING_SHUTDOWN_WAIT_MS', 0, 0, 600_000),
  });
}
