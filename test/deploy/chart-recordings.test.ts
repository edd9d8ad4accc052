/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// The chart's recorded-call blob store: tenant-data and the voice-orchestrator get the same
// PARLEY_BLOB_STORE settings (read back by the services' own loader), the key pair only as Secret
// references, and a NetworkPolicy egress rule to the object store; off by default.
import { describe, expect, it } from 'vitest';
import { blobStoreConfigFromEnv } from '@parley/blob-store';
import { named, RELEASE, render, template, valuesFile } from './render.js';
import { deploymentOf, envOf, PRODUCTION, renderedEnv } from './chart-fixture.js';

const S3 = `
config:
  recordings:
    store: s3
    maxBytes: 33554432
    s3:
      bucket: parley-recordings
      region: eu-west-1
      endpoint: https://minio.storage.svc:9000
      forcePathStyle: true
      prefix: prod/
      credentials: { existingSecret: parley-recordings-s3 }
      networkPolicy:
        namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: storage } }
        ports: [9000]
`;

const egressOf = (objects: any[], service: string) =>
  named(objects, 'NetworkPolicy', `${RELEASE}-${service}`).spec.egress as { to?: any[]; ports?: { protocol: string; port: number }[] }[];

describe('chart: recorded calls', () => {
  it('records nothing by default: the blob store is none and no egress to an object store', async () => {
    const objects = await render([PRODUCTION]);
    for (const service of ['tenant-data', 'voice-orchestrator'] as const) {
      const env = renderedEnv(deploymentOf(objects, service).spec.template.spec.containers[0]);
      expect(blobStoreConfigFromEnv(env), service).toEqual({ kind: 'none' });
    }
    expect(egressOf(objects, 'tenant-data').some((r) => (r.ports ?? []).some((p) => p.port === 9000))).toBe(false);
  }, 120_000);

  it('gives tenant-data and the orchestrator the same S3 store, the key pair from a Secret, and egress to it', async () => {
    const objects = await render([PRODUCTION, valuesFile(S3)]);
    const configs = ['tenant-data', 'voice-orchestrator'].map((service) => {
      const deployment = deploymentOf(objects, service as 'tenant-data');
      const env = envOf(deployment);
      expect(env.get('PARLEY_S3_SECRET_ACCESS_KEY').valueFrom.secretKeyRef).toEqual({
        name: 'parley-recordings-s3',
        key: 'secret-access-key',
      });
      expect(env.get('PARLEY_S3_ACCESS_KEY_ID').valueFrom.secretKeyRef).toEqual({ name: 'parley-recordings-s3', key: 'access-key-id' });
      expect(egressOf(objects, service)).toContainEqual({
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'storage' } } }],
        ports: [{ protocol: 'TCP', port: 9000 }],
      });
      return blobStoreConfigFromEnv(renderedEnv(deployment.spec.template.spec.containers[0]));
    });
    expect(configs[0]).toEqual(configs[1]);
    expect(configs[0]).toMatchObject({
      kind: 's3',
      bucket: 'parley-recordings',
      region: 'eu-west-1',
      endpoint: 'https://minio.storage.svc:9000',
      forcePathStyle: true,
      prefix: 'prod/',
    });
    expect(envOf(deploymentOf(objects, 'voice-orchestrator')).get('PARLEY_RECORDING_MAX_BYTES').value).toBe('33554432');
    // Only the two services that touch recordings reach the object store.
    expect(egressOf(objects, 'lifecycle').some((r) => (r.ports ?? []).some((p) => p.port === 9000))).toBe(false);
  }, 120_000);

  it("annotates the two services' accounts for IRSA and lets them reach IMDS and STS only when asked", async () => {
    const IRSA = `
config:
  recordings:
    store: s3
    s3:
      bucket: parley-recordings
      serviceAccountAnnotations:
        eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/parley-recordings
      credentialEgress:
        enabled: true
        sts: { cidrs: [10.20.0.0/24] }
`;
    const plain = await render([PRODUCTION, valuesFile(S3)]);
    const irsa = await render([PRODUCTION, valuesFile(IRSA)]);
    const account = (objects: any[], service: string) => named(objects, 'ServiceAccount', `${RELEASE}-${service}`);
    const imds = (objects: any[], service: string) =>
      egressOf(objects, service).some((r) => (r.to ?? []).some((t: any) => t.ipBlock?.cidr === '169.254.169.254/32'));
    for (const service of ['tenant-data', 'voice-orchestrator']) {
      expect(account(irsa, service).metadata.annotations).toEqual({
        'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/parley-recordings',
      });
      expect(account(plain, service).metadata.annotations).toBeUndefined();
      // Off by default: no way to the metadata service.
      expect(imds(plain, service)).toBe(false);
      expect(imds(irsa, service)).toBe(true);
      expect(egressOf(irsa, service)).toContainEqual({
        to: [{ ipBlock: { cidr: '10.20.0.0/24' } }],
        ports: [{ protocol: 'TCP', port: 443 }],
      });
      expect(envOf(deploymentOf(irsa, service as 'tenant-data')).has('PARLEY_S3_ACCESS_KEY_ID')).toBe(false);
    }
    expect(envOf(deploymentOf(irsa, 'voice-orchestrator')).get('PARLEY_RECORDING_BUFFER_BYTES').value).toBe('134217728');
    // Nobody else takes the role or reaches the metadata service.
    expect(account(irsa, 'lifecycle').metadata.annotations).toBeUndefined();
    expect(imds(irsa, 'lifecycle')).toBe(false);
    const unknown = await template([PRODUCTION, valuesFile(`${IRSA}        imds: true\n`)]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/credentialEgress|additional/i);
  }, 120_000);

  it('refuses an S3 store without a bucket, and an unknown store', async () => {
    const noBucket = await template([PRODUCTION, valuesFile('config:\n  recordings:\n    store: s3\n')]);
    expect(noBucket.code).not.toBe(0);
    expect(noBucket.stderr).toMatch(/bucket/);
    const unknown = await template([PRODUCTION, valuesFile('config:\n  recordings:\n    store: disk\n')]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/recordings/);
  }, 120_000);
});
