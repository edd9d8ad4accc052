// The service graph: which services may call which, derived from the per-RPC caller allow-lists
// (services/<name>/src/policy.ts). The chart renders its NetworkPolicy edges from the generated
// deploy/parley/files/service-graph.json; these helpers derive the same graph from the policies
// and read it back out of rendered NetworkPolicies, so tests can hold all three equal.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isServiceName, SERVICE_NAMES, type ServiceName } from '@parley/platform';

/** CallerPolicyLike is the shape of a CallerPolicy as a policy module exports it. */
export interface CallerPolicyLike {
  readonly service: string;
  readonly allow: Readonly<Record<string, readonly string[]>>;
}

/** ServiceGraph maps every server to the sorted services allowed to call at least one of its RPCs. */
export type ServiceGraph = Readonly<Record<ServiceName, readonly ServiceName[]>>;

/** SERVICE_GRAPH_PATH is the generated file the chart reads, relative to the repository root. */
export const SERVICE_GRAPH_PATH = 'deploy/parley/files/service-graph.json';

/** REGENERATE_COMMAND is what to run after changing a policy. */
export const REGENERATE_COMMAND = 'pnpm exec vitest run test/deploy/service-graph.test.ts --update';

/** policyPath is where a service's caller allow-lists live. */
export function policyPath(root: string, service: ServiceName): string {
  return join(root, 'services', service, 'src', 'policy.ts');
}

/**
 * loadCallerPolicies imports every service's policy module and returns its callerPolicies. A
 * missing file or export is an error naming the file, because a service without allow-lists
 * would get no NetworkPolicy edges and every call to it would be cut.
 */
export async function loadCallerPolicies(root: string): Promise<Map<ServiceName, readonly CallerPolicyLike[]>> {
  const missing = SERVICE_NAMES.filter((service) => !existsSync(policyPath(root, service)));
  if (missing.length > 0) {
    throw new Error(
      `no caller policy for ${missing.join(', ')}: each service must have services/<name>/src/policy.ts ` +
        `exporting callerPolicies (CallerPolicy[] from @parley/platform); missing ${missing.map((s) => `services/${s}/src/policy.ts`).join(', ')}`,
    );
  }
  const policies = new Map<ServiceName, readonly CallerPolicyLike[]>();
  for (const service of SERVICE_NAMES) {
    const mod = (await import(pathToFileURL(policyPath(root, service)).href)) as { callerPolicies?: unknown };
    if (!Array.isArray(mod.callerPolicies)) {
      throw new Error(`services/${service}/src/policy.ts must export callerPolicies as an array of CallerPolicy`);
    }
    policies.set(service, mod.callerPolicies as readonly CallerPolicyLike[]);
  }
  return policies;
}

/** deriveServiceGraph folds each server's allow-lists into server -> sorted, distinct callers. */
export function deriveServiceGraph(policies: ReadonlyMap<ServiceName, readonly CallerPolicyLike[]>): ServiceGraph {
  const graph = {} as Record<ServiceName, ServiceName[]>;
  for (const server of SERVICE_NAMES) {
    const serverPolicies = policies.get(server);
    if (serverPolicies === undefined) throw new Error(`no caller policies given for ${server}`);
    const callers = new Set<ServiceName>();
    for (const policy of serverPolicies) {
      for (const [method, allowed] of Object.entries(policy.allow)) {
        for (const caller of allowed) {
          if (!isServiceName(caller)) {
            throw new Error(`${server}: ${policy.service}/${method} allows "${caller}", which is not one of ${SERVICE_NAMES.join(', ')}`);
          }
          callers.add(caller);
        }
      }
    }
    graph[server] = [...callers].sort();
  }
  return graph;
}

/** serializeServiceGraph renders the graph exactly as the committed file holds it. */
export function serializeServiceGraph(graph: ServiceGraph): string {
  const servers: Record<string, readonly string[]> = {};
  for (const server of [...SERVICE_NAMES].sort()) servers[server] = graph[server];
  const comment =
    'GENERATED from the per-RPC caller allow-lists (services/<name>/src/policy.ts): server -> services allowed to call it. ' +
    `Do not edit; regenerate with: ${REGENERATE_COMMAND}`;
  return `${JSON.stringify({ $comment: comment, servers }, null, 2)}\n`;
}

/** parseServiceGraph reads the committed file, refusing servers or callers that are not Parley services. */
export function parseServiceGraph(text: string): ServiceGraph {
  const parsed = JSON.parse(text) as { servers?: Record<string, unknown> };
  if (parsed.servers === undefined) throw new Error(`${SERVICE_GRAPH_PATH} has no "servers"`);
  const graph = {} as Record<ServiceName, ServiceName[]>;
  for (const [server, callers] of Object.entries(parsed.servers)) {
    if (!isServiceName(server)) throw new Error(`${SERVICE_GRAPH_PATH}: "${server}" is not a Parley service`);
    if (!Array.isArray(callers) || !callers.every((c): c is ServiceName => typeof c === 'string' && isServiceName(c))) {
      throw new Error(`${SERVICE_GRAPH_PATH}: the callers of ${server} must be Parley service names`);
    }
    graph[server] = callers;
  }
  const missing = SERVICE_NAMES.filter((s) => graph[s] === undefined);
  if (missing.length > 0) throw new Error(`${SERVICE_GRAPH_PATH} has no entry for ${missing.join(', ')}`);
  return graph;
}

/** edgeSet lists a graph's edges as sorted "caller -> server" strings, for readable diffs. */
export function edgeSet(graph: ServiceGraph): string[] {
  const edges: string[] = [];
  for (const server of SERVICE_NAMES) for (const caller of graph[server] ?? []) edges.push(`${caller} -> ${server}`);
  return edges.sort();
}
