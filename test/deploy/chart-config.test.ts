/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// What the chart gives each service's environment against what its own config loader requires
// and accepts: peers, database, Vault and audit's signing key.
import { expect, it } from 'vitest';
import { loadAuditConfig } from '@parley/audit';
import { loadEdgeConfig } from '@parley/edge/config';
import { loadDataKeyCacheConfig, loadKekProviderConfig } from '@parley/envelope';
import { loadKernelConfig, SERVICE_NAMES, type ServiceName } from '@parley/platform';
import { loadTenantDataConfig } from '@parley/tenant-data';
import { NAMESPACE, RELEASE, render, valuesFile } from './render.js';
import {
  VAULT_SERVICES,
  REQUIRED_ENV,
  PEER_CALLS,
  mountOf,
  renderedEnv,
  deploymentOf,
  envOf,
  describeHardenedChart,
} from './chart-fixture.js';

describeHardenedChart((chart) => {
  it('gives identity the signing-key reload that bounds how soon every replica sees a key change', () => {
    const env = envOf(deploymentOf(chart.objects, 'identity'));
    expect(env.get('PARLEY_SIGNING_KEY_RELOAD_MS').value).toBe('60000');
    expect(env.get('PARLEY_SIGNING_KEY_ROTATION_HOURS').value).toBe('24');
  });

  it('tells every service its peers by PARLEY_<SERVICE>_URL and its database by a Secret reference', () => {
    const env = envOf(deploymentOf(chart.objects, 'voice-orchestrator'));
    expect(env.get('PARLEY_TENANT_DATA_URL').value).toBe(`https://${RELEASE}-tenant-data.${NAMESPACE}.svc:8443`);
    expect(env.has('PARLEY_VOICE_ORCHESTRATOR_URL')).toBe(false);
    expect(env.get('PARLEY_PUBLIC_PORT').value).toBe('8080');
    expect(env.get('DATABASE_URL').valueFrom.secretKeyRef).toEqual({ name: 'parley-database', key: 'voice-orchestrator' });
    expect(env.get('PARLEY_HOST').value).toBe('0.0.0.0');
  });

  it('gives the listening services a direct LISTEN URL from database.listenSecret when set, and nobody one when not', async () => {
    for (const service of SERVICE_NAMES) expect(envOf(deploymentOf(chart.objects, service)).has('PARLEY_LISTEN_DATABASE_URL')).toBe(false);
    const objects = await render([...chart.files, valuesFile('database:\n  listenSecret: parley-database-direct\n')]);
    for (const service of SERVICE_NAMES) {
      const env = envOf(deploymentOf(objects, service));
      if (['secrets', 'identity', 'integrations'].includes(service))
        expect(env.get('PARLEY_LISTEN_DATABASE_URL').valueFrom.secretKeyRef, service).toEqual({
          name: 'parley-database-direct',
          key: service,
        });
      else expect(env.has('PARLEY_LISTEN_DATABASE_URL'), service).toBe(false);
    }
  });

  it('configures Vault on the services with a KEK only, each with its own role and transit key', () => {
    const env = envOf(deploymentOf(chart.objects, 'secrets'));
    expect(env.get('PARLEY_KEK_PROVIDER').value).toBe('vault');
    expect(env.get('PARLEY_VAULT_AUTH').value).toBe('kubernetes');
    expect(env.get('PARLEY_VAULT_TRANSIT_KEY').value).toBe('parley-kek');
    const own = {
      secrets: ['parley-secrets', 'parley-kek'],
      identity: ['parley-identity', 'parley-identity-kek'],
      audit: ['parley-audit', 'parley-audit-kek'],
    };
    for (const [service, [role, key]] of Object.entries(own)) {
      const e = envOf(deploymentOf(chart.objects, service as ServiceName));
      expect([e.get('PARLEY_VAULT_K8S_ROLE')?.value, e.get('PARLEY_VAULT_TRANSIT_KEY')?.value], service).toEqual([role, key]);
    }
    for (const service of SERVICE_NAMES.filter((s) => !VAULT_SERVICES.includes(s))) {
      expect(envOf(deploymentOf(chart.objects, service)).has('VAULT_ADDR'), service).toBe(false);
      expect(envOf(deploymentOf(chart.objects, service)).has('PARLEY_VAULT_ADDR'), service).toBe(false);
      expect(envOf(deploymentOf(chart.objects, service)).has('PARLEY_KEK_PROVIDER'), service).toBe(false);
    }
  });

  it('gives every service each variable its config loader requires, supplied the right way', () => {
    for (const service of SERVICE_NAMES) {
      const container = deploymentOf(chart.objects, service).spec.template.spec.containers[0];
      const env = envOf(deploymentOf(chart.objects, service));
      const required = { ...REQUIRED_ENV[service] };
      for (const peer of PEER_CALLS[service] ?? []) required[`PARLEY_${peer.toUpperCase().replace(/-/g, '_')}_URL`] = 'value';
      for (const [name, supply] of Object.entries(required)) {
        const entry = env.get(name);
        expect(entry, `${service} lacks ${name}`).toBeDefined();
        if (supply === 'secretRef') {
          expect(entry.value, `${service} ${name} must not be inline`).toBeUndefined();
          expect(entry.valueFrom?.secretKeyRef?.name, `${service} ${name}`).toMatch(/.+/);
          expect(entry.valueFrom?.secretKeyRef?.key, `${service} ${name}`).toMatch(/.+/);
        } else {
          expect(String(entry.value ?? ''), `${service} ${name}`).not.toBe('');
        }
        if (supply === 'mountedFile')
          expect(mountOf(container, entry.value), `${service} ${name}=${entry.value} is in no mounted volume`).toBeDefined();
      }
    }
  });

  it("renders an environment that the services' own config loaders accept", () => {
    for (const service of SERVICE_NAMES) {
      const env = renderedEnv(deploymentOf(chart.objects, service).spec.template.spec.containers[0]);
      const kernel = loadKernelConfig(service, '0.0.0', env);
      expect(kernel.host, service).toBe('0.0.0.0');
      for (const peer of PEER_CALLS[service] ?? []) expect(kernel.peers[peer], `${service} -> ${peer}`).toMatch(/^https:\/\//);
      if (VAULT_SERVICES.includes(service)) {
        const kek = loadKekProviderConfig(env);
        expect(kek.provider, service).toBe('vault');
      }
    }
    const secretsEnv = renderedEnv(deploymentOf(chart.objects, 'secrets').spec.template.spec.containers[0]);
    expect(loadDataKeyCacheConfig(secretsEnv).enabled).toBe(true);
    const tenantData = loadTenantDataConfig(renderedEnv(deploymentOf(chart.objects, 'tenant-data').spec.template.spec.containers[0]));
    expect(tenantData.subjectHashPepper.byteLength).toBeGreaterThanOrEqual(32);
    const edge = loadEdgeConfig(renderedEnv(deploymentOf(chart.objects, 'edge').spec.template.spec.containers[0]));
    expect(edge.limits).toEqual({
      maxConcurrentStreams: 100,
      maxConnectionsPerAddress: 64,
      headersTimeoutMs: 10000,
      requestTimeoutMs: 30000,
      idleTimeoutMs: 120000,
      streamResetBurst: 200,
      streamResetRate: 33,
    });
    const audit = loadAuditConfig(renderedEnv(deploymentOf(chart.objects, 'audit').spec.template.spec.containers[0]));
    expect(audit.signingKeyPath).toBe('/var/run/parley/audit-signing-key/signing-key.json');
    expect(audit.kek).toMatchObject({
      provider: 'vault',
      keyName: 'parley-audit-kek',
      auth: { method: 'kubernetes', role: 'parley-audit' },
    });
  });

  it("mounts audit's sealed signing key read-only from one Secret, so every replica signs with the same key", () => {
    const pod = deploymentOf(chart.objects, 'audit').spec.template.spec;
    const mount = pod.containers[0].volumeMounts.find((m: any) => m.name === 'audit-signing-key');
    expect(mount).toEqual({ name: 'audit-signing-key', mountPath: '/var/run/parley/audit-signing-key', readOnly: true });
    const volume = pod.volumes.find((v: any) => v.name === 'audit-signing-key');
    expect(volume.secret).toMatchObject({
      secretName: 'parley-audit-signing-key',
      items: [{ key: 'signing-key.json', path: 'signing-key.json' }],
    });
  });
});
