// Kernel overhead: unary RPC over mTLS through our kernel server (gRPC served by grpc-js, SPIFFE
// caller check, per-RPC allow-list, tracing spans, error mapping) versus two bare servers with the same
// TLS setup: @grpc/grpc-js (the baseline) and connect-node without our interceptors (to
// tell our cost from the library's). Each runs as its own process; one grpc-js client drives all.
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@parley/devstack';
import { startEchoProcess } from '@parley/test/echo-fixture';
import { grpcJsUnary } from '@parley/test/grpc-js';
import { createTestPki } from '@parley/test/pki';
import { EchoRequestSchema, EchoResponseSchema, type EchoRequest, type EchoResponse } from '@parley/proto/parley/testing/v1/echo_pb.js';
import { closedLoop, figure, type LoadResult, type SummaryFigure } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));

type Target = 'kernel' | 'bare-connect-node' | 'bare-grpc-js' | 'kernel, young gen 32 MB' | 'bare-connect-node, young gen 32 MB';

/**
 * YOUNG_GEN is the one configuration tried on connect-node's side (issue 15: can configuration
 * close the gap to grpc-js?): V8's semi-space at 32 MB instead of its default, because garbage
 * collection of per-call garbage was connect-node's largest single cost in its profile (22%).
 */
const YOUNG_GEN = '--max-semi-space-size=32';

/** KernelBenchResult is the JSON the kernel benchmark writes. */
export interface KernelBenchResult {
  readonly name: 'kernel-unary-mtls';
  readonly rows: { target: Target; result: LoadResult }[];
  readonly ratios: {
    concurrency: number;
    kernelVsGrpcJs: number;
    kernelVsConnect: number;
    connectVsGrpcJs: number;
    /** youngGenKernelVsGrpcJs and youngGenConnectVsGrpcJs are the same servers with YOUNG_GEN. */
    youngGenKernelVsGrpcJs: number;
    youngGenConnectVsGrpcJs: number;
  }[];
  /** summary holds the issue-15 figures against their goals (bare grpc-js is the floor). */
  readonly summary: Record<string, SummaryFigure>;
}

function echoClient(address: string, creds: grpc.ChannelCredentials) {
  const Client = grpc.makeGenericClientConstructor(
    { Echo: grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema) },
    'Echo',
  );
  const client = new Client(address, creds) as unknown as grpc.Client & {
    Echo: (r: EchoRequest, cb: (e: unknown, r: EchoResponse) => void) => void;
  };
  const request = create(EchoRequestSchema, { message: 'benchmark payload of a typical small control-plane call' });
  return {
    call: () => new Promise<EchoResponse>((resolve, reject) => client.Echo(request, (e, r) => (e ? reject(e as Error) : resolve(r)))),
    close: () => client.close(),
  };
}

/** runKernelBenchmark measures both servers at each concurrency, interleaved, in one run. */
export async function runKernelBenchmark(options: {
  seconds: number;
  concurrency: readonly number[];
  rounds: number;
}): Promise<KernelBenchResult> {
  const pki = await createTestPki();
  // The fixture re-reads its certificate files every 200 ms (for the rotation tests), 5% of the
  // kernel's CPU in its profile; the kernel as deployed reads them every 2 s (the default).
  const asDeployed = { PARLEY_LOG_LEVEL: 'warn', PARLEY_CERT_RELOAD_INTERVAL_MS: '2000' };
  const kernel = await startEchoProcess({ as: 'identity', allow: ['edge'], tls: pki.files('identity'), env: asDeployed });
  const kernelYoung = await startEchoProcess({
    as: 'identity',
    allow: ['edge'],
    tls: pki.files('identity'),
    env: { ...asDeployed, NODE_OPTIONS: YOUNG_GEN },
  });
  const id = pki.files('identity');
  const startBare = async (script: string, nodeFlags: readonly string[] = []) => {
    const port = await freePort();
    const child = spawn(process.execPath, [...nodeFlags, join(here, script), String(port), id.certFile, id.keyFile, id.caFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)));
    });
    return { port, child };
  };
  const bareGrpc = await startBare('bare-grpc-server.js');
  const bareConnect = await startBare('bare-connect-server.js');
  const bareConnectYoung = await startBare('bare-connect-server.js', [YOUNG_GEN]);
  const edge = pki.files('edge');
  const creds = grpc.credentials.createSsl(await readFile(edge.caFile), await readFile(edge.keyFile), await readFile(edge.certFile));
  const targets = [
    { target: 'kernel' as const, client: echoClient(`localhost:${kernel.port}`, creds) },
    { target: 'bare-connect-node' as const, client: echoClient(`localhost:${bareConnect.port}`, creds) },
    { target: 'bare-grpc-js' as const, client: echoClient(`localhost:${bareGrpc.port}`, creds) },
    { target: 'kernel, young gen 32 MB' as const, client: echoClient(`localhost:${kernelYoung.port}`, creds) },
    { target: 'bare-connect-node, young gen 32 MB' as const, client: echoClient(`localhost:${bareConnectYoung.port}`, creds) },
  ];
  const rows: KernelBenchResult['rows'] = [];
  try {
    for (const concurrency of options.concurrency) {
      const perTarget = new Map<string, LoadResult[]>();
      for (let round = 0; round < options.rounds; round++) {
        // Rotate the order each round so that no server always runs first (or last) on a busy machine.
        for (const t of [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)]) {
          const r = await closedLoop(t.client.call, { concurrency, seconds: options.seconds, warmupSeconds: 1 });
          perTarget.set(t.target, [...(perTarget.get(t.target) ?? []), r]);
        }
      }
      for (const t of targets) {
        // The median round by throughput: one noisy round on a shared machine does not decide.
        const rounds = [...(perTarget.get(t.target) ?? [])].sort((a, b) => a.rps - b.rps);
        rows.push({ target: t.target, result: rounds[Math.floor(rounds.length / 2)] as LoadResult });
      }
    }
  } finally {
    for (const t of targets) t.client.close();
    await kernel.process.stop();
    await kernelYoung.process.stop();
    bareGrpc.child.kill('SIGTERM');
    bareConnect.child.kill('SIGTERM');
    bareConnectYoung.child.kill('SIGTERM');
  }
  const rps = (target: Target, concurrency: number) =>
    rows.find((r) => r.target === target && r.result.concurrency === concurrency)?.result.rps ?? Number.NaN;
  const ratio = (a: number, b: number) => Number((a / b).toFixed(2));
  const ratios = options.concurrency.map((concurrency) => ({
    concurrency,
    kernelVsGrpcJs: ratio(rps('kernel', concurrency), rps('bare-grpc-js', concurrency)),
    kernelVsConnect: ratio(rps('kernel', concurrency), rps('bare-connect-node', concurrency)),
    connectVsGrpcJs: ratio(rps('bare-connect-node', concurrency), rps('bare-grpc-js', concurrency)),
    youngGenKernelVsGrpcJs: ratio(rps('kernel, young gen 32 MB', concurrency), rps('bare-grpc-js', concurrency)),
    youngGenConnectVsGrpcJs: ratio(rps('bare-connect-node, young gen 32 MB', concurrency), rps('bare-grpc-js', concurrency)),
  }));
  const low = Math.min(...options.concurrency);
  const top = Math.max(...options.concurrency);
  const p99 = (target: Target, concurrency: number) =>
    rows.find((r) => r.target === target && r.result.concurrency === concurrency)?.result.p99Ms ?? Number.NaN;
  const summary: Record<string, SummaryFigure> = {};
  for (const c of options.concurrency) {
    const x = rps('kernel', c) / rps('bare-grpc-js', c);
    summary[`internal hop throughput at ${c} caller${c === 1 ? '' : 's'} / bare grpc-js`] = figure(x, '×', '>= 0.8', x >= 0.8);
  }
  // p99 the other way round (floor / ours), so that ≥ 0.8 reads the same as for throughput.
  const p99Ratio = p99('bare-grpc-js', low) / p99('kernel', low);
  summary[`internal hop p99 at ${low} caller: bare grpc-js / kernel`] = figure(p99Ratio, '×', '>= 0.8', p99Ratio >= 0.8);
  summary[`internal hop throughput at ${top} callers`] = figure(rps('kernel', top), '/s', 'reported', true);
  return { name: 'kernel-unary-mtls', rows, ratios, summary };
}
