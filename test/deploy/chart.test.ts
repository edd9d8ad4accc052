/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// The chart renders and lints with every values file, every object passes its Kubernetes schema,
// its NetworkPolicy edges are the allow-lists', and the values schema and chart README hold.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAuditConfig } from '@parley/audit';
import { secretsServiceVaultPolicy } from '@parley/envelope';
import { SERVICE_NAMES } from '@parley/platform';
import { classifyAddress } from '@parley/egress';
import { loadIntegrationsConfig } from '@parley/integrations';
import { ensureHelm, runHelm } from '../src/helm.js';
import {
  byKind,
  CHART,
  type K8sObject,
  named,
  render,
  RELEASE,
  SESSION_URL_FIXTURE,
  template,
  validateAgainstSchema,
  valuesFile,
} from './render.js';
import {
  deriveServiceGraph,
  edgeSet,
  loadCallerPolicies,
  parseServiceGraph,
  SERVICE_GRAPH_PATH,
  type ServiceGraph,
} from './service-graph.js';
import { root, DEV, HARDENED, mountOf, renderedEnv, deploymentOf, envOf, networkPolicyEdges } from './chart-fixture.js';
import { loadOrchestratorConfig } from '@parley/voice-orchestrator';

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
        const result = await runHelm(['lint', CHART, '--strict', ...[SESSION_URL_FIXTURE, ...files].flatMap((f) => ['--values', f])]);
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

  describe('values', () => {
    it('gives integrations and the orchestrator the same egress ports and private allow-list in their NetworkPolicy and their egress client', async () => {
      const objects = await render([
        valuesFile(
          'services:\n  integrations:\n    internetEgress:\n      enabled: true\n      ports: [443, 8443]\n      allowPrivate: [10.20.0.0/16, 192.0.2.10, hooks.corp.example]\n',
        ),
      ]);
      const env = renderedEnv(deploymentOf(objects, 'integrations').spec.template.spec.containers[0]);
      expect([env.PARLEY_EGRESS_ALLOWED_PORTS, env.PARLEY_EGRESS_ALLOW_PRIVATE]).toEqual([
        '443,8443',
        '10.20.0.0/16,192.0.2.10,hooks.corp.example',
      ]);
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
      expect(
        renderedEnv(deploymentOf(objects, 'tenant-data').spec.template.spec.containers[0]).PARLEY_EGRESS_ALLOWED_PORTS,
      ).toBeUndefined();
    });

    it('excludes from the internet rule only ranges that @parley/egress refuses too', async () => {
      const objects = await render();
      const internet = (named(objects, 'NetworkPolicy', `${RELEASE}-integrations`).spec.egress as any[]).find((r) =>
        r.to.some((peer: any) => peer.ipBlock?.cidr === '0.0.0.0/0'),
      );
      const excepts: string[] = internet.to.flatMap((peer: any) => peer.ipBlock.except);
      for (const name of ['169.254.0.0/16', '10.0.0.0/8', '100.64.0.0/10', '8000::/1', '2002::/16', '::/3'])
        expect(excepts).toContain(name);
      for (const cidr of excepts) {
        const first = cidr.split('/')[0]!;
        // The first address of every excluded range is one egress refuses, so chart and client agree.
        expect(classifyAddress(first === '::' ? '::1' : first).public, cidr).toBe(false);
      }
    });

    it('let one service override a default with false', async () => {
      const objects = await render([
        valuesFile('services:\n  lifecycle:\n    podDisruptionBudget:\n      enabled: false\n    replicas: 1\n'),
      ]);
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
        valuesFile(
          'exposure:\n  gateway:\n    enabled: true\n    parentRefs: [{name: public, namespace: gateways}]\n    edge: {hostnames: [api.example.com]}\n    backendTLS: {caConfigMap: parley-ca}\n',
        ),
      ]);
      const routes = byKind(objects, 'HTTPRoute');
      expect(routes.map((r) => r.spec.rules[0].backendRefs[0].name)).toEqual([
        `${RELEASE}-edge-public`,
        `${RELEASE}-voice-orchestrator-public`,
      ]);
      for (const route of routes) expect(await validateAgainstSchema(route)).toBeUndefined();
    });

    const refused: Record<string, [string, RegExp]> = {
      'an unknown top-level key': ['replicaCount: 3\n', /additional properties 'replicaCount' not allowed/],
      'an unknown key in the default block': ['default:\n  replica: 3\n', /additional properties 'replica' not allowed/],
      'an unknown key in a service': [
        'services:\n  edge:\n    autoscaling:\n      enabeld: true\n',
        /additional properties 'enabeld' not allowed/,
      ],
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

    it("refuse a production install without the Secret of audit's sealed signing key", async () => {
      const result = await template([valuesFile('config:\n  audit:\n    signingKey:\n      existingSecret: ""\n')]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/config\.audit\.signingKey\.existingSecret/);
    });

    it('refuse a Vault client that is not one of the services with a KEK', async () => {
      const result = await template([
        valuesFile('vault:\n  services:\n    edge: {role: parley-edge, transitKey: k, credentialKey: edge}\n'),
      ]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/additional properties 'edge' not allowed/);
    });

    it('give each service only its own AppRole secret_id, as a file, with AppRole auth', async () => {
      const objects = await render([
        valuesFile(
          'vault:\n  auth:\n    method: approle\n    existingSecret: parley-vault-approle\n  services:\n    identity: {role: 0f1e-role-id, transitKey: parley-identity-kek, credentialKey: identity-secret-id}\n',
        ),
      ]);
      const pod = deploymentOf(objects, 'identity').spec.template.spec;
      const env = envOf(deploymentOf(objects, 'identity'));
      expect(env.get('PARLEY_VAULT_APPROLE_ROLE_ID').value).toBe('0f1e-role-id');
      expect(env.get('PARLEY_VAULT_APPROLE_SECRET_ID_FILE').value).toBe('/var/run/parley/vault-auth/secret-id');
      expect(pod.volumes.find((v: any) => v.name === 'vault-auth').secret).toMatchObject({
        secretName: 'parley-vault-approle',
        items: [{ key: 'identity-secret-id', path: 'secret-id' }],
      });
      expect(mountOf(pod.containers[0], env.get('PARLEY_VAULT_APPROLE_SECRET_ID_FILE').value)).toMatchObject({ readOnly: true });
      // No projected Vault token without Kubernetes auth.
      expect(pod.volumes.some((v: any) => v.projected !== undefined)).toBe(false);
    });

    it('serve a cert-manager certificate for the public name on the edge when asked to', async () => {
      const objects = await render([
        valuesFile(
          'config:\n  edge:\n    publicTls:\n      certificate:\n        enabled: true\n        dnsNames: [api.example.com]\n        issuerRef: {name: letsencrypt}\n',
        ),
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

    it('sign session URLs for the public session host, and refuse to guess one without an Ingress, Gateway or explicit URL', async () => {
      const bare = { sessionUrlFixture: false };
      const sessionUrl = (objects: K8sObject[]) => envOf(deploymentOf(objects, 'identity')).get('PARLEY_SESSION_PUBLIC_URL').value;
      // Default values, and a plain LoadBalancer: nothing says where the session port is public.
      for (const files of [[], [valuesFile('exposure:\n  service:\n    type: LoadBalancer\n')]]) {
        const result = await template(files, [], CHART, bare);
        expect(result.code).not.toBe(0);
        expect(result.stderr).toMatch(/config\.identity\.sessionPublicUrl: set the public https URL/);
      }
      expect(
        sessionUrl(
          await render(
            [valuesFile('exposure:\n  ingress:\n    enabled: true\n    session: {host: talk.example.com, tlsSecretName: ""}\n')],
            [],
            CHART,
            bare,
          ),
        ),
      ).toBe('https://talk.example.com');
      const explicit = await render(
        [
          valuesFile(
            'exposure:\n  service:\n    type: LoadBalancer\nconfig:\n  identity:\n    sessionPublicUrl: https://lb.example.com:8080\n',
          ),
        ],
        [],
        CHART,
        bare,
      );
      expect(sessionUrl(explicit)).toBe('https://lb.example.com:8080');
      // The orchestrator checks Twilio's call signatures over the same public URL.
      expect(envOf(deploymentOf(explicit, 'voice-orchestrator')).get('PARLEY_SESSION_PUBLIC_URL').value).toBe(sessionUrl(explicit));
    });

    it('tell the orchestrator which proxies in front of the session port may name the client', async () => {
      const trusted = (objects: K8sObject[]) =>
        envOf(deploymentOf(objects, 'voice-orchestrator')).get('PARLEY_SESSION_TRUSTED_PROXIES').value;
      expect(trusted(await render([]))).toBe('');
      const values = 'config:\n  voice-orchestrator:\n    trustedProxies: ["10.0.0.0/8", "fd00::/8"]\n';
      expect(trusted(await render([valuesFile(values)]))).toBe('10.0.0.0/8,fd00::/8');
      const bad = await template([valuesFile('config:\n  voice-orchestrator:\n    trustedProxies: ["lb.internal"]\n')]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/trustedProxies/);
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
      for (const [name, key] of [
        ['parley-identity', 'parley-identity-kek'],
        ['parley-audit', 'parley-audit-kek'],
      ] as const) {
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
