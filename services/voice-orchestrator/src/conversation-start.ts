import { providerSettingsSchema, type ProviderSettings } from '@parley/conversation';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { readGuardrailPolicy } from '@parley/guardrails';
import { decodeJwt } from 'jose';
import type { AudioFormat } from './audio.js';
import { LiveConversation, type ClientChannel, type ConversationDeps, type VoiceState } from './conversation.js';
import { ConversationKeys } from './conversation-keys.js';
import { createGuardrailStage, type GuardrailStage } from './guardrail-stage.js';
import { openAiCompatibleProvider } from './openai-provider.js';
import { deepgramStreaming } from './deepgram-stt.js';
import { openAiSpeech, openAiTranscription } from './openai-speech.js';
import type { SessionGrant } from './peers.js';
import type { LlmProvider, ToolDeclaration } from './providers.js';
import { scriptedProvider } from './scripted-provider.js';
import { CLOSE_CODES, SessionRefusal } from './session-refusal.js';

/** StartRequest is what a client's start frame and its connection say. */
export interface StartRequest {
  readonly token: string;
  /** origin is the connection's Origin header ('' when the client sent none). */
  readonly origin: string;
  /** agentId, when the client names one, must be the token's agent. */
  readonly agentId?: string;
  /** audio is the format the client declared for its audio; absent on a text-only connection. */
  readonly audio?: AudioFormat;
  /**
   * callSid is the CallSid a Twilio Media Streams `start` names (absent on the browser's port): it
   * must be the call identity minted the token for, or the stream is refused.
   */
  readonly callSid?: string;
}

const tracer = trace.getTracer('@parley/voice-orchestrator');

/**
 * secretsNeeded names the secrets the agent's providers use on this connection (none for the
 * scripted LLM and the embedded TTS; the speech providers' only when the client declared audio).
 */
function secretsNeeded(settings: ProviderSettings, refs: Readonly<Record<string, string>>, voice: boolean): string[] {
  const wanted: { purpose: string; what: string }[] = [];
  if (settings.llm.provider !== 'scripted') wanted.push({ purpose: settings.llm.secretPurpose, what: 'LLM' });
  if (voice && settings.stt !== undefined) wanted.push({ purpose: settings.stt.secretPurpose, what: 'STT' });
  if (voice && settings.tts?.provider === 'openai-compatible') wanted.push({ purpose: settings.tts.secretPurpose, what: 'TTS' });
  const ids = new Set<string>();
  for (const { purpose, what } of wanted) {
    const id = refs[purpose];
    if (id === undefined)
      throw new SessionRefusal(
        CLOSE_CODES.internal,
        `the agent has no "${purpose}" secret for its ${what} provider; fix the agent's secret_refs`,
      );
    ids.add(id);
  }
  return [...ids];
}

/** buildVoice makes a voice connection's speech providers from the agent's settings (embedded TTS when it names none). */
function buildVoice(settings: ProviderSettings, format: AudioFormat, keys: ConversationKeys, deps: ConversationDeps): VoiceState {
  const keyFor = (purpose: string, what: string) => {
    if (!keys.has(purpose))
      throw new SessionRefusal(
        CLOSE_CODES.internal,
        `the agent has no "${purpose}" secret for its ${what} provider; fix the agent's secret_refs`,
      );
    return () => keys.reveal(purpose);
  };
  const common = { fetch: deps.providerFetch, defaultTimeoutMs: deps.config.providerTimeoutMs };
  const sttSettings = settings.stt;
  const stt =
    sttSettings === undefined
      ? undefined
      : sttSettings.provider === 'deepgram'
        ? deepgramStreaming(sttSettings, {
            apiKey: keyFor(sttSettings.secretPurpose, 'STT'),
            egressPolicy: deps.config.egressPolicy,
            connectTimeoutMs: deps.config.providerTimeoutMs,
          })
        : openAiTranscription(sttSettings, { ...common, apiKey: keyFor(sttSettings.secretPurpose, 'STT') });
  const ttsSettings = settings.tts ?? { provider: 'embedded' as const, voice: 'en-us' };
  let tts;
  if (ttsSettings.provider === 'openai-compatible')
    tts = openAiSpeech(ttsSettings, { ...common, apiKey: keyFor(ttsSettings.secretPurpose, 'TTS') });
  else {
    if (deps.embeddedTts === undefined)
      throw new SessionRefusal(
        CLOSE_CODES.internal,
        'this deployment runs no embedded TTS (PARLEY_TTS_EMBEDDED_WORKERS=0); give the agent a TTS provider in its provider settings',
      );
    tts = deps.embeddedTts.provider(ttsSettings.voice);
  }
  return { format, stt, tts };
}

/**
 * toolsToDeclare has integrations describe the agent's granted tools (names from its guardrail
 * policy) when its model is one that is told about tools. A failure leaves the model without
 * tools, logged: the conversation still talks, and every call is checked anyway.
 */
async function toolsToDeclare(
  deps: ConversationDeps,
  settings: ProviderSettings,
  grant: SessionGrant,
  policy: unknown,
): Promise<ToolDeclaration[]> {
  if (settings.llm.provider !== 'openai-compatible') return [];
  let names: string[];
  try {
    names = readGuardrailPolicy(policy).policy.tools.allowed.map((t) => t.name);
  } catch {
    return [];
  }
  if (names.length === 0) return [];
  try {
    return await deps.peers.describeTools(grant.tenantId, names);
  } catch (err) {
    deps.logger.warn(
      { tenant_id: grant.tenantId, agent_id: grant.agentId, error: err instanceof Error ? err.message : 'unknown' },
      "the agent's tools could not be described; its model is offered none in this conversation",
    );
    return [];
  }
}

function buildLlm(
  settings: ProviderSettings,
  keys: ConversationKeys,
  deps: ConversationDeps,
  tools: readonly ToolDeclaration[],
): LlmProvider {
  const llm = settings.llm;
  if (llm.provider === 'scripted') return scriptedProvider(llm);
  if (!keys.has(llm.secretPurpose))
    throw new SessionRefusal(
      CLOSE_CODES.internal,
      `the agent has no "${llm.secretPurpose}" secret for its LLM provider; fix the agent's secret_refs`,
    );
  return openAiCompatibleProvider(llm, {
    apiKey: () => keys.reveal(llm.secretPurpose),
    fetch: deps.providerFetch,
    defaultTimeoutMs: deps.config.providerTimeoutMs,
    tools,
  });
}

/** unverifiedTarget reads tenant and agent from a token's payload without trusting them (decodeJwt verifies nothing). */
function unverifiedTarget(token: string): { tenant: string; agent: string } | undefined {
  try {
    const claims = decodeJwt(token);
    return typeof claims.tenant === 'string' && typeof claims.agent === 'string'
      ? { tenant: claims.tenant, agent: claims.agent }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * startConversation runs the start of a conversation: the token is verified and spent at
 * identity, the agent loaded, the conversation recorded live, and the agent's provider keys
 * resolved for it. Any refusal is a SessionRefusal; if something fails after the row was written,
 * the row is ended with the reason, so no conversation is left live without a connection.
 */
export function startConversation(deps: ConversationDeps, req: StartRequest, channel: ClientChannel): Promise<LiveConversation> {
  // One trace per start: the kernel's client interceptor hangs every peer call under this span.
  return tracer.startActiveSpan('conversation.start', async (span) => {
    try {
      const conversation = await runStart(deps, req, channel);
      span.setAttributes({ 'parley.tenant_id': conversation.tenantId, 'parley.conversation_id': conversation.conversationId });
      return conversation;
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof SessionRefusal ? err.message : 'start failed' });
      throw err;
    } finally {
      span.end();
    }
  });
}

async function runStart(deps: ConversationDeps, req: StartRequest, channel: ClientChannel): Promise<LiveConversation> {
  const { peers } = deps;
  // The agent is loaded while identity checks the token, from the token's unverified claims: a
  // read only, used only if the verified claims name the same tenant and agent. It saves a hop
  // on the hot path (see bench/README.md, conversation).
  const hint = unverifiedTarget(req.token);
  const early = hint === undefined ? undefined : peers.getAgent(hint.tenant, hint.agent);
  early?.catch(() => undefined);
  const grant = await peers.consumeSession(req.token, req.origin);
  // identity checked the origin already; checked here too because the session port is where it matters.
  if (grant.origin !== '' && grant.origin !== req.origin)
    throw new SessionRefusal(CLOSE_CODES.forbidden, 'origin not allowed for this token');
  if (req.agentId !== undefined && req.agentId !== grant.agentId)
    throw new SessionRefusal(CLOSE_CODES.forbidden, 'agent not allowed for this token');
  // A call's token is good for that call's stream only: a stream naming another CallSid (whose
  // hand-off would transfer someone else's call) is refused. A token identity recorded no call for
  // (a browser's, or one from an identity of the previous release) starts, but transfers nothing.
  if (req.callSid !== undefined && grant.callSid !== '' && req.callSid !== grant.callSid)
    throw new SessionRefusal(CLOSE_CODES.forbidden, 'call not allowed for this token: the stream names another CallSid');
  const agent =
    early !== undefined && hint?.tenant === grant.tenantId && hint.agent === grant.agentId
      ? await early
      : await peers.getAgent(grant.tenantId, grant.agentId);
  const parsed = providerSettingsSchema.safeParse(agent.providerSettings);
  if (!parsed.success)
    throw new SessionRefusal(CLOSE_CODES.internal, "the agent's provider settings are invalid; the workspace must fix the agent");
  const settings = parsed.data;
  // Least privilege: only the keys of the providers this agent uses are decrypted, and a missing
  // one is refused before anything is written.
  const wanted = secretsNeeded(settings, agent.secretRefs, req.audio !== undefined);
  // An outbound call's session names its person (identity recorded it from PlaceCall's signed
  // webhook URL); a browser's names the customer's reference, found or recorded here.
  const subjectId =
    grant.subjectId !== ''
      ? grant.subjectId
      : grant.subjectRef !== ''
        ? await peers.subjectFor(grant.tenantId, grant.subjectRef)
        : undefined;
  // The checker's state that spans conversations (per person) or connections (per conversation;
  // the conversation id is the session id) is in tenant-data; read before anything is written.
  const stored = await peers.guardrailState(grant.tenantId, grant.sessionId, subjectId);
  let guardrails: GuardrailStage;
  try {
    guardrails = (deps.createGuardrails ?? createGuardrailStage)(agent.guardrailPolicy, stored);
  } catch {
    // tenant-data refuses a policy that does not compile on write; one stored before a rule existed ends here.
    throw new SessionRefusal(CLOSE_CODES.internal, "the agent's guardrail policy does not compile; the workspace must fix the agent");
  }
  // Asked while the conversation is recorded, so it adds no wait to the start (it never rejects).
  const declaring = toolsToDeclare(deps, settings, grant, agent.guardrailPolicy);
  const { conversationId } = await peers.startConversation(grant, subjectId);
  let keys: ConversationKeys | undefined;
  try {
    keys =
      wanted.length > 0
        ? ConversationKeys.fromResolved(await peers.resolveKeys(grant.tenantId, conversationId, grant.agentId, wanted))
        : new ConversationKeys();
    const llm = buildLlm(settings, keys, deps, await declaring);
    const voice = req.audio === undefined ? undefined : buildVoice(settings, req.audio, keys, deps);
    // The policy's fatigue limit may be shorter than the deployment's maximum duration.
    const maxDurationMs = Math.min(deps.config.maxDurationMs, guardrails.maxDurationMs);
    return new LiveConversation(
      deps,
      {
        grant,
        conversationId,
        subjectId,
        prompt: agent.prompt,
        settings,
        keys,
        llm,
        guardrails,
        maxDurationMs,
        ...(voice !== undefined ? { voice } : {}),
      },
      channel,
    );
  } catch (err) {
    keys?.release();
    const reason = err instanceof SessionRefusal ? `start failed: ${err.message}` : 'start failed: internal error';
    await peers.endConversation(grant.tenantId, conversationId, reason).catch((endErr: unknown) => {
      deps.logger.error({ err: endErr, conversation_id: conversationId }, 'could not record a failed start as ended');
    });
    throw err;
  }
}
