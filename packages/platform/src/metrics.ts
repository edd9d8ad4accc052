// Parley's own metrics, beside the RPC metrics of telemetry.ts and the pool metrics of @parley/db.
// Every label has a small fixed set of values: a tenant id is never a label, except on the
// explicit top-N gauges, whose series count is bounded by N.
import { metrics, type Attributes, type Meter, type MeterProvider, type ObservableResult } from '@opentelemetry/api';

// Each provider's instruments, made once per provider.
const instrumentsOf = new WeakMap<MeterProvider, Map<string, unknown>>();

/**
 * instrument returns the instrument `name` made by `make` on `provider` (the current global meter
 * provider when none is given: a meter taken before startTelemetry would stay a no-op forever),
 * once per provider.
 */
function instrument<T>(name: string, make: (meter: Meter) => T, provider: MeterProvider = metrics.getMeterProvider()): T {
  let instruments = instrumentsOf.get(provider);
  if (instruments === undefined) {
    instruments = new Map();
    instrumentsOf.set(provider, instruments);
  }
  let found = instruments.get(name) as T | undefined;
  if (found === undefined) {
    found = make(provider.getMeter('@parley/platform'));
    instruments.set(name, found);
  }
  return found;
}

/** CacheName names the in-process caches whose hit ratio is reported. */
export type CacheName = 'api_key' | 'jwks' | 'data_key' | 'session_jwks';

/** recordCacheLookup counts one cache lookup as a hit or a miss (parley.cache.lookups). */
export function recordCacheLookup(cache: CacheName, hit: boolean): void {
  instrument('parley.cache.lookups', (m) =>
    m.createCounter('parley.cache.lookups', { description: 'In-process cache lookups, by cache and result (hit, miss).' }),
  ).add(1, { 'parley.cache': cache, 'parley.cache.result': hit ? 'hit' : 'miss' });
}

/** changeCacheEntries moves the gauge of entries held by an in-process cache (+1 when stored, -1 when wiped or evicted). */
export function changeCacheEntries(cache: CacheName, delta: number): void {
  instrument('parley.cache.entries', (m) =>
    m.createUpDownCounter('parley.cache.entries', { description: 'Entries held by an in-process cache, by cache.', unit: '{entry}' }),
  ).add(delta, { 'parley.cache': cache });
}

/** recordKekCall counts one call to the KEK provider (Vault transit or the local keyring) and whether it failed. */
export function recordKekCall(operation: string, provider: string, ok: boolean): void {
  instrument('parley.kek.calls', (m) =>
    m.createCounter('parley.kek.calls', { description: 'Calls to the KEK provider, by operation and result (ok, error).' }),
  ).add(1, { 'parley.kek.operation': operation, 'parley.kek.provider': provider, 'parley.kek.result': ok ? 'ok' : 'error' });
}

/** recordThrottleBlock counts one request refused by a throttle (failed API key attempts from one source). */
export function recordThrottleBlock(throttle: string): void {
  instrument('parley.throttle.blocks', (m) =>
    m.createCounter('parley.throttle.blocks', { description: 'Requests refused by a throttle, by throttle.' }),
  ).add(1, { 'parley.throttle': throttle });
}

/** changeLiveConversations moves the gauge of conversations connected to this process (+1 on connect, -1 on close). */
export function changeLiveConversations(delta: number): void {
  instrument('parley.conversations.live', (m) =>
    m.createUpDownCounter('parley.conversations.live', { description: 'Live conversations on this process.', unit: '{conversation}' }),
  ).add(delta);
}

/** recordGuardrailDecision counts one guardrail decision by the rule kind that made it and the action taken. */
export function recordGuardrailDecision(ruleKind: string, action: string): void {
  instrument('parley.guardrail.decisions', (m) =>
    m.createCounter('parley.guardrail.decisions', { description: 'Guardrail decisions, by rule kind and action.' }),
  ).add(1, { 'parley.guardrail.rule_kind': ruleKind, 'parley.guardrail.action': action });
}

/** recordWebhookDelivery counts one webhook delivery attempt by its outcome (delivered, failed, gave_up, …). */
export function recordWebhookDelivery(status: string): void {
  instrument('parley.webhook.deliveries', (m) =>
    m.createCounter('parley.webhook.deliveries', { description: 'Webhook delivery attempts, by outcome.' }),
  ).add(1, { 'parley.webhook.status': status });
}

/** PrivacyJobOutcome is how one take of a privacy job ended. */
export type PrivacyJobOutcome = 'finished' | 'retried' | 'failed' | 'lease_lost';

/**
 * recordPrivacyJob counts one take of a DSAR job (export or forget) by how it ended; `failed` means
 * the job gave up for good, which leaves a person's request unanswered until an operator acts.
 */
export function recordPrivacyJob(kind: string, outcome: PrivacyJobOutcome, count = 1): void {
  instrument('parley.privacy.jobs', (m) =>
    m.createCounter('parley.privacy.jobs', { description: 'Privacy (DSAR) job attempts, by kind and outcome.' }),
  ).add(count, { 'parley.privacy.kind': kind, 'parley.privacy.outcome': outcome });
}

/**
 * primePrivacyJobMetrics shows each kind's `failed` series at 0 from start-up: a counter series
 * that first appears at 1 has no increase to Prometheus, so the first job given up in a pod would
 * never fire ParleyPrivacyJobFailed.
 */
export function primePrivacyJobMetrics(): void {
  for (const kind of ['export', 'forget']) recordPrivacyJob(kind, 'failed', 0);
}

/** RecordingOutcome is how a recorded call's recording ended: stored whole, stored up to a limit, not stored. */
export type RecordingOutcome = 'stored' | 'size_limit' | 'over_budget' | 'failed' | 'declined';

/** recordRecordingOutcome counts one call recording by its outcome (parley.recordings). */
export function recordRecordingOutcome(outcome: RecordingOutcome, count = 1): void {
  instrument('parley.recordings', (m) =>
    m.createCounter('parley.recordings', {
      description:
        'Call recordings by outcome: stored, size_limit / over_budget (stored up to the limit), failed (not stored), declined (consent refused or unanswered).',
    }),
  ).add(count, { 'parley.recording.outcome': outcome });
}

/**
 * primeRecordingMetrics shows every recording outcome at 0 from start-up, so the first failure in a
 * pod is an increase Prometheus sees (ParleyRecordingFailures divides by all outcomes).
 */
export function primeRecordingMetrics(): void {
  for (const outcome of ['stored', 'size_limit', 'over_budget', 'failed', 'declined'] as const) recordRecordingOutcome(outcome, 0);
}

/**
 * TurnRecordOutcome is how the voice-orchestrator's write of one turn record (a conversation
 * turn's transcript turns, guardrail decisions and state: one RecordTurn) ended: stored at once,
 * stored after transient failures were retried, or lost (every attempt failed, or tenant-data
 * refused it for a reason a retry does not mend).
 */
export type TurnRecordOutcome = 'stored' | 'stored_after_retry' | 'lost';

/** recordTurnRecord counts one turn record written to tenant-data by its outcome (parley.turn_records). */
export function recordTurnRecord(outcome: TurnRecordOutcome, count = 1): void {
  instrument('parley.turn_records', (m) =>
    m.createCounter('parley.turn_records', {
      description:
        "Turn records (a conversation turn's transcript turns, guardrail decisions and state) written to tenant-data, by outcome: stored, stored_after_retry, lost.",
    }),
  ).add(count, { 'parley.turn_record.outcome': outcome });
}

/** primeTurnRecordMetrics shows every turn record outcome at 0 from start-up, so the first lost record is an increase Prometheus sees. */
export function primeTurnRecordMetrics(): void {
  for (const outcome of ['stored', 'stored_after_retry', 'lost'] as const) recordTurnRecord(outcome, 0);
}

/**
 * ConnectionFailureReason is why a connection to a peer service could not be made: nothing
 * listened (`refused`), the TLS handshake failed (`tls`: an untrusted CA, an expired certificate,
 * our client certificate refused), the peer's certificate named another service or host
 * (`identity`), no answer in time (`timeout`), or anything else (`other`).
 */
export type ConnectionFailureReason = 'refused' | 'tls' | 'identity' | 'timeout' | 'other';

/**
 * recordPeerConnectionFailure counts one failed attempt to connect to a peer service (every
 * address of the attempt tried), by peer and reason; never anything of the certificate itself.
 */
export function recordPeerConnectionFailure(peer: string, reason: ConnectionFailureReason, count = 1): void {
  instrument('parley.peer.connection_failures', (m) =>
    m.createCounter('parley.peer.connection_failures', {
      description: 'Failed attempts to connect to a peer service, by peer and reason (refused, tls, identity, timeout, other).',
    }),
  ).add(count, { 'parley.peer': peer, 'parley.connection_failure_reason': reason });
}

/**
 * DbTimeoutCause is which of Postgres's bounds ended a service's database work: a statement
 * canceled (57014: the role's statement_timeout, or an operator's pg_cancel_backend), or a
 * connection ended because its transaction sat idle too long (25P03: idle_in_transaction_session_timeout).
 */
export type DbTimeoutCause = 'statement_timeout' | 'idle_in_transaction_timeout';

/**
 * recordDbTimeout counts one statement or transaction of this process that Postgres ended by a
 * timeout (parley.db.statement_timeouts, by cause); its caller was answered UNAVAILABLE. On the
 * global meter provider unless `provider` names another (a test's own).
 */
export function recordDbTimeout(cause: DbTimeoutCause, count = 1, provider?: MeterProvider): void {
  instrument(
    'parley.db.statement_timeouts',
    (m) =>
      m.createCounter('parley.db.statement_timeouts', {
        description:
          'Statements Postgres canceled (statement_timeout) and transactions it ended (idle_in_transaction_session_timeout), by cause.',
      }),
    provider,
  ).add(count, { 'parley.db.timeout_cause': cause });
}

/** primeDbTimeoutMetrics reports parley.db.statement_timeouts at 0 for each cause, so the first timeout shows as an increase. */
export function primeDbTimeoutMetrics(provider?: MeterProvider): void {
  for (const cause of ['statement_timeout', 'idle_in_transaction_timeout'] as const) recordDbTimeout(cause, 0, provider);
}

/** listenSources are this process's LISTEN connections (listenForNotifications), read by parley.db.listening. */
const listenSources = new Set<{ readonly channel: string; readonly listening: () => boolean }>();

/**
 * observeListening reports a LISTEN connection in parley.db.listening, by channel: 1 while it is
 * up and hears its own heartbeat, 0 otherwise (0 when any of the process's listeners on the
 * channel is not), so an alert sees caches emptied and bypassed, or a worker back on its poll,
 * that only a log line showed. It returns a function that stops reporting the connection. On the
 * global meter provider unless `provider` names another (a test's own).
 */
export function observeListening(channel: string, listening: () => boolean, provider?: MeterProvider): () => void {
  const source = { channel, listening };
  listenSources.add(source);
  instrument(
    'parley.db.listening',
    (m) => {
      const gauge = m.createObservableGauge('parley.db.listening', {
        description:
          'Whether the LISTEN connection on a channel hears notifications (1) or not (0: lost, reconnecting, or its heartbeat not heard).',
      });
      gauge.addCallback((result) => {
        const byChannel = new Map<string, number>();
        for (const s of listenSources) byChannel.set(s.channel, Math.min(byChannel.get(s.channel) ?? 1, s.listening() ? 1 : 0));
        for (const [name, value] of byChannel) result.observe(value, { 'parley.db.listen_channel': name });
      });
      return gauge;
    },
    provider,
  );
  return () => {
    listenSources.delete(source);
  };
}

/** lastValues holds what each lastValueGauge reports: the value last set in this process. */
const lastValues = new Map<string, number>();

/**
 * setLastValue sets `name`, an observable gauge reporting the value last set in this process
 * (nothing before the first): the shape of the "last run" gauges below.
 */
function setLastValue(name: string, value: number, options: { description: string; unit?: string }): void {
  lastValues.set(name, value);
  instrument(name, (m) => {
    const gauge = m.createObservableGauge(name, options);
    gauge.addCallback((result) => {
      const last = lastValues.get(name);
      if (last !== undefined) result.observe(last);
    });
    return gauge;
  });
}

/**
 * recordPurgeSuccess sets parley.purge.last_success (Unix seconds of the last purge run that
 * finished without a failed workspace or sweep), so an alert can fire when retention silently
 * stops being enforced.
 */
export function recordPurgeSuccess(at: Date = new Date()): void {
  setLastValue('parley.purge.last_success', Math.floor(at.getTime() / 1000), {
    description: 'Unix time of the last purge run that finished with nothing failed in this process.',
    unit: 's',
  });
}

/**
 * recordSecretsMaintenanceSuccess sets parley.secrets.maintenance_last_success (Unix seconds of
 * the last maintenance run this secrets replica finished: the version sweep and the rewrap), so an
 * alert can fire when retired versions stop being destroyed and rewraps stop, which a run that
 * keeps failing would otherwise show only in its logs.
 */
export function recordSecretsMaintenanceSuccess(at: Date = new Date()): void {
  setLastValue('parley.secrets.maintenance_last_success', Math.floor(at.getTime() / 1000), {
    description: 'Unix time of the last secrets maintenance run (version sweep and rewrap) that finished in this process.',
    unit: 's',
  });
}

/**
 * recordRecordingKeysBelowLatest sets parley.recording_keys.below_latest: how many recordings' own
 * keys (kept in tenant-data) secrets' last maintenance run left below the latest KEK version, so an
 * alert can fire when a rotation's rewrap does not finish (the minimum version cannot be raised).
 */
export function recordRecordingKeysBelowLatest(count: number): void {
  setLastValue('parley.recording_keys.below_latest', count, {
    description: "Recordings' own keys that secrets' last maintenance run in this process left below the latest KEK version.",
  });
}

/** lastPurgeSuccess is what parley.purge.last_success reports in this process (undefined before the first complete run). */
export function lastPurgeSuccess(): Date | undefined {
  const seconds = lastValues.get('parley.purge.last_success');
  return seconds === undefined ? undefined : new Date(seconds * 1000);
}

/** GaugeReading is one observation of an observable gauge. */
export interface GaugeReading {
  readonly value: number;
  readonly attributes?: Attributes;
}

/**
 * observeGauge registers a gauge read at each collection (a scrape or an OTLP export) by `read`,
 * which may query the database; a failed read reports nothing rather than failing the scrape.
 * It returns a function that unregisters it.
 */
export function observeGauge(
  name: string,
  options: { description: string; unit?: string },
  read: () => Promise<readonly GaugeReading[]>,
): () => void {
  const gauge = metrics.getMeter('@parley/platform').createObservableGauge(name, options);
  const callback = async (result: ObservableResult) => {
    try {
      for (const r of await read()) result.observe(r.value, r.attributes);
    } catch {
      // Metrics are best effort: an unreachable database shows as a gap.
    }
  };
  gauge.addCallback(callback);
  return () => gauge.removeCallback(callback);
}

/**
 * PROMETHEUS_METRICS is every metric a Parley service exposes, by its Prometheus name (as
 * /metrics shows it: dots become underscores, counters end in _total, histograms add _bucket,
 * _sum and _count), with its type. The chart's alert rules and dashboard may reference only
 * these (and named kube-state-metrics series); their tests check that.
 */
export const PROMETHEUS_METRICS = {
  rpc_server_call_duration: 'histogram',
  rpc_client_call_duration: 'histogram',
  rpc_server_active_requests: 'gauge',
  db_client_connection_count: 'gauge',
  db_client_connection_max: 'gauge',
  db_client_connection_pending_requests: 'gauge',
  db_client_connection_wait_time: 'histogram',
  parley_cache_lookups_total: 'counter',
  parley_kek_calls_total: 'counter',
  parley_throttle_blocks_total: 'counter',
  parley_conversations_live: 'gauge',
  parley_guardrail_decisions_total: 'counter',
  parley_webhook_deliveries_total: 'counter',
  parley_privacy_jobs_total: 'counter',
  parley_recordings_total: 'counter',
  parley_turn_records_total: 'counter',
  parley_peer_connection_failures_total: 'counter',
  parley_db_statement_timeouts_total: 'counter',
  parley_db_listening: 'gauge',
  parley_audit_outbox_depth: 'gauge',
  parley_audit_outbox_age: 'gauge',
  parley_audit_checkpoint_oldest_age: 'gauge',
  parley_audit_checkpoint_age: 'gauge',
  parley_tls_certificate_expires_in: 'gauge',
  parley_purge_last_success: 'gauge',
  parley_secrets_maintenance_last_success: 'gauge',
  parley_recording_keys_below_latest: 'gauge',
  parley_recording_blob_deletions_pending: 'gauge',
  parley_recording_blob_deletions_oldest_age: 'gauge',
  target_info: 'gauge',
} as const satisfies Readonly<Record<string, 'histogram' | 'gauge' | 'counter'>>;
