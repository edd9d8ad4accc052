import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVICE_NAMES, type ServiceName } from '@parley/platform';
import {
  type CallerPolicyLike,
  deriveServiceGraph,
  edgeSet,
  loadCallerPolicies,
  parseServiceGraph,
  REGENERATE_COMMAND,
  SERVICE_GRAPH_PATH,
  serializeServiceGraph,
} from './service-graph.js';

const root = join(import.meta.dirname, '..', '..');

/** A made-up set of allow-lists, standing in for the services' policies in the machinery tests. */
function fixturePolicies(): Map<ServiceName, readonly CallerPolicyLike[]> {
  const policies = new Map<ServiceName, readonly CallerPolicyLike[]>(SERVICE_NAMES.map((s) => [s, []]));
  policies.set('tenant-data', [
    { service: 'parley.tenantdata.v1.TenantDataService', allow: { getAgent: ['voice-orchestrator', 'edge'], purgeSubject: ['lifecycle'] } },
    { service: 'parley.tenantdata.v1.TranscriptService', allow: { appendTurn: ['voice-orchestrator'] } },
  ]);
  policies.set('audit', [{ service: 'parley.audit.v1.AuditService', allow: { append: ['edge', 'secrets'], query: ['edge'] } }]);
  return policies;
}

describe('the service graph', () => {
  it('folds every RPC allow-list of a server into its sorted, distinct callers', () => {
    const graph = deriveServiceGraph(fixturePolicies());
    expect(graph['tenant-data']).toEqual(['edge', 'lifecycle', 'voice-orchestrator']);
    expect(graph.audit).toEqual(['edge', 'secrets']);
    expect(graph.edge).toEqual([]);
    expect(edgeSet(graph)).toEqual([
      'edge -> audit',
      'edge -> tenant-data',
      'lifecycle -> tenant-data',
      'secrets -> audit',
      'voice-orchestrator -> tenant-data',
    ]);
  });

  it('refuses a caller that is not a Parley service', () => {
    const policies = fixturePolicies();
    policies.set('identity', [{ service: 'parley.identity.v1.IdentityService', allow: { mintSession: ['billing'] } }]);
    expect(() => deriveServiceGraph(policies)).toThrow(/identity: parley\.identity\.v1\.IdentityService\/mintSession allows "billing"/);
  });

  it('serializes to the format of the committed file and reads it back', () => {
    const graph = deriveServiceGraph(fixturePolicies());
    const text = serializeServiceGraph(graph);
    expect(text).toContain(REGENERATE_COMMAND);
    expect(parseServiceGraph(text)).toEqual(graph);
  });

  it('fails naming the service whose policy.ts is missing', async () => {
    const fake = mkdtempSync(join(tmpdir(), 'parley-policies-'));
    for (const service of SERVICE_NAMES.filter((s) => s !== 'lifecycle')) {
      mkdirSync(join(fake, 'services', service, 'src'), { recursive: true });
      writeFileSync(join(fake, 'services', service, 'src', 'policy.ts'), 'export const callerPolicies = [];\n');
    }
    await expect(loadCallerPolicies(fake)).rejects.toThrow(/no caller policy for lifecycle: .*services\/lifecycle\/src\/policy\.ts/);
  });

  it('loads policy modules and derives the graph from them', async () => {
    const fake = mkdtempSync(join(tmpdir(), 'parley-policies-'));
    for (const service of SERVICE_NAMES) {
      mkdirSync(join(fake, 'services', service, 'src'), { recursive: true });
      const policies = fixturePolicies().get(service) ?? [];
      writeFileSync(join(fake, 'services', service, 'src', 'policy.ts'), `export const callerPolicies = ${JSON.stringify(policies)};\n`);
    }
    expect(deriveServiceGraph(await loadCallerPolicies(fake))).toEqual(deriveServiceGraph(fixturePolicies()));
  });

  // The drift check: the chart's NetworkPolicies come from the committed file (chart.test.ts holds
  // the rendered edges equal to it), and the committed file must equal what the policies say.
  it(`in ${SERVICE_GRAPH_PATH} equals the graph derived from services/*/src/policy.ts`, async () => {
    const derived = serializeServiceGraph(deriveServiceGraph(await loadCallerPolicies(root)));
    // A file snapshot: fails with the diff when the committed file is stale, and vitest's own
    // `--update` switch rewrites it (never on CI, where vitest does not write snapshots).
    await expect(derived, `${SERVICE_GRAPH_PATH} is stale; regenerate it with: ${REGENERATE_COMMAND}`).toMatchFileSnapshot(
      join(root, SERVICE_GRAPH_PATH),
    );
  });
});
