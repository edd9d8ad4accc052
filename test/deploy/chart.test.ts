import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_NAMES, type ServiceName } from '@parley/platform';
import { ensureHelm, runHelm } from '../src/helm.js';
import { byKind, CHART, type K8sObject, named, NAMESPACE, render, RELEASE, template, validateAgainstSchema, valuesFile } from './render.js';
import { deriveServiceGraph, edgeSet, loadCallerPolicies, parseServiceGraph, SERVICE_GRAPH_PATH, type ServiceGraph } from './service-graph.js';

const root = join(import.meta.dirname, '..', '..');
const PRODUCTION = 'deploy/parley/ci/production-values.yaml';
const DEV = 'deploy/dev/values.yaml';
const COMPONENT = 'app.kubernetes.io/component';

/** The values files a platform engineer would install with: the hardening rules hold for all of them. */
const HARDENED: Record<string, string[]> = { 'default values': [], 'production values': [PRODUCTION] };

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

      it('mounts no API token anywhere; only the secrets service gets a token, with Vault as its audience', () => {
        for (const sa of byKind(objects, 'ServiceAccount')) expect(sa.automountServiceAccountToken, sa.metadata.name).toBe(false);
        for (const [where, pod] of podsOf(objects)) {
          expect(pod.automountServiceAccountToken, where).toBe(false);
          const tokens = (pod.volumes ?? []).flatMap((v: any) => (v.projected?.sources ?? []).filter((s: any) => s.serviceAccountToken));
          if (where === `Deployment/${RELEASE}-secrets`) {
            expect(tokens.map((t: any) => t.serviceAccountToken.audience)).toEqual(['vault']);
          } else {
            expect(tokens, where).toEqual([]);
          }
        }
      });

      it('inlines no credential: no Secret objects, secrets only by secretKeyRef, no passwords in URLs, no PEM', async () => {
        expect(byKind(objects, 'Secret')).toEqual([]);
        expect(byKind(objects, 'ConfigMap')).toEqual([]);
        const mustBeRefs = /^(DATABASE_URL|VAULT_TOKEN|PARLEY_VAULT_SECRET_ID|PARLEY_DB_PASSWORD_.*)$/;
        for (const [where, pod] of podsOf(objects)) {
          for (const c of containersOf(pod)) {
            for (const env of c.env ?? []) {
              if (mustBeRefs.test(env.name)) {
                expect(env.value, `${where} ${env.name}`).toBeUndefined();
                expect(env.valueFrom?.secretKeyRef?.name, `${where} ${env.name}`).toBeDefined();
              }
              if (env.value !== undefined) expect(String(env.value), `${where} ${env.name}`).not.toMatch(/:\/\/[^/@\s]+:[^/@\s]+@/);
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

      it('configures Vault on the secrets service only', () => {
        const env = envOf(deploymentOf(objects, 'secrets'));
        expect(env.get('PARLEY_KEK_PROVIDER').value).toBe('vault');
        expect(env.get('PARLEY_VAULT_AUTH').value).toBe('kubernetes');
        expect(env.get('PARLEY_VAULT_TRANSIT_KEY').value).toBe('parley-kek');
        for (const service of SERVICE_NAMES.filter((s) => s !== 'secrets')) {
          expect(envOf(deploymentOf(objects, service)).has('VAULT_ADDR'), service).toBe(false);
        }
      });

      it('denies by default and opens DNS to every service, Vault to secrets only, the internet to integrations only', () => {
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
          expect(ports.includes(8200), `${service} reaches Vault`).toBe(service === 'secrets');
          const internet = egress.some((r) => r.to.some((peer: any) => peer.ipBlock?.cidr === '0.0.0.0/0'));
          expect(internet, `${service} reaches the internet`).toBe(service === 'integrations');
          expect(ports, service).toContain(5432);
        }
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
    it('let one service override a default with false', async () => {
      const objects = await render([valuesFile('services:\n  lifecycle:\n    podDisruptionBudget:\n      enabled: false\n    replicas: 1\n')]);
      expect(objects.some((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === `${RELEASE}-lifecycle`)).toBe(false);
      expect(deploymentOf(objects, 'lifecycle').spec.replicas).toBe(1);
      expect(named(objects, 'PodDisruptionBudget', `${RELEASE}-audit`)).toBeDefined();
      expect(deploymentOf(objects, 'audit').spec.replicas).toBe(2);
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

    it('refuse Vault token auth without a Secret to read the token from', async () => {
      const result = await template([valuesFile('vault:\n  auth:\n    method: token\n')]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/vault\.auth\.existingSecret/);
    });
  });
});
