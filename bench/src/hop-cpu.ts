// Server CPU per internal unary call: the kernel's echo fixture against a bare @grpc/grpc-js
// server, each its own process, driven by one grpc-js client; CPU read from /proc/<pid>/schedstat
// around closed loops (and the client's p50 latency), servers interleaved round by round, median
// round shown. Not a suite (the `kernel` suite is): a by-hand measurement for comparing builds
// in the same minute, e.g.
//   HOP_BASE=/other/checkout/test/dist/echo-main.js node bench/dist/hop-cpu.js [seconds] [rounds] [callers...]
// HOP_PROF=<folder> profiles this build's kernel (bench/dist/cpu-profile-summary.js reads it).
// HOP_BASE adds the fixture of another build ("kernel, base") beside this build's.
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, ServiceProcess } from '@parley/devstack';
import { ECHO_MAIN } from '@parley/test/echo-fixture';
import { grpcJsUnary } from '@parley/test/grpc-js';
import { createTestPki } from '@parley/test/pki';
import { EchoRequestSchema, EchoResponseSchema, type EchoRequest, type EchoResponse } from '@parley/proto/parley/testing/v1/echo_pb.js';

const here = dirname(fileURLToPath(import.meta.url));
const [secondsArg, roundsArg, ...callersArg] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 3);
const rounds = Number(roundsArg ?? 3);
const callers = callersArg.length > 0 ? callersArg.map(Number) : [1, 50];

async function cpuNs(pid: number): Promise<number> {
  return Number((await readFile(`/proc/${pid}/schedstat`, 'utf8')).split(' ')[0]);
}

const pki = await createTestPki();
const id = pki.files('identity');

async function startKernel(name: string, script: string, env: Record<string, string> = {}) {
  const port = await freePort();
  const healthPort = await freePort();
  const proc = new ServiceProcess({
    name,
    script,
    env: {
      PARLEY_ECHO_AS: 'identity',
      PARLEY_ECHO_ALLOW: 'edge',
      PARLEY_SERVICE_PORT: String(port),
      PARLEY_HEALTH_PORT: String(healthPort),
      PARLEY_TLS_CERT: id.certFile,
      PARLEY_TLS_KEY: id.keyFile,
      PARLEY_TLS_CA: id.caFile,
      PARLEY_LOG_LEVEL: 'warn',
      PARLEY_CERT_RELOAD_INTERVAL_MS: '2000',
      ...env,
    },
    healthUrl: `http://127.0.0.1:${healthPort}/readyz`,
  });
  proc.start();
  await proc.waitReady();
  return { port, pid: proc.pid as number, stop: () => proc.stop() };
}

async function startBare() {
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [join(here, 'bare-grpc-server.js'), String(port), id.certFile, id.keyFile, id.caFile],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
  return {
    port,
    pid: child.pid as number,
    stop: async () => {
      child.kill('SIGTERM');
    },
  };
}

const servers = [
  {
    name: 'kernel',
    // HOP_PROF=<folder>: this build's kernel writes a V8 CPU profile there when it stops.
    ...(await startKernel(
      'kernel',
      ECHO_MAIN,
      process.env.HOP_PROF ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.HOP_PROF}` } : {},
    )),
  },
  ...(process.env.HOP_BASE ? [{ name: 'kernel, base', ...(await startKernel('kernel-base', process.env.HOP_BASE)) }] : []),
  { name: 'kernel, sampler off', ...(await startKernel('kernel-off', ECHO_MAIN, { OTEL_TRACES_SAMPLER: 'always_off' })) },
  { name: 'bare grpc-js', ...(await startBare()) },
];

const edge = pki.files('edge');
const creds = grpc.credentials.createSsl(await readFile(edge.caFile), await readFile(edge.keyFile), await readFile(edge.certFile));
const Client = grpc.makeGenericClientConstructor(
  { Echo: grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema) },
  'Echo',
);
const request = create(EchoRequestSchema, { message: 'benchmark payload of a typical small control-plane call' });
const clients = servers.map((s) => {
  const c = new Client(`localhost:${s.port}`, creds) as unknown as grpc.Client & {
    Echo: (r: EchoRequest, cb: (e: unknown, r: EchoResponse) => void) => void;
  };
  return () => new Promise<void>((resolve, reject) => c.Echo(request, (e) => (e ? reject(e as Error) : resolve())));
});

/** loop calls for `forSeconds` from `concurrency` closed-loop callers; each call's latency (ms) goes into `latencies` when given. */
async function loop(call: () => Promise<void>, concurrency: number, forSeconds: number, latencies?: number[]): Promise<number> {
  let n = 0;
  const end = performance.now() + forSeconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await call();
        latencies?.push(performance.now() - t0);
        n++;
      }
    }),
  );
  return n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (const concurrency of callers) {
  const results = servers.map(() => ({ us: [] as number[], rps: [] as number[], p50: [] as number[] }));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < servers.length; k++) {
      const i = (k + round) % servers.length;
      const server = servers[i]!;
      const call = clients[i]!;
      await loop(call, concurrency, 0.5);
      const before = await cpuNs(server.pid);
      const t0 = performance.now();
      const latencies: number[] = [];
      const n = await loop(call, concurrency, seconds, latencies);
      const elapsed = (performance.now() - t0) / 1000;
      const after = await cpuNs(server.pid);
      results[i]!.us.push((after - before) / n / 1000);
      results[i]!.rps.push(n / elapsed);
      results[i]!.p50.push(median(latencies));
    }
  }
  const bare = median(results[servers.length - 1]!.us);
  process.stdout.write(`\n${concurrency} caller(s), load ${(await readFile('/proc/loadavg', 'utf8')).split(' ')[0]}\n`);
  for (let i = 0; i < servers.length; i++) {
    const us = median(results[i]!.us);
    process.stdout.write(
      `  ${servers[i]!.name.padEnd(22)} ${us.toFixed(1).padStart(7)} µs/call  ×${(us / bare).toFixed(2)} bare   ${Math.round(median(results[i]!.rps))} /s   p50 ${median(results[i]!.p50).toFixed(3)} ms   (rounds ${results[i]!.us.map((u) => u.toFixed(0)).join(' ')})\n`,
    );
  }
}
for (const s of servers) await s.stop();
process.exit(0);
