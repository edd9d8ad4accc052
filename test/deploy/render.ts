// Renders the Parley chart with the real helm binary and checks rendered objects against the
// Kubernetes API schemas shipped by the kubernetes-models packages (offline, no cluster).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { runHelm, type HelmResult } from '../src/helm.js';

/** CHART is the chart directory, relative to the repository root (helm runs there). */
export const CHART = 'deploy/parley';
/** RELEASE and NAMESPACE are what the tests render as. */
export const RELEASE = 'parley';
export const NAMESPACE = 'parley-system';

/** K8sObject is a rendered manifest, loosely typed: tests read the fields they assert on. */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
  };
  readonly spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- manifests are checked by schema, not by type
  readonly [key: string]: unknown;
}

/** valuesFile writes YAML text to a temporary values file and returns its path. */
export function valuesFile(yamlText: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-values-'));
  const path = join(dir, 'values.yaml');
  writeFileSync(path, yamlText);
  return path;
}

/**
 * SESSION_URL_FIXTURE sets the public session URL, which an install without an Ingress or Gateway
 * must give (the chart fails otherwise); every render starts from it unless told not to.
 */
export const SESSION_URL_FIXTURE = 'test/deploy/fixtures/session-public-url.yaml';

/** RenderOptions tune template and render. */
export interface RenderOptions {
  /** sessionUrlFixture: start from SESSION_URL_FIXTURE (default true); off to test how the URL is derived or refused. */
  readonly sessionUrlFixture?: boolean;
}

/** template runs `helm template` with the given values files (and extra flags such as --set) and returns the raw result. */
export function template(
  valuesFiles: readonly string[] = [],
  extraArgs: readonly string[] = [],
  chart: string = CHART,
  options: RenderOptions = {},
): Promise<HelmResult> {
  const files = options.sessionUrlFixture === false ? valuesFiles : [SESSION_URL_FIXTURE, ...valuesFiles];
  return runHelm(['template', RELEASE, chart, '--namespace', NAMESPACE, ...files.flatMap((f) => ['--values', f]), ...extraArgs]);
}

/** render templates the chart and parses every document; a helm failure fails the caller with helm's message. */
export async function render(
  valuesFiles: readonly string[] = [],
  extraArgs: readonly string[] = [],
  chart: string = CHART,
  options: RenderOptions = {},
): Promise<K8sObject[]> {
  const result = await template(valuesFiles, extraArgs, chart, options);
  if (result.code !== 0) throw new Error(`helm template failed (${result.code}): ${result.stderr}`);
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(result.stdout)) {
    if (doc.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

// Where the model classes of each apiVersion live; a rendered apiVersion missing here fails the
// schema test, so nothing reaches a cluster unvalidated.
const MODEL_MODULES: Readonly<Record<string, string>> = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'batch/v1': 'kubernetes-models/batch/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
  'cert-manager.io/v1': '@kubernetes-models/cert-manager/cert-manager.io/v1',
  'gateway.networking.k8s.io/v1': '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1',
};

type ModelClass = new (data: unknown) => { validate(): void };

/** validateAgainstSchema checks one object against the API schema of its apiVersion and kind; returns the problem or undefined. */
export async function validateAgainstSchema(object: K8sObject): Promise<string | undefined> {
  const where = `${object.kind}/${object.metadata?.name ?? '?'}`;
  const modulePath = MODEL_MODULES[object.apiVersion];
  if (modulePath === undefined) return `${where}: no schema known for apiVersion ${object.apiVersion}`;
  const mod = (await import(modulePath)) as Record<string, unknown>;
  const Model = mod[object.kind] as ModelClass | undefined;
  if (typeof Model !== 'function') return `${where}: ${object.apiVersion} has no kind ${object.kind}`;
  try {
    new Model(object).validate();
    return undefined;
  } catch (err: unknown) {
    return `${where}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** byKind picks the objects of one kind. */
export function byKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

/** named finds one object by kind and name, or throws naming what is missing. */
export function named(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) throw new Error(`no ${kind} named ${name} was rendered`);
  return found;
}
