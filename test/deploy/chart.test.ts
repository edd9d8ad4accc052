/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAuditConfig } from '@parley/audit';
import { loadEdgeConfig } from '@parley/edge/config';
import { loadDataKeyCacheConfig, loadKekProviderConfig, secretsServiceVaultPolicy } from '@parley/envelope';
import { loadKernelConfig, SERVICE_NAMES, type Env, type ServiceName } from '@parley/platform';
import { classifyAddress } from '@parley/egress';
import { loadIntegrationsConfig } from '@parley/integrations';
import { loadOrchestratorConfig } from '@parley/voice-orchestrator';
import { loadTenantDataConfig } from '@parley/tenant-data';
import { ensureHelm, runHelm } from '../src/helm.js';
import { byKind, CHART, type K8sObject, named, NAMESPACE, render, RELEASE, template, validateAgainstSchema, valuesFile } from './render.js';
import { deriveServiceGraph, edgeSet, loadCallerPolicies, parseServiceGraph, SERVICE_GRAPH_PATH, type ServiceGraph } from './service-graph.js';

const root = join(import.meta.dirname, '..', '..');
const PRODUCTION = 'deploy/parley/ci/production-values.yaml';
const DEV = 'deploy/dev/values.yaml';
const COMPONENT = 'app.kubernetes.io/component';

/** The values files a platform engineer would install with: the hardening rules hold for all of them. */
const HARDENED: Record<string, string[]> = { 'default values': [], 'production values': [PRODUCTION] };

/** VAULT_SERVICES keep a key-encryption key in Vault (they seal keys with @parley/envelope): only they may reach it. */
const VAULT_SERVICES: readonly ServiceName[] = ['secrets', 'identity', 'audit'];

/** How a required variable must be supplied: a plain value, a Secret reference, or the path of a file in a mounted volume. */
type Supply = 'value' | 'secretRef' | 'mountedFile';

/** KERNEL_ENV is what every service's kernel (packages/platform/src/config.ts) reads without a usable default in a pod. */
const KERNEL_ENV: Record<string, Supply> = {
  PARLEY_HOST: 'value', // the default 127.0.0.1 would be unreachable from other pods
  PARLEY_SERVICE_PORT: 'value',
  PARLEY_HEALTH_PORT: 'value',
  PARLEY_TLS_CERT: 'mountedFile',
  PARLEY_TLS_KEY: 'mountedFile',
  PARLEY_TLS_CA: 'mountedFile',
  PARLEY_TRUST_DOMAIN: 'value',
  DATABASE_URL: 'secretRef',
};

/**
 * KEK_ENV is what @parley/envelope's loadKekProviderConfig needs in a pod with Kubernetes auth:
 * without PARLEY_KEK_PROVIDER it falls back to a local keyring under $HOME, which the read-only
 * root filesystem refuses.
 */
const KEK_ENV: Record<string, Supply> = {
  PARLEY_KEK_PROVIDER: 'value',
  PARLEY_VAULT_ADDR: 'value',
  PARLEY_VAULT_TRANSIT_MOUNT: 'value',
  PARLEY_VAULT_TRANSIT_KEY: 'value',
  PARLEY_VAULT_AUTH: 'value',
  PARLEY_VAULT_K8S_ROLE: 'value', // the default, parley-secrets, is the secrets service's role
  PARLEY_VAULT_K8S_JWT_PATH: 'mountedFile',
};

/**
 * REQUIRED_ENV is, per service, every variable it needs to start in a pod, read off its config
 * loader (services/<name>/src/config.ts and main.ts, packages/envelope/src/config.ts): variables
 * without a default, and those whose default is wrong in Kubernetes (localhost addresses,
 * the dev folder, the local keyring). Peer URLs are checked separately.
 */
const REQUIRED_ENV: Record<ServiceName, Record<string, Supply>> = {
  edge: { ...KERNEL_ENV, PARLEY_PUBLIC_PORT: 'value' },
  identity: {
    ...KERNEL_ENV,
    ...KEK_ENV,
    PARLEY_API_KEY_PEPPER: 'secretRef',
    PARLEY_SESSION_PUBLIC_URL: 'value', // default https://localhost:7401
    PARLEY_SESSION_ISSUER: 'value',
    PARLEY_SESSION_AUDIENCE: 'value',
    PARLEY_AUDIT_URL: 'value', // the audit outbox relay only runs when it is set
  },
  secrets: { ...KERNEL_ENV, ...KEK_ENV, PARLEY_SECRET_VERSION_GRACE_MS: 'value', PARLEY_DEK_CACHE: 'value' },
  'tenant-data': { ...KERNEL_ENV, PARLEY_SUBJECT_HASH_PEPPER: 'secretRef' },
  audit: { ...KERNEL_ENV, ...KEK_ENV, PARLEY_AUDIT_SIGNING_KEY_PATH: 'mountedFile' },
  lifecycle: { ...KERNEL_ENV },
  'voice-orchestrator': { ...KERNEL_ENV, PARLEY_PUBLIC_PORT: 'value' },
  integrations: { ...KERNEL_ENV },
};

/** PEER_CALLS lists the peers each service's main.ts builds a client for (ctx.clientFor): their URL variables must be set. */
const PEER_CALLS: Partial<Record<ServiceName, ServiceName[]>> = {
  edge: ['identity'],
  identity: ['tenant-data', 'audit'],
  secrets: ['tenant-data'],
};

/** mountOf finds the volume mount that holds a file path, or undefined. */
function mountOf(container: any, path: string): any {
  return (container.volumeMounts ?? []).find((m: any) => path.startsWith(`${m.mountPath}/`));
}

/**
 * renderedEnv turns a rendered container's env into the environment the process would see:
 * Secret references become stand-in values of the shape the loaders check (a postgres URL,
 * 48 bytes of base64), so the loaders can be run against what the chart renders.
 */
function renderedEnv(container: any): Env {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.secretKeyRef !== undefined) env[e.name] = e.name === 'DATABASE_URL' ? 'postgres://role:password@db:5432/parley' : Buffer.alloc(48, 7).toString('base64');
  }
  return env;
}

function containersOf(pod: any): any[] {
  return [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
}

/** podsOf returns [where, podSpec] for every workload that runs pods. */
function podsOf(objects: readonly K8sObject[]): [string, any][] {
  return objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'Job')
    .map((o) => [`${o.kind}/${o.metadata.name}`, o.spec.template.spec] as [string, any]);
}

function deploymentOf(objects: readonly K8sObject[], service: ServiceName): K8sObject {
  return named(objects, 'Deployment', `${RELEASE}-${service}`);
}

function envOf(deployment: K8sObject): Map<string, any> {
  return new Map((deployment.spec.template.spec.containers[0].env as any[]).map((e) => [e.name, e]));
}

/** ruleEdges reads service-to-service edges back out of the rendered NetworkPolicies. */
function networkPolicyEdges(objects: readonly K8sObject[], servicePort: number): { ingress: string[]; egress: string[] } {
  const ingress: string[] = [];
  const egress: string[] = [];
  for (const policy of byKind(objects, 'NetworkPolicy')) {
    const self = policy.spec.podSelector?.matchLabels?.[COMPONENT] as string | undefined;
    if (self === undefined || !(SERVICE_NAMES as readonly string[]).includes(self)) continue;
    for (const rule of policy.spec.ingress ?? []) {
      if (!(rule.ports ?? []).some((p: any) => p.port === servicePort)) continue;
      expect(rule.from, `${policy.metadata.name}: an ingress rule on the mTLS port must name its callers`).toBeDefined();
      for (const peer of rule.from) ingress.push(`${peer.podSelector.matchLabels[COMPONENT]} -> ${self}`);
    }
    for (const rule of policy.spec.egress ?? []) {
      if (!(rule.ports ?? []).some((p: any) => p.port === servicePort)) continue;
      for (const peer of rule.to ?? []) {
        const target = peer.podSelector?.matchLabels?.[COMPONENT];
        if (target !== undefined) egress.push(`${self} -> ${target}`);
      }
    }
  }
  return { ingress: ingress.sort(), egress: egress.sort() };
}

beforeAll(async () => {
  await ensureHelm();
}, 120_000);

describe('the Parley chart', () => {
  const committedGraph: ServiceGraph = parseServiceGraph(readFileSync(join(root, SERVICE_GRAPH_PATH), 'utf8'));

  for (const [label, files] of Object.entries({ ...HARDENED, 'Tilt dev values': [DEV] })) {
    describe(`with ${label}`, () => {
      let objects: K8sObject[];
      beforeAll(async () => {
        objects = await render(files);
      });

      it('passes helm lint', async () => {
        const result = await runHelm(['lint', CHART, '--strict', ...files.flatMap((f) => ['--values', f])]);
        expect(result.code, result.stdout + result.stderr).toBe(0);
      });

      it('validates every rendered object against the Kubernetes API schema of its kind', async () => {
        expect(objects.length).toBeGreaterThan(40);
        const problems = (await Promise.all(objects.map(validateAgainstSchema))).filter((p) => p !== undefined);
        expect(problems).toEqual([]);
      });

      it('renders for every service a Deployment, headless Service, ServiceAccount, Certificate and NetworkPolicy', () => {
        for (const service of SERVICE_NAMES) {
          const name = `${RELEASE}-${service}`;
          for (const kind of ['Deployment', 'Service', 'ServiceAccount', 'Certificate', 'NetworkPolicy']) named(objects, kind, name);
          expect(named(objects, 'Service', name).spec.clusterIP).toBe('None');
        }
      });

      it('derives the NetworkPolicy edges from files/service-graph.json, both ways', () => {
        const edges = networkPolicyEdges(objects, 8443);
        expect(edges.ingress).toEqual(edgeSet(committedGraph));
        expect(edges.egress).toEqual(edgeSet(committedGraph));
      });

      it("has exactly the service-to-service edges that the services' caller allow-lists permit", async () => {
        const derived = deriveServiceGraph(await loadCallerPolicies(root));
        expect(networkPolicyEdges(objects, 8443).ingress).toEqual(edgeSet(derived));
      });
    });
  }

  for (const [label, files] of Object.entries(HARDENED)) {
    describe(`hardening with ${label}`, () => {
      let objects: K8sObject[];
      beforeAll(async () => {
        objects = await render(files);
      });

      it('runs every container non-root, read-only, without capabilities or privilege escalation, under seccomp', () => {
        const pods = podsOf(objects);
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
        for (const [where, pod] of podsOf(objects)) {
          for (const c of containersOf(pod)) {
            expect(c.resources?.requests?.cpu, where).toBeDefined();
            expect(c.resources?.requests?.memory, where).toBeDefined();
            expect(c.resources?.limits?.memory, where).toBeDefined();
          }
        }
      });

      it('probes every service on its plain health port: /healthz for startup and liveness, /readyz for readiness', () => {
        for (const service of SERVICE_NAMES) {
          const c = deploymentOf(objects, service).spec.template.spec.containers[0];
          expect(c.ports.find((p: any) => p.name === 'health').containerPort).toBe(8081);
          expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
          expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
          expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
        }
      });

      it('mounts no API token anywhere; only the services with a KEK in Vault get a token, with Vault as its audience', () => {
        for (const sa of byKind(objects, 'ServiceAccount')) expect(sa.automountServiceAccountToken, sa.metadata.name).toBe(false);
        for (const [where, pod] of podsOf(objects)) {
          expect(pod.automountServiceAccountToken, where).toBe(false);
          const tokens = (pod.volumes ?? []).flatMap((v: any) => (v.projected?.sources ?? []).filter((s: any) => s.serviceAccountToken));
          if (VAULT_SERVICES.some((s) => where === `Deployment/${RELEASE}-${s}`)) {
            expect(tokens.map((t: any) => t.serviceAccountToken.audience)).toEqual(['vault']);
          } else {
            expect(tokens, where).toEqual([]);
          }
        }
      });

      it('inlines no credential: no Secret objects, secrets only by secretKeyRef, no passwords in URLs, no PEM', async () => {
        expect(byKind(objects, 'Secret')).toEqual([]);
        expect(byKind(objects, 'ConfigMap')).toEqual([]);
        const mustBeRefs = /^(DATABASE_URL|VAULT_TOKEN|PARLEY_VAULT_SECRET_ID|PARLEY_DB_PASSWORD_.*|PARLEY_API_KEY_PEPPER|PARLEY_SUBJECT_HASH_PEPPER)$/;
        for (const [where, pod] of podsOf(objects)) {
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
        const text = (await template(files)).stdout;
        expect(text).not.toContain('-----BEGIN');
      });

      it('runs migrations as a pre-install/pre-upgrade hook with the migrator URL from a Secret', () => {
        const job = named(objects, 'Job', `${RELEASE}-migrations`);
        expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
        const c = job.spec.template.spec.containers[0];
        expect(c.command).toEqual(['node', 'packages/db/dist/cli.js', 'migrate']);
        expect(c.env.find((e: any) => e.name === 'DATABASE_URL').valueFrom.secretKeyRef).toEqual({ name: 'parley-database', key: 'migrator' });
      });

      it('gives each service a certificate with its SPIFFE ID and its Service DNS names, mounted as a whole Secret', () => {
        const trustDomain = label === 'production values' ? 'parley.example.com' : 'parley.local';
        for (const service of SERVICE_NAMES) {
          const cert = named(objects, 'Certificate', `${RELEASE}-${service}`);
          expect(cert.spec.uris).toEqual([`spiffe://${trustDomain}/${service}`]);
          expect(cert.spec.dnsNames).toContain(`${RELEASE}-${service}.${NAMESPACE}.svc`);
          expect(cert.spec.usages).toEqual(expect.arrayContaining(['server auth', 'client auth']));
          const pod = deploymentOf(objects, service).spec.template.spec;
          const tls = pod.volumes.find((v: any) => v.name === 'tls');
          expect(tls.secret.secretName).toBe(cert.spec.secretName);
          const mount = pod.containers[0].volumeMounts.find((m: any) => m.name === 'tls');
          // subPath mounts are never updated by the kubelet: the reload-without-restart needs the directory.
          expect(mount).toEqual({ name: 'tls', mountPath: '/var/run/parley/tls', readOnly: true });
          const env = envOf(deploymentOf(objects, service));
          expect(env.get('PARLEY_TLS_CERT').value).toBe('/var/run/parley/tls/tls.crt');
          expect(env.get('PARLEY_TRUST_DOMAIN').value).toBe(trustDomain);
        }
      });

      it('tells every service its peers by PARLEY_<SERVICE>_URL and its database by a Secret reference', () => {
        const env = envOf(deploymentOf(objects, 'voice-orchestrator'));
        expect(env.get('PARLEY_TENANT_DATA_URL').value).toBe(`https://${RELEASE}-tenant-data.${NAMESPACE}.svc:8443`);
        expect(env.has('PARLEY_VOICE_ORCHESTRATOR_URL')).toBe(false);
        expect(env.get('PARLEY_PUBLIC_PORT').value).toBe('8080');
        expect(env.get('DATABASE_URL').valueFrom.secretKeyRef).toEqual({ name: 'parley-database', key: 'voice-orchestrator' });
        expect(env.get('PARLEY_HOST').value).toBe('0.0.0.0');
      });

      it('configures Vault on the services with a KEK only, each with its own role and transit key', () => {
        const env = envOf(deploymentOf(objects, 'secrets'));
        expect(env.get('PARLEY_KEK_PROVIDER').value).toBe('vault');
        expect(env.get('PARLEY_VAULT_AUTH').value).toBe('kubernetes');
        expect(env.get('PARLEY_VAULT_TRANSIT_KEY').value).toBe('parley-kek');
        const own = { secrets: ['parley-secrets', 'parley-kek'], identity: ['parley-identity', 'parley-identity-kek'], audit: ['parley-audit', 'parley-audit-kek'] };
        for (const [service, [role, key]] of Object.entries(own)) {
          const e = envOf(deploymentOf(objects, service as ServiceName));
          expect([e.get('PARLEY_VAULT_K8S_ROLE')?.value, e.get('PARLEY_VAULT_TRANSIT_KEY')?.value], service).toEqual([role, key]);
        }
        for (const service of SERVICE_NAMES.filter((s) => !VAULT_SERVICES.includes(s))) {
          expect(envOf(deploymentOf(objects, service)).has('VAULT_ADDR'), service).toBe(false);
          expect(envOf(deploymentOf(objects, service)).has('PARLEY_VAULT_ADDR'), service).toBe(false);
          expect(envOf(deploymentOf(objects, service)).has('PARLEY_KEK_PROVIDER'), service).toBe(false);
        }
      });

      it('gives every service each variable its config loader requires, supplied the right way', () => {
        for (const service of SERVICE_NAMES) {
          const container = deploymentOf(objects, service).spec.template.spec.containers[0];
          const env = envOf(deploymentOf(objects, service));
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
            if (supply === 'mountedFile') expect(mountOf(container, entry.value), `${service} ${name}=${entry.value} is in no mounted volume`).toBeDefined();
          }
        }
      });

      it("renders an environment that the services' own config loaders accept", () => {
        for (const service of SERVICE_NAMES) {
          const env = renderedEnv(deploymentOf(objects, service).spec.template.spec.containers[0]);
          const kernel = loadKernelConfig(service, '0.0.0', env);
          expect(kernel.host, service).toBe('0.0.0.0');
          for (const peer of PEER_CALLS[service] ?? []) expect(kernel.peers[peer], `${service} -> ${peer}`).toMatch(/^https:\/\//);
          if (VAULT_SERVICES.includes(service)) {
            const kek = loadKekProviderConfig(env);
            expect(kek.provider, service).toBe('vault');
          }
        }
        const secretsEnv = renderedEnv(deploymentOf(objects, 'secrets').spec.template.spec.containers[0]);
        expect(loadDataKeyCacheConfig(secretsEnv).enabled).toBe(true);
        const tenantData = loadTenantDataConfig(renderedEnv(deploymentOf(objects, 'tenant-data').spec.template.spec.containers[0]));
        expect(tenantData.subjectHashPepper.byteLength).toBeGreaterThanOrEqual(32);
        const edge = loadEdgeConfig(renderedEnv(deploymentOf(objects, 'edge').spec.template.spec.containers[0]));
        expect(edge.limits).toEqual({
          maxConcurrentStreams: 100,
          maxConnectionsPerAddress: 64,
          headersTimeoutMs: 10000,
          requestTimeoutMs: 30000,
          idleTimeoutMs: 120000,
          streamResetBurst: 200,
          streamResetRate: 33,
        });
        const audit = loadAuditConfig(renderedEnv(deploymentOf(objects, 'audit').spec.template.spec.containers[0]));
        expect(audit.signingKeyPath).toBe('/var/run/parley/audit-signing-key/signing-key.json');
        expect(audit.kek).toMatchObject({ provider: 'vault', keyName: 'parley-audit-kek', auth: { method: 'kubernetes', role: 'parley-audit' } });
      });

      it("mounts audit's sealed signing key read-only from one Secret, so every replica signs with the same key", () => {
        const pod = deploymentOf(objects, 'audit').spec.template.spec;
        const mount = pod.containers[0].volumeMounts.find((m: any) => m.name === 'audit-signing-key');
        expect(mount).toEqual({ name: 'audit-signing-key', mountPath: '/var/run/parley/audit-signing-key', readOnly: true });
        const volume = pod.volumes.find((v: any) => v.name === 'audit-signing-key');
        expect(volume.secret).toMatchObject({ secretName: 'parley-audit-signing-key', items: [{ key: 'signing-key.json', path: 'signing-key.json' }] });
      });

      it('denies by default and opens DNS to every service, Vault to the services with a KEK only, the internet to integrations and the orchestrator only', () => {
        const deny = named(objects, 'NetworkPolicy', `${RELEASE}-default-deny`);
        expect(deny.spec.policyTypes).toEqual(['Ingress', 'Egress']);
        expect(deny.spec.ingress).toBeUndefined();
        expect(deny.spec.egress).toBeUndefined();
        for (const service of SERVICE_NAMES) {
          const policy = named(objects, 'NetworkPolicy', `${RELEASE}-${service}`);
          expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
          const egress: any[] = policy.spec.egress;
          // Every egress rule names its destinations: a rule without `to` would allow all of them.
          for (const rule of egress) expect(rule.to?.length, service).toBeGreaterThan(0);
          expect(egress.some((r) => r.ports.some((p: any) => p.port === 53 && p.protocol === 'UDP')), service).toBe(true);
          const ports = egress.flatMap((r) => r.ports ?? []).map((p: any) => p.port);
          expect(ports.includes(8200), `${service} reaches Vault`).toBe(VAULT_SERVICES.includes(service));
          const internet = egress.some((r) => r.to.some((peer: any) => peer.ipBlock?.cidr === '0.0.0.0/0'));
          expect(internet, `${service} reaches the internet`).toBe(service === 'integrations' || service === 'voice-orchestrator');
          expect(ports, service).toContain(5432);
        }
      });

      it('lets the orchestrator reach providers on 443 only, never private, loopback or metadata ranges', () => {
        const egress: any[] = named(objects, 'NetworkPolicy', `${RELEASE}-voice-orchestrator`).spec.egress;
        const internet = egress.find((r) => r.to.some((peer: any) => peer.ipBlock?.cidr === '0.0.0.0/0'));
        expect(internet.ports).toEqual([{ protocol: 'TCP', port: 443 }]);
        const v4 = internet.to.find((peer: any) => peer.ipBlock.cidr === '0.0.0.0/0').ipBlock.except;
        for (const range of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '127.0.0.0/8', '100.64.0.0/10'])
          expect(v4, range).toContain(range);
        const v6 = internet.to.find((peer: any) => peer.ipBlock.cidr === '::/0').ipBlock.except;
        for (const range of ['::1/128', 'fc00::/7', 'fe80::/10']) expect(v6, range).toContain(range);
      });

      it('exposes the public port of the edge and the orchestrator only', () => {
        for (const service of SERVICE_NAMES) {
          const publicService = objects.find((o) => o.kind === 'Service' && o.metadata.name === `${RELEASE}-${service}-public`);
          const ingressPorts = (named(objects, 'NetworkPolicy', `${RELEASE}-${service}`).spec.ingress as any[]).flatMap((r) => r.ports.map((p: any) => p.port));
          const isPublic = service === 'edge' || service === 'voice-orchestrator';
          expect(publicService !== undefined, service).toBe(isPublic);
          expect(ingressPorts.includes(8080), service).toBe(isPublic);
        }
      });

      it('keeps a PodDisruptionBudget and spreads pods over nodes and zones', () => {
        for (const service of SERVICE_NAMES) {
          expect(named(objects, 'PodDisruptionBudget', `${RELEASE}-${service}`).spec.maxUnavailable).toBe(1);
          const spread = deploymentOf(objects, service).spec.template.spec.topologySpreadConstraints as any[];
          expect(spread.map((c) => c.topologyKey)).toContain('topology.kubernetes.io/zone');
        }
      });
    });
  }

  describe('production values', () => {
    let objects: K8sObject[];
    beforeAll(async () => {
      objects = await render([PRODUCTION]);
    });

    it('scales every service with an HPA from 3 replicas and leaves replicas to it', () => {
      for (const service of SERVICE_NAMES) {
        const hpa = named(objects, 'HorizontalPodAutoscaler', `${RELEASE}-${service}`);
        expect(hpa.spec.minReplicas).toBe(3);
        expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: `${RELEASE}-${service}` });
        expect(deploymentOf(objects, service).spec.replicas).toBeUndefined();
      }
    });

    it('routes the two public hosts through the Ingress and admits only the ingress controller to the public ports', () => {
      const ingress = named(objects, 'Ingress', RELEASE);
      const backends = (ingress.spec.rules as any[]).map((r) => [r.host, r.http.paths[0].backend.service.name]);
      expect(backends).toEqual([
        ['api.parley.example.com', `${RELEASE}-edge-public`],
        ['sessions.parley.example.com', `${RELEASE}-voice-orchestrator-public`],
      ]);
      const edgePublicRule = (named(objects, 'NetworkPolicy', `${RELEASE}-edge`).spec.ingress as any[]).find((r) => r.ports[0].port === 8080);
      expect(edgePublicRule.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }]);
    });

    it('uses the external CA issuer and creates no CA of its own', () => {
      expect(byKind(objects, 'Issuer')).toEqual([]);
      expect(named(objects, 'Certificate', `${RELEASE}-audit`).spec.issuerRef).toEqual({ name: 'parley-services-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    });

    it('reaches the external Postgres by CIDR and exports traces to the collector', () => {
      const egress = named(objects, 'NetworkPolicy', `${RELEASE}-audit`).spec.egress as any[];
      expect(egress).toContainEqual({ to: [{ ipBlock: { cidr: '10.40.12.0/24' } }], ports: [{ protocol: 'TCP', port: 5432 }] });
      expect(envOf(deploymentOf(objects, 'audit')).get('OTEL_EXPORTER_OTLP_ENDPOINT').value).toBe('http://otel-collector.observability.svc:4318');
    });
  });

  describe('values', () => {
    it('gives integrations and the orchestrator the same egress ports and private allow-list in their NetworkPolicy and their egress client', async () => {
      const objects = await render([
        valuesFile(
          'services:\n  integrations:\n    internetEgress:\n      enabled: true\n      ports: [443, 8443]\n      allowPrivate: [10.20.0.0/16, 192.0.2.10, hooks.corp.example]\n',
        ),
      ]);
      const env = renderedEnv(deploymentOf(objects, 'integrations').spec.template.spec.containers[0]);
      expect([env.PARLEY_EGRESS_ALLOWED_PORTS, env.PARLEY_EGRESS_ALLOW_PRIVATE]).toEqual(['443,8443', '10.20.0.0/16,192.0.2.10,hooks.corp.example']);
      const config = loadIntegrationsConfig(env);
      expect(config.egressPolicy.allowedPorts).toEqual([443, 8443]);
      expect(config.egressPolicy.allowPrivate.map((e) => e.text)).toEqual(['10.20.0.0/16', '192.0.2.10', 'hooks.corp.example']);
      const egress: any[] = named(objects, 'NetworkPolicy', `${RELEASE}-integrations`).spec.egress;
      const internet = egress.find((r) => r.to.some((peer: any) => peer.ipBlock?.cidr === '0.0.0.0/0'));
      expect(internet.ports.map((p: any) => p.port)).toEqual([443, 8443]);
      const privateRule = egress.find((r) => r.to.some((peer: any) => peer.ipBlock?.cidr === '10.20.0.0/16'));
      expect(privateRule.to).toEqual([{ ipBlock: { cidr: '10.20.0.0/16' } }, { ipBlock: { cidr: '192.0.2.10/32' } }]);
      expect(privateRule.ports.map((p: any) => p.port)).toEqual([443, 8443]);
      const orchestratorEnv = renderedEnv(deploymentOf(objects, 'voice-orchestrator').spec.template.spec.containers[0]);
      expect([orchestratorEnv.PARLEY_EGRESS_ALLOWED_PORTS, orchestratorEnv.PARLEY_EGRESS_ALLOW_PRIVATE]).toEqual(['443', '']);
      const orchestratorConfig = loadOrchestratorConfig(orchestratorEnv);
      expect(orchestratorConfig.egressPolicy.allowedPorts).toEqual([443]);
      expect(orchestratorConfig.egressPolicy.allowPrivate).toEqual([]);
      expect(renderedEnv(deploymentOf(objects, 'tenant-data').spec.template.spec.containers[0]).PARLEY_EGRESS_ALLOWED_PORTS).toBeUndefined();
    });

    it('excludes from the internet rule only ranges that @parley/egress refuses too', async () => {
      const objects = await render();
      const internet = (named(objects, 'NetworkPolicy', `${RELEASE}-integrations`).spec.egress as any[]).find((r) =>
        r.to.some((peer: any) => peer.ipBlock?.cidr === '0.0.0.0/0'),
      );
      const excepts: string[] = internet.to.flatMap((peer: any) => peer.ipBlock.except);
      for (const name of ['169.254.0.0/16', '10.0.0.0/8', '100.64.0.0/10', '8000::/1', '2002::/16', '::/3']) expect(excepts).toContain(name);
      for (const cidr of excepts) {
        const first = cidr.split('/')[0]!;
        // The first address of every excluded range is one egress refuses, so chart and client agree.
        expect(classifyAddress(first === '::' ? '::1' : first).public, cidr).toBe(false);
      }
    });

    it('let one service override a default with false', async () => {
      const objects = await render([valuesFile('services:\n  lifecycle:\n    podDisruptionBudget:\n      enabled: false\n    replicas: 1\n')]);
      expect(objects.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === `${RELEASE}-lifecycle`)).toBe(false);
      expect(deploymentOf(objects, 'lifecycle').spec.replicas).toBe(1);
      expect(named(objects, 'PodDisruptionBudget', `${RELEASE}-audit`)).toBeDefined();
      expect(deploymentOf(objects, 'audit').spec.replicas).toBe(2);
    });

    it("mount audit's checkpoint witness volume and give each pod its own append-only file there", async () => {
      const objects = await render([valuesFile('config:\n  audit:\n    witness:\n      existingClaim: parley-audit-witness\n')]);
      const pod = deploymentOf(objects, 'audit').spec.template.spec;
      const container = pod.containers[0];
      const env = envOf(deploymentOf(objects, 'audit'));
      expect(env.get('PARLEY_POD_NAME').valueFrom.fieldRef.fieldPath).toBe('metadata.name');
      const path = env.get('PARLEY_AUDIT_WITNESS_PATH').value as string;
      expect(path).toBe('/var/run/parley/audit-witness/witness-$(PARLEY_POD_NAME).ndjson');
      expect(mountOf(container, path)).toMatchObject({ name: 'audit-witness' });
      expect(pod.volumes.find((v: any) => v.name === 'audit-witness').persistentVolumeClaim).toEqual({ claimName: 'parley-audit-witness' });
      expect(loadAuditConfig(renderedEnv(container)).witnessPath).toBe(path);
      // Without a claim there is no witness variable (audit warns at start instead).
      expect(envOf(deploymentOf(await render([]), 'audit')).has('PARLEY_AUDIT_WITNESS_PATH')).toBe(false);
    });

    it('render a Gateway API route per public port when the gateway is enabled', async () => {
      const objects = await render([
        valuesFile('exposure:\n  gateway:\n    enabled: true\n    parentRefs: [{name: public, namespace: gateways}]\n    edge: {hostnames: [api.example.com]}\n'),
      ]);
      const routes = byKind(objects, 'HTTPRoute');
      expect(routes.map((r) => r.spec.rules[0].backendRefs[0].name)).toEqual([`${RELEASE}-edge-public`, `${RELEASE}-voice-orchestrator-public`]);
      for (const route of routes) expect(await validateAgainstSchema(route)).toBeUndefined();
    });

    const refused: Record<string, [string, RegExp]> = {
      'an unknown top-level key': ['replicaCount: 3\n', /additional properties 'replicaCount' not allowed/],
      'an unknown key in the default block': ['default:\n  replica: 3\n', /additional properties 'replica' not allowed/],
      'an unknown key in a service': ['services:\n  edge:\n    autoscaling:\n      enabeld: true\n', /additional properties 'enabeld' not allowed/],
      'an unknown service': ['services:\n  billing: {}\n', /additional properties 'billing' not allowed/],
      'replicas as a string': ['default:\n  replicas: "three"\n', /replicas.*want integer/],
      'a port out of range': ['ports:\n  service: 70000\n', /service/],
      'a log level that does not exist': ['services:\n  audit:\n    logLevel: verbose\n', /logLevel/],
      'a Vault auth method that does not exist': ['vault:\n  auth:\n    method: password\n', /method/],
      'a CIDR that is not one': ['database:\n  networkPolicy:\n    cidrs: [postgres.internal]\n', /cidrs/],
    };
    for (const [what, [yamlText, message]] of Object.entries(refused)) {
      it(`are refused by the schema when they carry ${what}`, async () => {
        const result = await template([valuesFile(yamlText)]);
        expect(result.code).not.toBe(0);
        expect(result.stderr).toMatch(/values don't meet the specifications of the schema/);
        expect(result.stderr).toMatch(message);
      });
    }

    it('refuse extra env that would shadow a variable the chart sets', async () => {
      const result = await template([valuesFile('services:\n  edge:\n    env:\n      DATABASE_URL: postgres://x\n')]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/services\.edge\.env\.DATABASE_URL: the chart sets DATABASE_URL itself/);
    });

    it('refuse a production install without the Secret of audit\'s sealed signing key', async () => {
      const result = await template([valuesFile('config:\n  audit:\n    signingKey:\n      existingSecret: ""\n')]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/config\.audit\.signingKey\.existingSecret/);
    });

    it('refuse a Vault client that is not one of the services with a KEK', async () => {
      const result = await template([valuesFile('vault:\n  services:\n    edge: {role: parley-edge, transitKey: k, credentialKey: edge}\n')]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/additional properties 'edge' not allowed/);
    });

    it('give each service only its own AppRole secret_id, as a file, with AppRole auth', async () => {
      const objects = await render([valuesFile('vault:\n  auth:\n    method: approle\n    existingSecret: parley-vault-approle\n  services:\n    identity: {role: 0f1e-role-id, transitKey: parley-identity-kek, credentialKey: identity-secret-id}\n')]);
      const pod = deploymentOf(objects, 'identity').spec.template.spec;
      const env = envOf(deploymentOf(objects, 'identity'));
      expect(env.get('PARLEY_VAULT_APPROLE_ROLE_ID').value).toBe('0f1e-role-id');
      expect(env.get('PARLEY_VAULT_APPROLE_SECRET_ID_FILE').value).toBe('/var/run/parley/vault-auth/secret-id');
      expect(pod.volumes.find((v: any) => v.name === 'vault-auth').secret).toMatchObject({ secretName: 'parley-vault-approle', items: [{ key: 'identity-secret-id', path: 'secret-id' }] });
      expect(mountOf(pod.containers[0], env.get('PARLEY_VAULT_APPROLE_SECRET_ID_FILE').value)).toMatchObject({ readOnly: true });
      // No projected Vault token without Kubernetes auth.
      expect(pod.volumes.some((v: any) => v.projected !== undefined)).toBe(false);
    });

    it('serve a cert-manager certificate for the public name on the edge when asked to', async () => {
      const objects = await render([
        valuesFile('config:\n  edge:\n    publicTls:\n      certificate:\n        enabled: true\n        dnsNames: [api.example.com]\n        issuerRef: {name: letsencrypt}\n'),
      ]);
      const cert = named(objects, 'Certificate', `${RELEASE}-edge-public`);
      expect(cert.spec.dnsNames).toEqual(['api.example.com']);
      expect(cert.spec.issuerRef).toEqual({ name: 'letsencrypt', kind: 'ClusterIssuer', group: 'cert-manager.io' });
      expect(await validateAgainstSchema(cert)).toBeUndefined();
      const pod = deploymentOf(objects, 'edge').spec.template.spec;
      expect(pod.volumes.find((v: any) => v.name === 'public-tls').secret.secretName).toBe(cert.spec.secretName);
      const env = envOf(deploymentOf(objects, 'edge'));
      expect(env.get('PARLEY_PUBLIC_TLS_CERT').value).toBe('/var/run/parley/public-tls/tls.crt');
      expect(mountOf(pod.containers[0], env.get('PARLEY_PUBLIC_TLS_KEY').value)).toBeDefined();
    });

    it('sign session URLs for the public session host, or the in-cluster Service without one', async () => {
      const sessionUrl = (objects: K8sObject[]) => envOf(deploymentOf(objects, 'identity')).get('PARLEY_SESSION_PUBLIC_URL').value;
      expect(sessionUrl(await render([]))).toBe(`https://${RELEASE}-voice-orchestrator-public.${NAMESPACE}.svc:8080`);
      expect(sessionUrl(await render([valuesFile('exposure:\n  ingress:\n    enabled: true\n    session: {host: talk.example.com, tlsSecretName: ""}\n')]))).toBe('https://talk.example.com');
    });

    it('refuse Vault token auth without a Secret to read the token from', async () => {
      const result = await template([valuesFile('vault:\n  auth:\n    method: token\n')]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/vault\.auth\.existingSecret/);
    });
  });

  describe('chart README', () => {
    const readme = readFileSync(join(root, CHART, 'README.md'), 'utf8');
    /** policyOf reads the `vault policy write <name>` heredoc of the README back into path -> capabilities. */
    const policyOf = (name: string): Record<string, string[]> => {
      const block = new RegExp(`vault policy write ${name} - <<'HCL'\\n([\\s\\S]*?)\\nHCL`).exec(readme)?.[1];
      expect(block, `README has no policy ${name}`).toBeDefined();
      const rules: Record<string, string[]> = {};
      for (const m of (block ?? '').matchAll(/path "([^"]+)"\s*\{\s*capabilities = \[([^\]]*)\]\s*\}/g)) {
        rules[m[1]!] = [...m[2]!.matchAll(/"([^"]+)"/g)].map((c) => c[1]!);
      }
      return rules;
    };

    it("documents the secrets service's Vault policy exactly as @parley/envelope renders it for the chart's transit key", () => {
      const expected = Object.fromEntries(secretsServiceVaultPolicy({ keyName: 'parley-kek' }).map((r) => [r.path, [...r.capabilities]]));
      expect(policyOf('parley-secrets')).toEqual(expected);
    });

    it('documents identity and audit policies that name only their own transit key and never rewrap, rotate or export', () => {
      for (const [name, key] of [['parley-identity', 'parley-identity-kek'], ['parley-audit', 'parley-audit-kek']] as const) {
        const transit = Object.keys(policyOf(name)).filter((p) => p.startsWith('transit/'));
        expect(transit.length, name).toBeGreaterThan(0);
        for (const path of transit) {
          expect(path.split('/')[2] === key || path.split('/')[3] === key, `${name}: ${path}`).toBe(true);
          expect(path, name).not.toMatch(/rewrap|rotate|config|export|trim/);
        }
      }
    });
  });
});
