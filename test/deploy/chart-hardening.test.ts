/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// The chart's hardening: security contexts, resources, probes, no API tokens or inline
// credentials, the migration hook and per-service certificates.
import { expect, it } from 'vitest';
import { SERVICE_NAMES } from '@parley/platform';
import { byKind, named, NAMESPACE, RELEASE, template } from './render.js';
import { VAULT_SERVICES, containersOf, podsOf, deploymentOf, envOf, describeHardenedChart } from './chart-fixture.js';

describeHardenedChart((chart) => {
  it('runs every container non-root, read-only, without capabilities or privilege escalation, under seccomp', () => {
    const pods = podsOf(chart.objects);
    expect(pods.length).toBe(SERVICE_NAMES.length + 1);
    for (const [where, pod] of pods) {
      expect(pod.securityContext?.runAsNonRoot, where).toBe(true);
      expect(pod.securityContext?.seccompProfile?.type, where).toBe('RuntimeDefault');
      expect(pod.hostNetwork ?? false, where).toBe(false);
      for (const c of containersOf(pod)) {
        const sc = c.securityContext ?? {};
        expect(sc.runAsNonRoot, where).toBe(true);
        expect(sc.readOnlyRootFilesystem, where).toBe(true);
        expect(sc.allowPrivilegeEscalation, where).toBe(false);
        expect(sc.capabilities?.drop, where).toEqual(['ALL']);
        expect(sc.capabilities?.add, where).toBeUndefined();
        expect(sc.seccompProfile?.type, where).toBe('RuntimeDefault');
      }
    }
  });

  it('sets CPU and memory requests and a memory limit on every container', () => {
    for (const [where, pod] of podsOf(chart.objects)) {
      for (const c of containersOf(pod)) {
        expect(c.resources?.requests?.cpu, where).toBeDefined();
        expect(c.resources?.requests?.memory, where).toBeDefined();
        expect(c.resources?.limits?.memory, where).toBeDefined();
      }
    }
  });

  it('probes every service on its plain health port: /healthz for startup and liveness, /readyz for readiness', () => {
    for (const service of SERVICE_NAMES) {
      const c = deploymentOf(chart.objects, service).spec.template.spec.containers[0];
      expect(c.ports.find((p: any) => p.name === 'health').containerPort).toBe(8081);
      expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    }
  });

  it('mounts no API token anywhere; only the services with a KEK in Vault get a token, with Vault as its audience', () => {
    for (const sa of byKind(chart.objects, 'ServiceAccount')) expect(sa.automountServiceAccountToken, sa.metadata.name).toBe(false);
    for (const [where, pod] of podsOf(chart.objects)) {
      expect(pod.automountServiceAccountToken, where).toBe(false);
      const tokens = (pod.volumes ?? []).flatMap((v: any) => (v.projected?.sources ?? []).filter((s: any) => s.serviceAccountToken));
      if (VAULT_SERVICES.some((s) => where === `Deployment/${RELEASE}-${s}`)) {
        expect(tokens.map((t: any) => t.serviceAccountToken.audience)).toEqual(['vault']);
      } else {
        expect(tokens, where).toEqual([]);
      }
    }
  });

  it('inlines no credential: no Secret chart.objects, secrets only by secretKeyRef, no passwords in URLs, no PEM', async () => {
    expect(byKind(chart.objects, 'Secret')).toEqual([]);
    expect(byKind(chart.objects, 'ConfigMap')).toEqual([]);
    const mustBeRefs =
      /^(DATABASE_URL|VAULT_TOKEN|PARLEY_VAULT_SECRET_ID|PARLEY_DB_PASSWORD_.*|PARLEY_API_KEY_PEPPER|PARLEY_SUBJECT_HASH_PEPPER)$/;
    for (const [where, pod] of podsOf(chart.objects)) {
      for (const c of containersOf(pod)) {
        for (const env of c.env ?? []) {
          if (mustBeRefs.test(env.name)) {
            expect(env.value, `${where} ${env.name}`).toBeUndefined();
            expect(env.valueFrom?.secretKeyRef?.name, `${where} ${env.name}`).toBeDefined();
          }
          if (env.value !== undefined) expect(String(env.value), `${where} ${env.name}`).not.toMatch(/:\/\/[^/@\s]+:[^/@\s]+@/);
          // Vault credentials only ever as files: the *_FILE variables hold paths, never the token.
          if (/^PARLEY_VAULT_(TOKEN|APPROLE_SECRET_ID)/.test(env.name)) expect(env.name, where).toMatch(/_FILE$/);
        }
      }
    }
    const text = (await template(chart.files)).stdout;
    expect(text).not.toContain('-----BEGIN');
  });

  it('runs migrations as a pre-install/pre-upgrade hook with the migrator URL from a Secret', () => {
    const job = named(chart.objects, 'Job', `${RELEASE}-migrations`);
    expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const c = job.spec.template.spec.containers[0];
    expect(c.command).toEqual(['node', 'packages/db/dist/cli.js', 'migrate']);
    expect(c.env.find((e: any) => e.name === 'DATABASE_URL').valueFrom.secretKeyRef).toEqual({ name: 'parley-database', key: 'migrator' });
  });

  it('gives each service a certificate with its SPIFFE ID and its Service DNS names, mounted as a whole Secret', () => {
    const trustDomain = chart.label === 'production values' ? 'parley.example.com' : 'parley.local';
    for (const service of SERVICE_NAMES) {
      const cert = named(chart.objects, 'Certificate', `${RELEASE}-${service}`);
      expect(cert.spec.uris).toEqual([`spiffe://${trustDomain}/${service}`]);
      expect(cert.spec.dnsNames).toContain(`${RELEASE}-${service}.${NAMESPACE}.svc`);
      expect(cert.spec.usages).toEqual(expect.arrayContaining(['server auth', 'client auth']));
      const pod = deploymentOf(chart.objects, service).spec.template.spec;
      const tls = pod.volumes.find((v: any) => v.name === 'tls');
      expect(tls.secret.secretName).toBe(cert.spec.secretName);
      const mount = pod.containers[0].volumeMounts.find((m: any) => m.name === 'tls');
      // subPath mounts are never updated by the kubelet: the reload-without-restart needs the directory.
      expect(mount).toEqual({ name: 'tls', mountPath: '/var/run/parley/tls', readOnly: true });
      const env = envOf(deploymentOf(chart.objects, service));
      expect(env.get('PARLEY_TLS_CERT').value).toBe('/var/run/parley/tls/tls.crt');
      expect(env.get('PARLEY_TRUST_DOMAIN').value).toBe(trustDomain);
    }
  });
});
