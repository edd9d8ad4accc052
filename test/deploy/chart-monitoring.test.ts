// The chart's monitoring parts: ServiceMonitor and metrics Services, the PrometheusRule (its
// shape as the Prometheus Operator's schema and Prometheus' rule files want it, every expression
// parsed by Prometheus' own PromQL grammar) and the Grafana dashboard, all referencing only
// metrics that Parley exports (PROMETHEUS_METRICS) or that kube-state-metrics provides.
import { readdirSync, readFileSync } from 'node:fs';
import { parser } from '@prometheus-io/lezer-promql';
import { describe, expect, it } from 'vitest';
import { PROMETHEUS_METRICS } from '@parley/platform';
import { NAMESPACE, render, valuesFile, type K8sObject } from './render.js';
import { PRODUCTION } from './chart-fixture.js';

/** serverStreams lists every server-streaming method of proto/ (`returns (stream ...)`). */
function serverStreams(): string[] {
  const dir = new URL('../../proto/', import.meta.url);
  const methods = new Set<string>();
  for (const file of readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.proto')))
    for (const m of readFileSync(new URL(file, dir), 'utf8').matchAll(/rpc\s+(\w+)\s*\([^)]*\)\s*returns\s*\(\s*stream\s/g))
      methods.add(m[1] ?? '');
  return [...methods].sort();
}

/** ruleOf finds one alert of a rendered PrometheusRule. */
function ruleOf(objects: K8sObject[], alert: string): { expr: string; for?: string } {
  const [rule] = objects.filter((o) => o.kind === 'PrometheusRule');
  const found = (rule?.spec.groups[0].rules as { alert: string; expr: string; for?: string }[]).find((r) => r.alert === alert);
  if (found === undefined) throw new Error(`no alert ${alert}`);
  return { ...found, expr: found.expr.trim() };
}

/** EXTERNAL_METRICS are series other exporters provide, which the rules may use. */
const EXTERNAL_METRICS = new Set(['kube_pod_container_status_restarts_total', 'up']);

/** exported lists every Prometheus series name Parley exposes (histograms with their suffixes). */
function exportedSeries(): Set<string> {
  const names = new Set<string>();
  for (const [name, kind] of Object.entries(PROMETHEUS_METRICS)) {
    if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    else names.add(name);
  }
  return names;
}

/** metricsOf parses a PromQL expression with Prometheus' grammar and returns the metric names it selects; a syntax error throws. */
function metricsOf(expr: string): string[] {
  const tree = parser.parse(expr);
  const names: string[] = [];
  const errors: number[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
      if (node.name === 'VectorSelector') {
        const id = node.node.getChild('Identifier');
        if (id !== null) names.push(expr.slice(id.from, id.to));
      }
    },
  });
  if (errors.length > 0) throw new Error(`PromQL syntax error at ${errors[0]} in: ${expr}`);
  return names;
}

const all = valuesFile(`
monitoring:
  serviceMonitor:
    enabled: true
    labels: { release: kube-prometheus-stack }
  prometheusRule:
    enabled: true
  dashboard:
    enabled: true
  networkPolicy:
    namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: monitoring } }
`);

const find = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);

describe('monitoring parts of the chart', () => {
  it('renders none of them by default', async () => {
    const objects = await render();
    expect(find(objects, 'ServiceMonitor')).toEqual([]);
    expect(find(objects, 'PrometheusRule')).toEqual([]);
    expect(objects.some((o) => o.metadata.name.endsWith('-dashboard'))).toBe(false);
  });

  it('scrapes every service on its health port through a metrics Service, and lets Prometheus in', async () => {
    const objects = await render([all]);
    const [monitor] = find(objects, 'ServiceMonitor');
    expect(monitor?.metadata.labels?.release).toBe('kube-prometheus-stack');
    expect(monitor?.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics', scheme: 'http' })]);
    const metricsServices = find(objects, 'Service').filter((s) => s.metadata.labels?.['parley.dev/metrics'] === 'true');
    const deployments = find(objects, 'Deployment');
    expect(metricsServices.length).toBe(deployments.length);
    for (const svc of metricsServices) {
      expect(svc.spec.ports).toEqual([expect.objectContaining({ name: 'metrics', targetPort: 'health' })]);
      for (const [k, v] of Object.entries(monitor?.spec.selector.matchLabels as Record<string, string>))
        expect(svc.metadata.labels?.[k]).toBe(v);
    }
    const scrape = find(objects, 'NetworkPolicy').find((p) => p.metadata.name.endsWith('-metrics-scrape'));
    const healthPort = (deployments[0]?.spec.template.spec.containers[0].ports as { name: string; containerPort: number }[]).find(
      (p) => p.name === 'health',
    )?.containerPort;
    expect(scrape?.spec.ingress[0].ports).toEqual([{ protocol: 'TCP', port: healthPort }]);
    expect(scrape?.spec.ingress[0].from[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name']).toBe('monitoring');
  });

  it('ships alert rules in Prometheus rule-file shape whose expressions parse and use only exported metrics', async () => {
    const objects = await render([all]);
    const [rule] = find(objects, 'PrometheusRule');
    expect(rule?.apiVersion).toBe('monitoring.coreos.com/v1');
    const groups = rule?.spec.groups as { name: string; rules: Record<string, unknown>[] }[];
    expect(groups.length).toBeGreaterThan(0);
    const known = exportedSeries();
    const alerts: string[] = [];
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const group of groups) {
      expect(group.name).toMatch(/\S/);
      for (const r of group.rules) {
        // A rule file's alerting rule: alert, expr, optional for/labels/annotations, nothing else.
        expect(
          Object.keys(r).every((k) => ['alert', 'expr', 'for', 'labels', 'annotations', 'keep_firing_for'].includes(k)),
          JSON.stringify(r),
        ).toBe(true);
        expect(r.alert).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
        if (r.for !== undefined) expect(r.for).toMatch(/^([0-9]+(ms|s|m|h|d|w|y))+$/);
        expect((r.labels as Record<string, string>).severity).toMatch(/^(critical|warning)$/);
        const annotations = r.annotations as Record<string, string>;
        expect(annotations.summary).toMatch(/\S/);
        expect(annotations.runbook_url).toBe(`README.md#${String(r.alert).toLowerCase()}`);
        // The runbook has a section for the alert (a heading named after it).
        expect(readme).toContain(`#### ${String(r.alert)}`);
        const expr = String(r.expr);
        const names = metricsOf(expr);
        expect(names.length, expr).toBeGreaterThan(0);
        for (const name of names)
          expect(known.has(name) || EXTERNAL_METRICS.has(name), `${r.alert} uses unknown metric ${name}`).toBe(true);
        expect(expr).toContain(`namespace="${NAMESPACE}"`);
        alerts.push(String(r.alert));
      }
    }
    expect(alerts.sort()).toEqual(
      [
        'ParleyAuditCheckpointAgeHigh',
        'ParleyAuditOutboxAgeHigh',
        'ParleyCertificateExpirySoon',
        'ParleyDbStatementTimeouts',
        'ParleyKekFailures',
        'ParleyListenDown',
        'ParleyPeerTlsFailures',
        'ParleyPodRestarting',
        'ParleyPrivacyJobFailed',
        'ParleyPurgeStale',
        'ParleyRecordingBlobDeletionsStale',
        'ParleyRecordingFailures',
        'ParleyRecordingKeysNotRewrapped',
        'ParleyRpcErrorRatioHigh',
        'ParleyRpcLatencyHigh',
        'ParleySecretsMaintenanceStale',
        'ParleyTargetDown',
        'ParleyThrottleSpike',
        'ParleyTurnRecordsLost',
      ].sort(),
    );
  });

  it('takes thresholds from values', async () => {
    const tuned = valuesFile(`
monitoring:
  prometheusRule:
    enabled: true
    thresholds: { errorRatio: 0.2, p99LatencySeconds: 3, outboxAgeSeconds: 60, checkpointAgeSeconds: 100, certificateExpiryDays: 2, throttleBlocksPerSecond: 9, recordingFailureRatio: 0.25, turnRecordLossRatio: 0.02, restartsPerHour: 5 }
`);
    const [rule] = find(await render([tuned]), 'PrometheusRule');
    const expr = (alert: string) =>
      String((rule?.spec.groups[0].rules as { alert: string; expr: string }[]).find((r) => r.alert === alert)?.expr).trim();
    expect(expr('ParleyRpcErrorRatioHigh')).toMatch(/> 0\.2$/);
    expect(expr('ParleyCertificateExpirySoon')).toMatch(/< 172800$/);
    expect(expr('ParleyPodRestarting')).toMatch(/>= 5$/);
    expect(expr('ParleyRecordingFailures')).toMatch(/> 0\.25$/);
    expect(expr('ParleyTurnRecordsLost')).toMatch(
      /> 0\.02\n\s*and sum\(increase\(parley_turn_records_total\{[^}]*"lost"\}\[15m\]\)\) >= 3$/,
    );
  });

  it('fires ParleySecretsMaintenanceStale when the last finished maintenance run is too old, and when no secrets has reported one (a restart)', async () => {
    const tuned = valuesFile(`
monitoring:
  prometheusRule:
    enabled: true
    thresholds: { secretsMaintenanceStaleSeconds: 5400 }
`);
    const { expr } = ruleOf(await render([tuned]), 'ParleySecretsMaintenanceStale');
    expect(metricsOf(expr)).toEqual(['parley_secrets_maintenance_last_success', 'parley_secrets_maintenance_last_success']);
    expect(expr).toContain(`time() - max(parley_secrets_maintenance_last_success{namespace="${NAMESPACE}"}) > 5400`);
    expect(expr).toContain(`absent_over_time(parley_secrets_maintenance_last_success{namespace="${NAMESPACE}"}[5400s])`);
  });

  it('fires ParleyPurgeStale when the last clean purge is too old, and when no lifecycle has reported one within the threshold (a restart)', async () => {
    const tuned = valuesFile(`
monitoring:
  prometheusRule:
    enabled: true
    thresholds: { purgeStaleSeconds: 7200 }
`);
    const { expr } = ruleOf(await render([tuned]), 'ParleyPurgeStale');
    expect(metricsOf(expr)).toEqual(['parley_purge_last_success', 'parley_purge_last_success']);
    expect(expr).toContain(`time() - max(parley_purge_last_success{namespace="${NAMESPACE}"}) > 7200`);
    // A restarted replica has no series until its first clean run: absence over the threshold fires too.
    expect(expr).toContain(`absent_over_time(parley_purge_last_success{namespace="${NAMESPACE}"}[7200s])`);
  });

  it("fires ParleyRecordingBlobDeletionsStale on the deletion queue's oldest entry, at the threshold from values", async () => {
    const tuned = valuesFile(`
monitoring:
  prometheusRule:
    enabled: true
    thresholds: { recordingBlobDeletionAgeSeconds: 7200 }
`);
    const { expr } = ruleOf(await render([tuned]), 'ParleyRecordingBlobDeletionsStale');
    expect(expr).toBe(`max(parley_recording_blob_deletions_oldest_age{namespace="${NAMESPACE}"}) > 7200`);
    await expect(
      render([valuesFile('monitoring:\n  prometheusRule:\n    thresholds: { recordingBlobDeletionAgeSeconds: 1800 }\n')]),
    ).rejects.toThrow(/recordingBlobDeletionAgeSeconds/);
  });

  it('ships a Grafana dashboard that parses and queries only exported metrics', async () => {
    const objects = await render([all]);
    const map = find(objects, 'ConfigMap').find((c) => c.metadata.name.endsWith('-dashboard'));
    expect(map?.metadata.labels?.grafana_dashboard).toBe('1');
    const dashboard = JSON.parse((map?.data as Record<string, string>)['parley.json'] ?? '') as {
      uid: string;
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
    };
    expect(dashboard.uid).toBe('parley-overview');
    const known = exportedSeries();
    const used = new Set<string>();
    const graphs = dashboard.panels.filter((p) => p.type !== 'row');
    expect(graphs.length).toBeGreaterThan(10);
    for (const panel of graphs) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const t of panel.targets ?? []) {
        // Grafana's variables stand in for a duration and a label value.
        const expr = t.expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', NAMESPACE);
        for (const name of metricsOf(expr)) {
          expect(known.has(name), `panel "${panel.title}" uses unknown metric ${name}`).toBe(true);
          used.add(name);
        }
      }
    }
    // RED, pools, outbox, audit, the recording blob deletion queue and turn records are all on it.
    for (const name of [
      'rpc_server_call_duration_count',
      'rpc_server_call_duration_bucket',
      'db_client_connection_count',
      'parley_audit_outbox_age',
      'parley_audit_checkpoint_oldest_age',
      'parley_recording_blob_deletions_pending',
      'parley_recording_blob_deletions_oldest_age',
      'parley_turn_records_total',
    ])
      expect(used.has(name), name).toBe(true);
  });

  it('fails the render when the ServiceMonitor is on but no scrape NetworkPolicy selector lets Prometheus in', async () => {
    await expect(render([valuesFile('monitoring:\n  serviceMonitor:\n    enabled: true\n')])).rejects.toThrow(
      /monitoring\.networkPolicy\.namespaceSelector/,
    );
  });

  it('alerts on any TLS or identity failure of the last 30 minutes, so that rare callers are seen too', async () => {
    const tls = ruleOf(await render([all]), 'ParleyPeerTlsFailures');
    // Failures come only in bursts when calls happen: a rate over 5m held for 10m never fired for
    // a caller that calls hourly. One burst keeps increase over 30m above 0 for longer than for.
    expect(tls.expr).toMatch(
      /^sum by \(job, parley_peer, parley_connection_failure_reason\) \(increase\(parley_peer_connection_failures_total\{namespace="parley-system", parley_connection_failure_reason=~"tls\|identity"\}\[30m\]\)\) > 0$/,
    );
    expect(tls.for).toBe('2m');
  });

  it('alerts on a count of database timeouts per service and cause over 15 minutes, at the threshold from values', async () => {
    const tuned = valuesFile(`
monitoring:
  prometheusRule:
    enabled: true
    thresholds: { dbTimeoutsPer15Minutes: 7 }
`);
    const rule = ruleOf(await render([tuned]), 'ParleyDbStatementTimeouts');
    expect(rule.expr).toBe(
      `sum by (job, parley_db_timeout_cause) (increase(parley_db_statement_timeouts_total{namespace="${NAMESPACE}"}[15m])) >= 7`,
    );
    expect(rule.for).toBeUndefined();
  });

  it('alerts when a replica has not heard its LISTEN heartbeat for 5 minutes, by pod and channel', async () => {
    const rule = ruleOf(await render([all]), 'ParleyListenDown');
    expect(rule.expr).toBe(`min by (job, pod, parley_db_listen_channel) (parley_db_listening{namespace="${NAMESPACE}"}) < 1`);
    expect(rule.for).toBe('5m');
  });

  it('alerts when Prometheus cannot scrape a component', async () => {
    const down = ruleOf(await render([all]), 'ParleyTargetDown');
    expect(down.expr).toMatch(/^up\{namespace="parley-system", job=~"([a-z-]+\|)+[a-z-]+"\} == 0$/);
    const jobs = /job=~"([^"]+)"/.exec(down.expr)?.[1]?.split('|');
    expect(jobs).toEqual(['audit', 'edge', 'identity', 'integrations', 'lifecycle', 'secrets', 'tenant-data', 'voice-orchestrator']);
    expect(down.for).toBe('5m');
  });

  it('leaves server streams out of the latency alert and needs a minimum request rate', async () => {
    const latency = ruleOf(await render([all]), 'ParleyRpcLatencyHigh');
    const streams = serverStreams();
    expect(streams).toEqual(expect.arrayContaining(['ExportEvents', 'ServerReflectionInfo', 'Watch']));
    const excluded = /rpc_method!~"\.\*\/\(([^)]+)\)"/.exec(latency.expr)?.[1]?.split('|') ?? [];
    expect(excluded.sort()).toEqual(streams);
    // Both the quantile and the rate guard see unary calls only.
    expect(latency.expr.match(/rpc_method!~/g)?.length).toBe(2);
    expect(latency.expr).toMatch(/and sum by \(job\) \(rate\(rpc_server_call_duration_count\{[^}]*\}\[5m\]\)\) >= 0\.5$/);
  });

  it('takes the certificate alert threshold from certificates.renewBefore, so production values do not always fire', async () => {
    const production = valuesFile('monitoring:\n  prometheusRule:\n    enabled: true\n');
    // ci/production-values.yaml: 168h certificates renewed 48h before expiry; the alert fires below 24h left.
    expect(ruleOf(await render([PRODUCTION, production]), 'ParleyCertificateExpirySoon').expr).toMatch(/< 86400$/);
    const minutes = valuesFile('certificates:\n  renewBefore: 1h30m\nmonitoring:\n  prometheusRule:\n    enabled: true\n');
    expect(ruleOf(await render([minutes]), 'ParleyCertificateExpirySoon').expr).toMatch(/< 2700$/);
    const tooLate = valuesFile('monitoring:\n  prometheusRule:\n    enabled: true\n    thresholds: { certificateExpiryDays: 7 }\n');
    await expect(render([PRODUCTION, tooLate])).rejects.toThrow(/certificateExpiryDays.*certificates\.renewBefore/);
  });

  it('rejects an unknown monitoring key (the schema is strict)', async () => {
    await expect(render([valuesFile('monitoring:\n  serviceMonitor:\n    enabled: true\n    scrapeEverything: true\n')])).rejects.toThrow(
      /scrapeEverything|additional/i,
    );
  });
});
