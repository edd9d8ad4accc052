// The dev dependencies (deploy/dev/postgres.yaml, vault.yaml) and the chart's own pods pass the
// `restricted` Pod Security profile, so all of them run in a namespace that enforces it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureHelm } from '../src/helm.js';
import { render, type K8sObject } from './render.js';
import { DEV, podsOf, root } from './chart-fixture.js';
import { restrictedViolations } from './pod-security.js';

beforeAll(async () => {
  await ensureHelm();
}, 120_000);

/** manifests parses a YAML file of several documents. */
function manifests(path: string): K8sObject[] {
  return parseAllDocuments(readFileSync(join(root, path), 'utf8'))
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

describe('the restricted Pod Security profile', () => {
  for (const file of ['deploy/dev/postgres.yaml', 'deploy/dev/vault.yaml']) {
    it(`admits every pod of ${file}`, () => {
      const pods = podsOf(manifests(file));
      expect(pods.length).toBeGreaterThan(0);
      for (const [where, pod] of pods) expect(restrictedViolations(pod), where).toEqual([]);
    });
  }

  it("admits every pod of the chart with the Tilt dev values, the migration hook's included", async () => {
    for (const [where, pod] of podsOf(await render([DEV]))) expect(restrictedViolations(pod), where).toEqual([]);
  });

  it('refuses what the profile forbids (the checks can fail)', () => {
    const base = {
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{ name: 'c', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
    };
    expect(restrictedViolations(base)).toEqual([]);
    expect(restrictedViolations({ containers: [{ name: 'c' }] })).toEqual([
      'container c: allowPrivilegeEscalation is not false',
      'container c: runAsNonRoot is not true',
      'container c: seccompProfile unset',
      'container c: capabilities.drop lacks ALL',
    ]);
    expect(restrictedViolations({ ...base, volumes: [{ name: 'h', hostPath: { path: '/' } }] })).toEqual(['volume h: hostPath']);
    expect(
      restrictedViolations({
        ...base,
        containers: [
          { name: 'c', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['IPC_LOCK'] } } },
        ],
      }),
    ).toEqual(['container c: adds capability IPC_LOCK']);
  });
});
