/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// What a real API server showed on install and upgrade: a user's NetworkPolicy selector must
// replace the default (not be merged into it), the migration hook must be fenced in from before
// its pod starts and run under its own account, and turning autoscaling on must not drop pods.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_NAMES } from '@parley/platform';
import { ensureHelm } from '../src/helm.js';
import { CHART, type K8sObject, named, render, RELEASE, template, validateAgainstSchema, valuesFile } from './render.js';
import { COMPONENT, PRODUCTION, root, deploymentOf } from './chart-fixture.js';

beforeAll(async () => {
  await ensureHelm();
}, 120_000);

/** egressPeersOnPort lists the `to` peers of a NetworkPolicy's egress rules that open a port. */
function egressPeersOnPort(policy: K8sObject, port: number): any[] {
  return (policy.spec.egress as any[]).filter((r) => r.ports.some((p: any) => p.port === port)).flatMap((r) => r.to);
}

/** hookWeight reads a hook's weight; undefined when the object is not a hook of both pre-install and pre-upgrade. */
function preHookWeight(object: K8sObject): number | undefined {
  const events = (object.metadata.annotations?.['helm.sh/hook'] ?? '').split(',');
  if (!events.includes('pre-install') || !events.includes('pre-upgrade')) return undefined;
  return Number(object.metadata.annotations?.['helm.sh/hook-weight'] ?? '0');
}

describe('the Parley chart on install and upgrade', () => {
  describe('NetworkPolicy peer selectors', () => {
    it("replace the default with a user's selector instead of merging both (which would match nothing)", async () => {
      const objects = await render(
        [],
        [
          '--set',
          'database.networkPolicy.podSelector.matchLabels.app=pg',
          '--set',
          'vault.networkPolicy.podSelector.matchLabels.app=vault-server',
          '--set',
          'vault.networkPolicy.namespaceSelector.matchLabels.team=security',
          '--set',
          'networkPolicy.dns.podSelector.matchLabels.k8s-app=coredns',
        ],
      );
      const secrets = named(objects, 'NetworkPolicy', `${RELEASE}-secrets`);
      expect(egressPeersOnPort(secrets, 5432)).toEqual([{ podSelector: { matchLabels: { app: 'pg' } } }]);
      expect(egressPeersOnPort(secrets, 8200)).toEqual([
        { namespaceSelector: { matchLabels: { team: 'security' } }, podSelector: { matchLabels: { app: 'vault-server' } } },
      ]);
      expect(egressPeersOnPort(secrets, 53)).toEqual([
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
          podSelector: { matchLabels: { 'k8s-app': 'coredns' } },
        },
      ]);
      const migrations = objects.find((o) => o.kind === 'NetworkPolicy' && o.spec.podSelector.matchLabels[COMPONENT] === 'migrations');
      expect(egressPeersOnPort(migrations!, 5432)).toEqual([{ podSelector: { matchLabels: { app: 'pg' } } }]);
    });

    it('keep the documented defaults when nothing is set, and drop a selector set to null', async () => {
      const defaults = named(await render(), 'NetworkPolicy', `${RELEASE}-secrets`);
      expect(egressPeersOnPort(defaults, 5432)).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'postgresql' } } }]);
      expect(egressPeersOnPort(defaults, 8200)).toEqual([
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'vault' } },
          podSelector: { matchLabels: { 'app.kubernetes.io/name': 'vault' } },
        },
      ]);
      const external = named(
        await render(
          [],
          [
            '--set',
            'vault.networkPolicy.podSelector=null',
            '--set',
            'vault.networkPolicy.namespaceSelector=null',
            '--set',
            'vault.networkPolicy.cidrs={10.9.0.0/16}',
          ],
        ),
        'NetworkPolicy',
        `${RELEASE}-secrets`,
      );
      expect(egressPeersOnPort(external, 8200)).toEqual([{ ipBlock: { cidr: '10.9.0.0/16' } }]);
    });
  });

  describe('the migration hook', () => {
    let objects: K8sObject[];
    beforeAll(async () => {
      objects = await render();
    });

    it('is fenced in by a NetworkPolicy that Helm creates before it, as a hook of the same events with a lower weight', () => {
      const job = named(objects, 'Job', `${RELEASE}-migrations`);
      const jobWeight = preHookWeight(job);
      expect(jobWeight).toBeDefined();
      const podLabels = job.spec.template.metadata.labels as Record<string, string>;
      // Every NetworkPolicy that selects the Job's pods: at least one, and each one must exist before the Job.
      const covering = objects.filter(
        (o) =>
          o.kind === 'NetworkPolicy' &&
          Object.entries(o.spec.podSelector.matchLabels as Record<string, string>).every(([k, v]) => podLabels[k] === v) &&
          o.spec.podSelector.matchLabels[COMPONENT] === 'migrations',
      );
      expect(covering.length).toBe(1);
      const policy = covering[0]!;
      expect(preHookWeight(policy), 'the policy is a pre-install/pre-upgrade hook').toBeDefined();
      expect(preHookWeight(policy)!).toBeLessThan(jobWeight!);
      expect(policy.metadata.annotations?.['helm.sh/hook-delete-policy']).toContain('before-hook-creation');
      // It is the Job's own default deny: isolated both ways, no ingress, egress to DNS and Postgres only.
      expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(policy.spec.ingress).toEqual([]);
      const ports = (policy.spec.egress as any[]).flatMap((r) => r.ports.map((p: any) => `${p.protocol}/${p.port}`)).sort();
      expect(ports).toEqual(['TCP/53', 'TCP/5432', 'UDP/53']);
      for (const rule of policy.spec.egress as any[]) expect(rule.to.length).toBeGreaterThan(0);
    });

    it('runs under its own ServiceAccount, created before it, with no API token mounted', async () => {
      const job = named(objects, 'Job', `${RELEASE}-migrations`);
      const pod = job.spec.template.spec;
      expect(pod.serviceAccountName).toBe(`${RELEASE}-migrations`);
      expect(pod.automountServiceAccountToken).toBe(false);
      const account = named(objects, 'ServiceAccount', `${RELEASE}-migrations`);
      expect(account.automountServiceAccountToken).toBe(false);
      expect(preHookWeight(account)!).toBeLessThan(preHookWeight(job)!);
      // No service shares it.
      for (const service of SERVICE_NAMES)
        expect(deploymentOf(objects, service).spec.template.spec.serviceAccountName).not.toBe(`${RELEASE}-migrations`);
      for (const hook of [account, ...objects.filter((o) => o.metadata.name === `${RELEASE}-migrations-hook`)])
        expect(await validateAgainstSchema(hook)).toBeUndefined();
    });
  });

  describe('replicas under an HPA', () => {
    // `helm template` has no cluster, so `lookup` finds nothing: a copy of the chart whose lookup
    // of the live Deployment answers what the API server would for a running release with 3 pods.
    const LOOKUP = 'lookup "apps/v1" "Deployment" $ns (printf "%s-%s" $fullname $service)';
    function chartWithLiveDeployment(replicas: number): string {
      const dir = mkdtempSync(join(tmpdir(), 'parley-chart-'));
      cpSync(join(root, CHART), dir, { recursive: true });
      const path = join(dir, 'templates', 'deployment.yaml');
      const text = readFileSync(path, 'utf8');
      expect(text, 'deployment.yaml looks up the live Deployment').toContain(LOOKUP);
      writeFileSync(path, text.replace(LOOKUP, `dict "spec" (dict "replicas" ${replicas})`));
      return dir;
    }

    it('keeps the live replica count when autoscaling is turned on for a running release, so 3 pods do not drop to 1', async () => {
      const objects = await render([PRODUCTION], [], chartWithLiveDeployment(3));
      for (const service of SERVICE_NAMES) {
        named(objects, 'HorizontalPodAutoscaler', `${RELEASE}-${service}`);
        expect(deploymentOf(objects, service).spec.replicas, service).toBe(3);
      }
    });

    it('leaves replicas to the HPA on a first install, and sets the configured count without one', async () => {
      for (const service of SERVICE_NAMES) expect(deploymentOf(await render([PRODUCTION]), service).spec.replicas).toBeUndefined();
      const withoutHpa = await render([valuesFile('default:\n  replicas: 4\n')], [], chartWithLiveDeployment(7));
      expect(deploymentOf(withoutHpa, 'edge').spec.replicas).toBe(4);
    });
  });

  describe('values from older releases', () => {
    it('refuses the removed config.identity.apiKeyRotationOverlapSeconds with a schema error naming it', async () => {
      const result = await template([valuesFile('config:\n  identity:\n    apiKeyRotationOverlapSeconds: 86400\n')]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/additional properties 'apiKeyRotationOverlapSeconds' not allowed/);
      const readme = readFileSync(join(root, CHART, 'README.md'), 'utf8');
      expect(readme).toContain('apiKeyRotationOverlapSeconds');
    });
  });
});
