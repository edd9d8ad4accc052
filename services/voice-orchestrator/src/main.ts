// The voice-orchestrator service process: wiring only. It serves the session port (WebSocket,
// TLS) where browsers and devices hold conversations, and parley.orchestrator.v1 on its mTLS
// port; it calls identity (session tokens), tenant-data (agents, conversations, transcripts) and
// secrets (provider keys, subject keys), integrations when configured (conversation events
// as webhooks), and audit when configured (calls handed off to a human). On SIGTERM it stops taking conversations and ends the
// live ones politely within the shutdown grace period.
import { AddressBuckets, TtlCache } from './call-webhook-guard.js';
import { CertificateSource, PARLEY_VERSION, primeRecordingMetrics, primeTurnRecordMetrics, runMain } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { openBlobStore } from '@parley/blob-store';
import { RecordingBudget } from './recording-budget.js';
import { createCallHandOff } from './call-handoff.js';
import { loadOrchestratorConfig } from './config.js';
import { startConversation } from './conversation-start.js';
import { loggingEventSink } from './conversation-events.js';
import { LiveConversations } from './live-conversations.js';
import { createOrchestratorService } from './orchestrator-service.js';
import { createPeers } from './peers.js';
import { callerPolicies } from './policy.js';
import { createProviderFetch } from './provider-fetch.js';
import { ReplyWindows } from './reply-windows.js';
import { createSessionServer } from './session-server.js';
import { assertEmbeddedTtsInstalled, EmbeddedTts } from './embedded-tts.js';
import { integrationsEventSink } from './webhook-event-sink.js';

runMain({
  name: 'voice-orchestrator',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  async setup(ctx) {
    const config = loadOrchestratorConfig();
    const peers = createPeers({
      identity: ctx.clientFor('identity', IdentityService),
      tenantData: ctx.clientFor('tenant-data', TenantDataService),
      secrets: ctx.clientFor('secrets', SecretsService),
      // Tool calls go through integrations, which holds the grants' check and the credentials.
      ...(ctx.config.peers.integrations === undefined ? {} : { integrations: ctx.clientFor('integrations', IntegrationsService) }),
      // Calls it transfers or places are audited here (it keeps no database, so no outbox).
      ...(ctx.config.peers.audit === undefined ? {} : { audit: ctx.clientFor('audit', AuditService) }),
    });
    if (ctx.config.peers.audit === undefined) ctx.logger.warn('PARLEY_AUDIT_URL is not set: call hand-offs are logged, not audited');
    const live = new LiveConversations();
    // Conversation events become webhooks when integrations is configured (PARLEY_INTEGRATIONS_URL); else they are logged.
    const webhooks =
      ctx.config.peers.integrations === undefined
        ? undefined
        : integrationsEventSink(ctx.clientFor('integrations', IntegrationsService), ctx.logger);
    if (webhooks === undefined) ctx.logger.warn('PARLEY_INTEGRATIONS_URL is not set: conversation events are logged, not sent as webhooks');
    // The offline synthesiser is loaded before the port opens, so the first sentence is not slow.
    if (config.embeddedTtsWorkers > 0) assertEmbeddedTtsInstalled();
    const embeddedTts =
      config.embeddedTtsWorkers > 0 ? new EmbeddedTts(config.embeddedTtsWorkers, { maxWaiting: config.embeddedTtsMaxWaiting }) : undefined;
    await embeddedTts?.ready();
    primeTurnRecordMetrics();
    const blobs = openBlobStore(config.blobStore);
    if (blobs !== undefined) primeRecordingMetrics();
    if (blobs === undefined) ctx.logger.warn('PARLEY_BLOB_STORE is none: agents that ask for call recording are not recorded');
    // Aborted when the wait for recordings still being written at shutdown runs out: they are
    // given up and counted as failed, rather than cut by the kill after the grace period uncounted.
    const recordingShutdown = new AbortController();
    // Aborted as the replica starts stopping: turn records still failing are not retried past the grace period.
    const stopping = new AbortController();
    const deps = {
      peers,
      stopping: stopping.signal,
      ...(blobs !== undefined
        ? { blobs, recordingBudget: new RecordingBudget(config.recordingBufferBytes), recordingShutdown: recordingShutdown.signal }
        : {}),
      ...(embeddedTts !== undefined ? { embeddedTts } : {}),
      logger: ctx.logger,
      events: webhooks ?? loggingEventSink(ctx.logger),
      providerFetch: createProviderFetch(config.egressPolicy),
      config,
      onEnded: (c: Parameters<LiveConversations['remove']>[0]) => live.remove(c),
      replyWindows: new ReplyWindows(),
    };
    const source =
      config.sessionTls === undefined
        ? ctx.certificates
        : await CertificateSource.open(
            { certFile: config.sessionTls.certFile, keyFile: config.sessionTls.keyFile, caFile: ctx.config.tls.caFile },
            { pollIntervalMs: ctx.config.certReloadIntervalMs, logger: ctx.logger },
          );
    const sessions = createSessionServer({
      cert: source.current.cert,
      key: source.current.key,
      logger: ctx.logger,
      startTimeoutMs: config.startTimeoutMs,
      maxMessageBytes: config.maxMessageBytes,
      messagesPerSecond: config.messagesPerSecond,
      messageBurst: config.messageBurst,
      twilioCall: {
        publicUrl: config.publicUrl,
        authToken: (tenantId, agentId) => peers.telephonyAuthToken(tenantId, agentId),
        mintCallToken: (tenantId, agentId, callSid, subjectId) => peers.mintCallSession(tenantId, agentId, callSid, subjectId),
        trustedProxies: config.trustedProxies,
        sources: new AddressBuckets(config.callWebhook.perSecond, config.callWebhook.burst),
        authTokens: new TtlCache<string | null>(config.callWebhook.authTokenCacheMs),
        answeredCalls: new TtlCache<true>(config.callWebhook.callSidTtlMs, 200_000),
      },
      handOffCall: createCallHandOff({ peers, fetch: deps.providerFetch, logger: ctx.logger }),
      async start(req, channel) {
        const conversation = await startConversation(deps, req, channel);
        live.add(conversation);
        return conversation;
      },
    });
    const stopWatching = source.onChange((m) => sessions.setCertificate(m.cert, m.key));
    const port = await sessions.listen(config.sessionPort, config.sessionHost);
    ctx.logger.info({ session_port: port }, 'session port serving');
    ctx.onStopping(async () => {
      stopping.abort();
      sessions.stopAccepting();
      const recordingWaitMs =
        config.recordingShutdownWaitMs ?? Math.max(1_000, ctx.config.drainDelayMs + ctx.config.shutdownGraceMs - 5_000);
      const giveUpRecordings = setTimeout(() => {
        ctx.logger.warn({ wait_ms: recordingWaitMs }, 'shutdown: recordings still being written are given up (counted as failed)');
        recordingShutdown.abort();
      }, recordingWaitMs);
      ctx.logger.info({ live: live.size }, 'ending live conversations');
      await live.drain(ctx.config.shutdownGraceMs).finally(() => clearTimeout(giveUpRecordings));
      // The ended conversations' last events are on their way to integrations.
      await webhooks?.drain(2_000);
    });
    ctx.onClose(async () => {
      stopWatching();
      await sessions.close();
      await embeddedTts?.close();
      if (source !== ctx.certificates) source.close();
    });
    return {
      routes: (router) =>
        router.service(
          OrchestratorService,
          createOrchestratorService({
            live,
            peers,
            fetch: deps.providerFetch,
            publicUrl: config.publicUrl,
            audited: ctx.config.peers.audit !== undefined,
            logger: ctx.logger,
          }),
        ),
    };
  },
});
