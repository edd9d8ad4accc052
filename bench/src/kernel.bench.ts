// Kernel overhead: unary RPC over mTLS through our kernel server (connect-node, SPIFFE caller
// check, per-RPC allow-list, tracing spans, error mapping) versus a bare @grpc/grpc-js server
// with the same TLS setup, both as their own processes, driven by the same grpc-js client.
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
import { closedLoop, type LoadResult } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));

/** KernelBenchResult is the JSON the kernel benchmark writes. */
export interface KernelBenchResult {
  readonly name: 'kernel-unary-mtls';
  readonly rows: { target: 'kernel' | 'bare-grpc-js'; result: LoadResult }[];
  readonly ratios: { concurrency: number; throughputRatio: number }[];
}

function echoClient(address: string, creds: grpc.ChannelCredentials) {
  const Client = grpc.makeGenericClientConstructor(
    { Echo: grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema) },
    'Echo',
  );
  const client = new Client(address, creds) as unknown as grpc.Client & { Echo: (r: EchoRequest, cb: (e: unknown, r: EchoResponse) => void) => void };
  const request = create(EchoRequestSchema, { message: 'benchmark payload of a typical small control-plane call' });
  return {
    call: () => new Promise<EchoResponse>((resolve, reject) => client.Echo(request, (e, r) => (e ? reject(e as Error) : resolve(r)))),
    close: () => client.close(),
  };
}

/** runKernelBenchmark measures both servers at each concurrency, interleaved, in one run. */
export async function runKernelBenchmark(options: { seconds: number; concurrency: readonly number[]; rounds: number }): Promise<KernelBenchResult> {
  const pki = await createTestPki();
  const kernel = await startEchoProcess({ as: 'identity', allow: ['edge'], tls: pki.files('identity'), env: { PARLEY_LOG_LEVEL: 'warn' } });
  const barePort = await freePort();
  const id = pki.files('identity');
  const bare = spawn(process.execPath, [join(here, 'bare-grpc-server.js'), String(barePort), id.certFile, id.keyFile, id.caFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    bare.stdout.once('data', () => resolve());
    bare.once('exit', (code) => reject(new Error(`bare server exited ${code}`)));
  });
  const edge = pki.files('edge');
  const creds = grpc.credentials.createSsl(await readFile(edge.caFile), await readFile(edge.keyFile), await readFile(edge.certFile));
  const targets = [
    { target: 'kernel' as const, client: echoClient(`localhost:${kernel.port}`, creds) },
    { target: 'bare-grpc-js' as const, client: echoClient(`localhost:${barePort}`, creds) },
  ];
  const rows: KernelBenchResult['rows'] = [];
  try {
    for (const concurrency of options.concurrency) {
      const perTarget = new Map<string, LoadResult[]>();
      for (let round = 0; round < options.rounds; round++) {
        for (const t of round % 2 === 0 ? targets : [...targets].reverse()) {
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
    bare.kill('SIGTERM');
  }
  const ratios = options.concurrency.map((concurrency) => {
    const k = rows.find((r) => r.target === 'kernel' && r.result.concurrency === concurrency)?.result.rps ?? 0;
    const b = rows.find((r) => r.target === 'bare-grpc-js' && r.result.concurrency === concurrency)?.result.rps ?? 1;
    return { concurrency, throughputRatio: Number((k / b).toFixed(2)) };
  });
  return { name: 'kernel-unary-mtls', rows, ratios };
}
