/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// The chart's NetworkPolicies beyond the service graph: deny by default, DNS, Vault and the
// internet only where needed, never private ranges for the providers.
import { BlockList } from 'node:net';
import { expect, it } from 'vitest';
import { SERVICE_NAMES } from '@parley/platform';
import { named, RELEASE } from './render.js';
import { VAULT_SERVICES, describeHardenedChart } from './chart-fixture.js';

describeHardenedChart((chart) => {
  it('denies by default and opens DNS to every service, Vault to the services with a KEK only, the internet to integrations and the orchestrator only', () => {
    const deny = named(chart.objects, 'NetworkPolicy', `${RELEASE}-default-deny`);
    expect(deny.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(deny.spec.ingress).toBeUndefined();
    expect(deny.spec.egress).toBeUndefined();
    for (const service of SERVICE_NAMES) {
      const policy = named(chart.objects, 'NetworkPolicy', `${RELEASE}-${service}`);
      expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      const egress: any[] = policy.spec.egress;
      // Every egress rule names its destinations: a rule without `to` would allow all of them.
      for (const rule of egress) expect(rule.to?.length, service).toBeGreaterThan(0);
      expect(
        egress.some((r) => r.ports.some((p: any) => p.port === 53 && p.protocol === 'UDP')),
        service,
      ).toBe(true);
      const ports = egress.flatMap((r) => r.ports ?? []).map((p: any) => p.port);
      expect(ports.includes(8200), `${service} reaches Vault`).toBe(VAULT_SERVICES.includes(service));
      const internet = egress.some((r) => r.to.some((peer: any) => peer.ipBlock?.cidr === '0.0.0.0/0'));
      expect(internet, `${service} reaches the internet`).toBe(service === 'integrations' || service === 'voice-orchestrator');
      expect(ports, service).toContain(5432);
    }
  });

  it('lets the orchestrator reach providers on 443 only, never private, loopback or metadata ranges', () => {
    const egress: any[] = named(chart.objects, 'NetworkPolicy', `${RELEASE}-voice-orchestrator`).spec.egress;
    const internet = egress.find((r) => r.to.some((peer: any) => peer.ipBlock?.cidr === '0.0.0.0/0'));
    expect(internet.ports).toEqual([{ protocol: 'TCP', port: 443 }]);
    const v4 = internet.to.find((peer: any) => peer.ipBlock.cidr === '0.0.0.0/0').ipBlock.except;
    for (const range of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '127.0.0.0/8', '100.64.0.0/10'])
      expect(v4, range).toContain(range);
    // IPv6 is excluded by wider blocks (everything outside global unicast 2000::/3 and its
    // special ranges): check that each private address falls in one of them.
    const v6: string[] = internet.to.find((peer: any) => peer.ipBlock.cidr === '::/0').ipBlock.except;
    const excluded = new BlockList();
    for (const cidr of v6) {
      const [net = '', bits = ''] = cidr.split('/');
      excluded.addSubnet(net, Number(bits), 'ipv6');
    }
    for (const address of ['::1', 'fc00::1', 'fd12:3456::1', 'fe80::1', '::ffff:10.0.0.1', '2001:db8::1'])
      expect(excluded.check(address, 'ipv6'), address).toBe(true);
    expect(excluded.check('2606:4700::1111', 'ipv6'), 'a public address').toBe(false);
  });
});
