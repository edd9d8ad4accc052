import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServiceProcess, serviceScript } from '@parley/devstack';
import type { ServiceName } from '@parley/platform';
import type { createTestPki } from '@parley/test/pki';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * profilingEnv is what makes a service process write a V8 CPU profile at exit when the bench runs
 * with BENCH_CPU_PROF=<folder> (summarise one with cpu-profile-summary); empty otherwise.
 */
export function profilingEnv(): Record<string, string> {
  const dir = process.env.BENCH_CPU_PROF;
  return dir === undefined || dir === '' ? {} : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` };
}

/** ServicePorts are a service's gRPC port and its health port. */
export interface ServicePorts {
  readonly port: number;
  readonly health: number;
}

/**
 * startServiceProcesses starts each named service from its built bundle (serviceScript) with its mTLS files,
 * the peers' URLs and its own extra environment, at warn level; only error lines reach stderr.
 */
export function startServiceProcesses<N extends ServiceName>(options: {
  readonly names: readonly N[];
  readonly pki: Awaited<ReturnType<typeof createTestPki>>;
  readonly ports: Record<N, ServicePorts>;
  readonly peers: Record<string, string>;
  readonly extra: Record<N, Record<string, string>>;
  /** script replaces a service's built bundle (another build of it, to compare two builds in one run). */
  readonly script?: (name: N) => string | undefined;
}): ServiceProcess[] {
  const { pki, ports, peers, extra } = options;
  const procs = options.names.map((n) => {
    const f = pki.files(n);
    return new ServiceProcess({
      name: n,
      script: options.script?.(n) ?? serviceScript(root, n),
      env: {
        ...profilingEnv(),
        ...peers,
        ...extra[n],
        PARLEY_TLS_CERT: f.certFile,
        PARLEY_TLS_KEY: f.keyFile,
        PARLEY_TLS_CA: f.caFile,
        PARLEY_LOG_LEVEL: 'warn',
        PARLEY_SERVICE_PORT: String(ports[n].port),
        PARLEY_HEALTH_PORT: String(ports[n].health),
      },
      healthUrl: `http://127.0.0.1:${ports[n].health}/readyz`,
      onLine: (name, line) => {
        if (line.includes('"level":"error"') || line.includes('"level":50')) process.stderr.write(`${name}: ${line.slice(0, 500)}\n`);
      },
    });
  });
  for (const p of procs) p.start();
  return procs;
}
