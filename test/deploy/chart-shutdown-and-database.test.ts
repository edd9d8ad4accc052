// What the chart refuses and passes on about a pod's last seconds and its database connections:
// a grace period the drain does not fit in, a recording wait the kubelet would cut, and the
// statement and idle-transaction timeouts every service with a database applies.
import { describe, expect, it } from 'vitest';
import { loadTenantDataConfig } from '@parley/tenant-data';
import { SERVICE_NAMES } from '@parley/platform';
import { render, template, valuesFile } from './render.js';
import { deploymentOf, envOf, PRODUCTION, renderedEnv } from './chart-fixture.js';

describe('chart: shutdown budget and database timeouts', () => {
  it('gives every service the database timeouts from values, and tenant-data reads them', async () => {
    const objects = await render([PRODUCTION, valuesFile('database:\n  statementTimeoutMs: 15000\n  idleInTransactionTimeoutMs: 0\n')]);
    for (const service of SERVICE_NAMES) {
      const env = envOf(deploymentOf(objects, service));
      expect(env.get('PARLEY_DB_STATEMENT_TIMEOUT_MS')?.value, service).toBe('15000');
      expect(env.get('PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS')?.value, service).toBe('0');
    }
    const config = loadTenantDataConfig(renderedEnv(deploymentOf(objects, 'tenant-data').spec.template.spec.containers[0]));
    expect(config.dbTimeouts).toEqual({ statementTimeoutMs: 15_000, idleInTransactionTimeoutMs: 0 });
    const refused = await template([PRODUCTION, valuesFile('database:\n  statementTimeoutMs: -1\n')]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/statementTimeoutMs/);
  }, 120_000);

  it('refuses a grace period that the drain delay and the shutdown grace do not fit in, naming the service', async () => {
    const tight = await template([PRODUCTION, valuesFile('default:\n  terminationGracePeriodSeconds: 30\n')]);
    expect(tight.code).not.toBe(0);
    expect(tight.stderr).toMatch(/terminationGracePeriodSeconds \(30 s\) must exceed drainDelayMs \+ shutdownGraceMs \(30000 ms\)/);
    const edgeOnly = await template([PRODUCTION, valuesFile('services:\n  edge:\n    shutdownGraceMs: 60000\n')]);
    expect(edgeOnly.code).not.toBe(0);
    expect(edgeOnly.stderr).toMatch(/edge: terminationGracePeriodSeconds/);
  }, 120_000);

  it('refuses a voice-orchestrator recording wait at or past the grace period, and passes one under it', async () => {
    const past = await template([
      PRODUCTION,
      valuesFile('services:\n  voice-orchestrator:\n    env:\n      PARLEY_RECORDING_SHUTDOWN_WAIT_MS: "45000"\n'),
    ]);
    expect(past.code).not.toBe(0);
    expect(past.stderr).toMatch(
      /voice-orchestrator: env PARLEY_RECORDING_SHUTDOWN_WAIT_MS \(45000 ms\) must stay under terminationGracePeriodSeconds/,
    );
    const under = await render([
      PRODUCTION,
      valuesFile('services:\n  voice-orchestrator:\n    env:\n      PARLEY_RECORDING_SHUTDOWN_WAIT_MS: "25000"\n'),
    ]);
    expect(envOf(deploymentOf(under, 'voice-orchestrator')).get('PARLEY_RECORDING_SHUTDOWN_WAIT_MS')?.value).toBe('25000');
  }, 120_000);
});
