/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// Operator sign-in in the chart: off by default; when enabled, the edge gets PARLEY_OIDC_* with the
// client secret (and a private CA) mounted as files from Secrets, never inline, in an environment
// its own config loader accepts. The dev stack's embedded provider is never part of the chart.
import { describe, expect, it } from 'vitest';
import { loadEdgeConfig } from '@parley/edge/config';
import { named, RELEASE, render, valuesFile } from './render.js';
import { deploymentOf, envOf, mountOf, PRODUCTION, renderedEnv } from './chart-fixture.js';

describe('chart: operator sign-in', () => {
  it('leaves sign-in off by default', async () => {
    const objects = await render([PRODUCTION]);
    const env = envOf(deploymentOf(objects, 'edge'));
    expect(env.has('PARLEY_OIDC_ISSUER')).toBe(false);
  }, 120_000);

  it('configures the edge from values and Secret references, and never renders a dev provider', async () => {
    const values = valuesFile(`
config:
  edge:
    oidc:
      enabled: true
      issuer: https://login.example.com/realms/parley
      clientId: parley
      clientSecret: { existingSecret: parley-oidc, key: client-secret }
      caSecret: { name: corp-ca, key: ca.pem }
      allowedDomains: [example.com]
      adminGroups: [parley-ops]
`);
    const objects = await render([PRODUCTION, values]);
    const edge = deploymentOf(objects, 'edge');
    const container = edge.spec.template.spec.containers[0];
    const env = envOf(edge);
    expect(env.get('PARLEY_OIDC_ISSUER').value).toBe('https://login.example.com/realms/parley');
    expect(env.get('PARLEY_OIDC_ALLOWED_DOMAINS').value).toBe('example.com');
    const secretFile = env.get('PARLEY_OIDC_CLIENT_SECRET_FILE').value as string;
    expect(mountOf(container, secretFile)).toBeDefined();
    const volumes = edge.spec.template.spec.volumes as any[];
    expect(volumes.find((v) => v.name === 'oidc-client-secret').secret).toMatchObject({
      secretName: 'parley-oidc',
      items: [{ key: 'client-secret', path: 'client-secret' }],
    });
    expect(volumes.find((v) => v.name === 'oidc-ca').secret).toMatchObject({
      secretName: 'corp-ca',
      items: [{ key: 'ca.pem', path: 'ca.crt' }],
    });
    const config = loadEdgeConfig(renderedEnv(container));
    expect(config.oidc).toMatchObject({
      issuer: 'https://login.example.com/realms/parley',
      clientId: 'parley',
      allowedDomains: ['example.com'],
      adminGroups: ['parley-ops'],
    });
    expect(config.oidc?.publicUrl).toMatch(/^https:\/\//);
    // Nothing anywhere runs or points at the dev stack's embedded provider.
    expect(JSON.stringify(objects)).not.toMatch(/oidc-provider|parley-dev|DEV_OIDC/);
  }, 120_000);

  it('refuses to render sign-in without the client secret Secret', async () => {
    const values = valuesFile(`
config:
  edge:
    oidc: { enabled: true, issuer: https://login.example.com, clientId: parley }
`);
    await expect(render([PRODUCTION, values])).rejects.toThrow(/config.edge.oidc.clientSecret.existingSecret/);
  }, 120_000);

  it('lets the edge reach the provider through its NetworkPolicy only when sign-in is on', async () => {
    const egressOf = (objects: any[]) =>
      named(objects, 'NetworkPolicy', `${RELEASE}-edge`).spec.egress as { to?: any[]; ports?: { protocol: string; port: number }[] }[];
    const onPort443 = (rules: ReturnType<typeof egressOf>) => rules.filter((r) => (r.ports ?? []).some((p) => p.port === 443));
    expect(onPort443(egressOf(await render([PRODUCTION])))).toEqual([]);

    const on = valuesFile(`
config:
  edge:
    oidc:
      enabled: true
      issuer: https://login.example.com/realms/parley
      clientId: parley
      clientSecret: { existingSecret: parley-oidc, key: client-secret }
`);
    const [internet] = onPort443(egressOf(await render([PRODUCTION, on])));
    expect(internet?.ports).toEqual([{ protocol: 'TCP', port: 443 }]);
    // By default the public internet, private ranges excepted (as for integrations' egress).
    expect(internet?.to?.[0].ipBlock.cidr).toBe('0.0.0.0/0');
    expect(internet?.to?.[0].ipBlock.except).toEqual(expect.arrayContaining(['10.0.0.0/8', '192.168.0.0/16', '169.254.0.0/16']));
    expect(internet?.to?.[1].ipBlock.cidr).toBe('::/0');

    const pinned = valuesFile(`
config:
  edge:
    oidc:
      networkPolicy: { cidrs: [10.50.0.0/24], ports: [8443] }
`);
    const rules = egressOf(await render([PRODUCTION, on, pinned]));
    expect(onPort443(rules)).toEqual([]);
    expect(rules).toContainEqual({ to: [{ ipBlock: { cidr: '10.50.0.0/24' } }], ports: [{ protocol: 'TCP', port: 8443 }] });
  }, 120_000);
});
