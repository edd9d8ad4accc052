/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// Gateway API exposure: the public ports serve TLS, so a Gateway must re-encrypt to them and
// verify them (BackendTLSPolicy) and know which protocol to speak (appProtocol).
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureHelm } from '../src/helm.js';
import { byKind, named, NAMESPACE, render, RELEASE, template, validateAgainstSchema, valuesFile } from './render.js';

beforeAll(async () => {
  await ensureHelm();
}, 120_000);

const GATEWAY =
  'exposure:\n  gateway:\n    enabled: true\n    parentRefs: [{name: public, namespace: gateways}]\n    edge: {hostnames: [api.example.com]}\n';

describe('the Parley chart behind a Gateway', () => {
  it('renders a BackendTLSPolicy per public Service that verifies the service certificate against the CA', async () => {
    const objects = await render([valuesFile(`${GATEWAY}    backendTLS: {caConfigMap: parley-services-ca}\n`)]);
    const policies = byKind(objects, 'BackendTLSPolicy');
    expect(policies.map((p) => p.spec.targetRefs)).toEqual([
      [{ group: '', kind: 'Service', name: `${RELEASE}-edge-public`, sectionName: 'public' }],
      [{ group: '', kind: 'Service', name: `${RELEASE}-voice-orchestrator-public`, sectionName: 'public' }],
    ]);
    for (const policy of policies) {
      expect(policy.apiVersion).toBe('gateway.networking.k8s.io/v1');
      expect(policy.spec.validation.caCertificateRefs).toEqual([{ group: '', kind: 'ConfigMap', name: 'parley-services-ca' }]);
      expect(await validateAgainstSchema(policy)).toBeUndefined();
    }
    // The hostname must be a name on the certificate the backend serves: its service certificate.
    const edgeCert = named(objects, 'Certificate', `${RELEASE}-edge`);
    expect(edgeCert.spec.dnsNames).toContain(policies[0]!.spec.validation.hostname);
    expect(policies[0]!.spec.validation.hostname).toBe(`${RELEASE}-edge.${NAMESPACE}.svc`);
    expect(named(objects, 'Certificate', `${RELEASE}-voice-orchestrator`).spec.dnsNames).toContain(policies[1]!.spec.validation.hostname);
    // Every route backend has a policy.
    const backends = byKind(objects, 'HTTPRoute').flatMap((r) =>
      r.spec.rules.flatMap((rule: any) => rule.backendRefs.map((b: any) => b.name)),
    );
    expect(backends.sort()).toEqual(policies.map((p) => p.spec.targetRefs[0].name).sort());
  });

  it('sets appProtocol on the public ports: HTTP/2 to the edge, WebSocket to the session port', async () => {
    const objects = await render([valuesFile(`${GATEWAY}    backendTLS: {caConfigMap: parley-services-ca}\n`)]);
    const port = (name: string) => named(objects, 'Service', name).spec.ports[0];
    expect(port(`${RELEASE}-edge-public`).appProtocol).toBe('kubernetes.io/h2c');
    expect(port(`${RELEASE}-voice-orchestrator-public`).appProtocol).toBe('kubernetes.io/wss');
    for (const name of [`${RELEASE}-edge-public`, `${RELEASE}-voice-orchestrator-public`])
      expect(await validateAgainstSchema(named(objects, 'Service', name))).toBeUndefined();
    // Without a Gateway nothing changes for the Ingress or a LoadBalancer.
    expect(named(await render(), 'Service', `${RELEASE}-edge-public`).spec.ports[0].appProtocol).toBeUndefined();
  });

  it("verifies the edge's public certificate by its public name, and can use the system roots for it", async () => {
    const objects = await render([
      valuesFile(
        `${GATEWAY}    backendTLS: {wellKnownCACertificates: System}\nconfig:\n  edge:\n    publicTls:\n      existingSecret: api-example-com-tls\n`,
      ),
    ]);
    const edge = named(objects, 'BackendTLSPolicy', `${RELEASE}-edge`);
    expect(edge.spec.validation).toEqual({ hostname: 'api.example.com', wellKnownCACertificates: 'System' });
  });

  it('refuses a Gateway without a way to verify the backends, naming the value to set', async () => {
    const result = await template([valuesFile(GATEWAY)]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/exposure\.gateway\.backendTLS\.caConfigMap: name a ConfigMap/);
  });
});
