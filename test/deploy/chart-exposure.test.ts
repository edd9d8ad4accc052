/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// What the chart exposes and how it scales: the public ports, disruption budgets and spread, and
// the production values (HPA, Ingress, external CA, external Postgres).
import { beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_NAMES } from '@parley/platform';
import { byKind, type K8sObject, named, render, RELEASE } from './render.js';
import { PRODUCTION, deploymentOf, envOf, describeHardenedChart } from './chart-fixture.js';

describeHardenedChart((chart) => {
  it('exposes the public port of the edge and the orchestrator only', () => {
    for (const service of SERVICE_NAMES) {
      const publicService = chart.objects.find((o) => o.kind === 'Service' && o.metadata.name === `${RELEASE}-${service}-public`);
      const ingressPorts = (named(chart.objects, 'NetworkPolicy', `${RELEASE}-${service}`).spec.ingress as any[]).flatMap((r) =>
        r.ports.map((p: any) => p.port),
      );
      const isPublic = service === 'edge' || service === 'voice-orchestrator';
      expect(publicService !== undefined, service).toBe(isPublic);
      expect(ingressPorts.includes(8080), service).toBe(isPublic);
    }
  });

  it('keeps a PodDisruptionBudget and spreads pods over nodes and zones', () => {
    for (const service of SERVICE_NAMES) {
      expect(named(chart.objects, 'PodDisruptionBudget', `${RELEASE}-${service}`).spec.maxUnavailable).toBe(1);
      const spread = deploymentOf(chart.objects, service).spec.template.spec.topologySpreadConstraints as any[];
      expect(spread.map((c) => c.topologyKey)).toContain('topology.kubernetes.io/zone');
    }
  });
});

describe('the Parley chart', () => {
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
      const edgePublicRule = (named(objects, 'NetworkPolicy', `${RELEASE}-edge`).spec.ingress as any[]).find(
        (r) => r.ports[0].port === 8080,
      );
      expect(edgePublicRule.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }]);
    });

    it('uses the external CA issuer and creates no CA of its own', () => {
      expect(byKind(objects, 'Issuer')).toEqual([]);
      expect(named(objects, 'Certificate', `${RELEASE}-audit`).spec.issuerRef).toEqual({
        name: 'parley-services-ca',
        kind: 'ClusterIssuer',
        group: 'cert-manager.io',
      });
    });

    it('reaches the external Postgres by CIDR and exports traces to the collector', () => {
      const egress = named(objects, 'NetworkPolicy', `${RELEASE}-audit`).spec.egress as any[];
      expect(egress).toContainEqual({ to: [{ ipBlock: { cidr: '10.40.12.0/24' } }], ports: [{ protocol: 'TCP', port: 5432 }] });
      expect(envOf(deploymentOf(objects, 'audit')).get('OTEL_EXPORTER_OTLP_ENDPOINT').value).toBe(
        'http://otel-collector.observability.svc:4318',
      );
    });
  });
});
