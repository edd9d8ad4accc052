/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are validated against the Kubernetes schemas, not typed */
// What the chart tests share: the values files, the variables each service's config loader
// needs and how the chart supplies them, and readers for rendered manifests.
import { join } from 'node:path';
import { beforeAll, describe, expect } from 'vitest';
import { SERVICE_NAMES, type Env, type ServiceName } from '@parley/platform';
import { ensureHelm } from '../src/helm.js';
import { byKind, type K8sObject, named, RELEASE, render } from './render.js';

/** root is the repository root. */
export const root = join(import.meta.dirname, '..', '..');
/** PRODUCTION is the production values file the chart CI renders. */
export const PRODUCTION = 'deploy/parley/ci/production-values.yaml';
/** DEV is the Tilt dev values file. */
export const DEV = 'deploy/dev/values.yaml';
/** COMPONENT is the label that names a pod's service. */
export const COMPONENT = 'app.kubernetes.io/component';

/** HARDENED lists the values files a platform engineer would install with: the hardening rules hold for all of them. */
export const HARDENED: Record<string, string[]> = { 'default values': [], 'production values': [PRODUCTION] };

/** VAULT_SERVICES keep a key-encryption key in Vault (they seal keys with @parley/envelope): only they may reach it. */
export const VAULT_SERVICES: readonly ServiceName[] = ['secrets', 'identity', 'audit'];

/** Supply is how a required variable must be supplied: a plain value, a Secret reference, or the path of a file in a mounted volume. */
export type Supply = 'value' | 'secretRef' | 'mountedFile';

/** KERNEL_ENV is what every service's kernel (packages/platform/src/config.ts) reads without a usable default in a pod. */
export const KERNEL_ENV: Record<string, Supply> = {
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
export const KEK_ENV: Record<string, Supply> = {
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
export const REQUIRED_ENV: Record<ServiceName, Record<string, Supply>> = {
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
  lifecycle: { ...KERNEL_ENV, PARLEY_EXPORT_KEY: 'secretRef' }, // unset, DSAR export and forget are refused
  'voice-orchestrator': { ...KERNEL_ENV, PARLEY_PUBLIC_PORT: 'value', PARLEY_SESSION_PUBLIC_URL: 'value' },
  integrations: { ...KERNEL_ENV },
};

/** PEER_CALLS lists the peers each service's main.ts builds a client for (ctx.clientFor): their URL variables must be set. */
export const PEER_CALLS: Partial<Record<ServiceName, ServiceName[]>> = {
  edge: ['identity'],
  identity: ['tenant-data', 'audit'],
  secrets: ['tenant-data'],
};

/** mountOf finds the volume mount that holds a file path, or undefined. */
export function mountOf(container: any, path: string): any {
  return (container.volumeMounts ?? []).find((m: any) => path.startsWith(`${m.mountPath}/`));
}

/**
 * renderedEnv turns a rendered container's env into the environment the process would see:
 * Secret references become stand-in values of the shape the loaders check (a postgres URL,
 * 48 bytes of base64), so the loaders can be run against what the chart renders.
 */
export function renderedEnv(container: any): Env {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.secretKeyRef !== undefined)
      env[e.name] = e.name === 'DATABASE_URL' ? 'postgres://role:password@db:5432/parley' : Buffer.alloc(48, 7).toString('base64');
  }
  return env;
}

/** containersOf lists a pod's init containers and containers. */
export function containersOf(pod: any): any[] {
  return [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
}

/** podsOf returns [where, podSpec] for every workload that runs pods. */
export function podsOf(objects: readonly K8sObject[]): [string, any][] {
  return objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'Job')
    .map((o) => [`${o.kind}/${o.metadata.name}`, o.spec.template.spec] as [string, any]);
}

/** deploymentOf finds a service's Deployment. */
export function deploymentOf(objects: readonly K8sObject[], service: ServiceName): K8sObject {
  return named(objects, 'Deployment', `${RELEASE}-${service}`);
}

/** envOf maps a Deployment's first container's env by name. */
export function envOf(deployment: K8sObject): Map<string, any> {
  return new Map((deployment.spec.template.spec.containers[0].env as any[]).map((e) => [e.name, e]));
}

/** networkPolicyEdges reads service-to-service edges back out of the rendered NetworkPolicies. */
export function networkPolicyEdges(objects: readonly K8sObject[], servicePort: number): { ingress: string[]; egress: string[] } {
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

/** HardenedChart is the chart rendered with one of the HARDENED values files. */
export interface HardenedChart {
  readonly label: string;
  readonly files: string[];
  /** objects are the rendered objects (available once the describe block's beforeAll has run). */
  readonly objects: K8sObject[];
}

/** describeHardenedChart runs `tests` once per HARDENED values file against the chart rendered with it, with helm installed first. */
export function describeHardenedChart(tests: (chart: HardenedChart) => void): void {
  beforeAll(async () => {
    await ensureHelm();
  }, 120_000);
  describe('the Parley chart', () => {
    for (const [label, files] of Object.entries(HARDENED)) {
      describe(`hardening with ${label}`, () => {
        let objects: K8sObject[] = [];
        beforeAll(async () => {
          objects = await render(files);
        });
        tests({
          label,
          files,
          get objects() {
            return objects;
          },
        });
      });
    }
  });
}
