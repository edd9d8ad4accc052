// Lifecycle in the chart: the DSAR export key comes from a Secret (without it export and forget are
// refused), and the purge and privacy-job knobs reach the environment its config loader accepts.
import { describe, expect, it } from 'vitest';
import { loadLifecycleConfig } from '@parley/lifecycle';
import { render, valuesFile } from './render.js';
import { deploymentOf, envOf, PRODUCTION, renderedEnv } from './chart-fixture.js';

describe('chart: lifecycle', () => {
  it('gives lifecycle its export key as a Secret reference, so DSAR export and forget work', async () => {
    const objects = await render([PRODUCTION]);
    const deployment = deploymentOf(objects, 'lifecycle');
    const env = envOf(deployment);
    expect(env.get('PARLEY_EXPORT_KEY').value).toBeUndefined();
    expect(env.get('PARLEY_EXPORT_KEY').valueFrom.secretKeyRef).toEqual({ name: 'parley-lifecycle', key: 'export-key' });
    const config = loadLifecycleConfig(renderedEnv(deployment.spec.template.spec.containers[0]));
    expect(config.exportKey?.length).toBeGreaterThanOrEqual(32);
    expect(config.purgeIntervalMs).toBe(3_600_000);
    expect(config.exportLinkTtlMs).toBe(900_000);
    // The loader's own defaults, now set explicitly by the chart.
    for (const name of [
      'PARLEY_PURGE_SCHEDULER',
      'PARLEY_PURGE_FIRST_RUN_MS',
      'PARLEY_PRIVACY_POLL_MS',
      'PARLEY_AUTH_FAILURE_RETENTION_HOURS',
      'PARLEY_SESSION_RETENTION_DAYS',
    ])
      expect(env.get(name)?.value, name).toBeDefined();
    expect(config.scheduler).toBe(true);
    expect(config.privacyPollMs).toBe(5_000);
    expect(config.authFailureRetentionMs).toBe(24 * 3_600_000);
    expect(config.defaults.days.sessions).toBe(1);
  }, 120_000);

  it('passes the purge and privacy-job settings from values', async () => {
    const values = valuesFile(`
config:
  lifecycle:
    exportKey: { existingSecret: dsar, key: k }
    purgeIntervalMs: 600000
    purgeBatchSize: 50
    auditLegalMinimumDays: 3650
    privacyLeaseMs: 60000
    privacyMaxAttempts: 7
    privacyRetryMs: 2000
    privacyConcurrency: 2
    exportLinkTtlSeconds: 300
    purgeScheduler: "off"
    purgeFirstRunMs: 0
    privacyPollMs: 250
    authFailureRetentionHours: 72
    sessionRetentionDays: 7
`);
    const objects = await render([PRODUCTION, values]);
    const deployment = deploymentOf(objects, 'lifecycle');
    const env = envOf(deployment);
    expect(env.get('PARLEY_EXPORT_KEY').valueFrom.secretKeyRef).toEqual({ name: 'dsar', key: 'k' });
    const config = loadLifecycleConfig(renderedEnv(deployment.spec.template.spec.containers[0]));
    expect(config.purgeIntervalMs).toBe(600_000);
    expect(config.purgeBatchSize).toBe(50);
    expect(config.defaults.auditLegalMinimumDays).toBe(3650);
    expect(config.privacyLeaseMs).toBe(60_000);
    expect(config.privacyMaxAttempts).toBe(7);
    expect(config.privacyRetryMs).toBe(2_000);
    expect(config.privacyConcurrency).toBe(2);
    expect(config.exportLinkTtlMs).toBe(300_000);
    expect(config.scheduler).toBe(false);
    expect(config.purgeFirstDelayMs).toBe(0);
    expect(config.privacyPollMs).toBe(250);
    expect(config.authFailureRetentionMs).toBe(72 * 3_600_000);
    expect(config.defaults.days.sessions).toBe(7);
  }, 120_000);

  it('fails the render naming the value when the export key Secret is not named', async () => {
    const values = valuesFile('config:\n  lifecycle:\n    exportKey: { existingSecret: "", key: export-key }\n');
    await expect(render([PRODUCTION, values])).rejects.toThrow(/config\.lifecycle\.exportKey/);
  }, 120_000);

  it('refuses out-of-range settings in the schema', async () => {
    const values = valuesFile('config:\n  lifecycle:\n    exportLinkTtlSeconds: 5\n');
    await expect(render([PRODUCTION, values])).rejects.toThrow(/exportLinkTtlSeconds/);
    const scheduler = valuesFile('config:\n  lifecycle:\n    purgeScheduler: "maybe"\n');
    await expect(render([PRODUCTION, scheduler])).rejects.toThrow(/purgeScheduler/);
    const poll = valuesFile('config:\n  lifecycle:\n    privacyPollMs: 10\n');
    await expect(render([PRODUCTION, poll])).rejects.toThrow(/privacyPollMs/);
  }, 120_000);
});
