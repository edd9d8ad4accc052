/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// Operator sign-in in the chart: off by default; when enabled, the edge gets PARLEY_OIDC_* with the
// client secret (and a private CA) mounted as files from Secrets, never inline, in an environment
// its own config loader accepts. The dev stack's embedded provider is never part of the chart.
import { describe, expect, it } from 'vitest';
import { loadEdgeConfig } from '@parley/edge/config';
import { render, valuesFile } from './render.js';
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
});
