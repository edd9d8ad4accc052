// The edge's resident memory after HTTP/2 abuse (issue 18: 115 MB grew to 304 MB and stayed). A
// dev stack provides the peers; for each allocator setting an edge process of its own is started
// next to it, warmed up, abused — stream floods held open until the request timeout, rapid resets
// until GOAWAY, a burst of short calls on many connections — and then left alone while its RSS is
// sampled. The JS heap of the edge stays flat; what stays up is native memory, so the variants
// differ only in glibc malloc's settings (arena count, trim threshold).
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, loadDevStackConfig, ServiceProcess, serviceScript, startDevStack } from '@parley/devstack';
import { peerUrlVariable, type ServiceName } from '@parley/platform';
import WebSocket from 'ws';
import { rssMb } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PEERS: ServiceName[] = ['identity', 'tenant-data', 'secrets', 'audit', 'integrations'];

/** EdgeMemoryVariant is one allocator setting's figures, in MB of RSS. */
export interface EdgeMemoryVariant {
  readonly variant: string;
  readonly env: Record<string, string>;
  readonly baselineMb: number;
  readonly peakMb: number;
  /** afterMb[i] is the RSS i × sampleSeconds after the abuse ended. */
  readonly afterMb: number[];
  readonly retainedMb: number;
}

/** EdgeMemoryBenchResult is what `npm run bench -- edge-memory` reports. */
export interface EdgeMemoryBenchResult {
  readonly sampleSeconds: number;
  readonly abuse: string;
  readonly variants: EdgeMemoryVariant[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function whoAmI(session: ClientHttp2Session, apiKey: string, endStream: boolean) {
  const req = session.request(
    {
      ':method': 'POST',
      ':path': '/parley.api.v1.AccountService/WhoAmI',
      'content-type': 'application/json',
      authorization: `Bearer ${apiKey}`,
    },
    { endStream: false },
  );
  req.on('error', () => undefined);
  if (endStream) req.end('{}');
  else req.write('{');
  return req;
}

/** abuse does to one edge what the attack run did, within the edge's limits (it is refused where they apply). */
async function abuse(url: string, ca: Buffer, apiKey: string): Promise<void> {
  const open = (): ClientHttp2Session => {
    const s = connect(url, { ca, peerMaxConcurrentStreams: 1000 });
    s.on('error', () => undefined);
    return s;
  };
  // 1. Stream floods: 40 connections × 200 streams whose bodies never finish (held until the request timeout).
  const floods = Array.from({ length: 40 }, open);
  for (const s of floods) for (let i = 0; i < 200; i++) whoAmI(s, apiKey, false);
  // 2. Rapid resets: 10 connections resetting streams until the edge sends GOAWAY.
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      const s = open();
      for (let i = 0; i < 5_000 && !s.closed && !s.destroyed; i++) {
        const req = whoAmI(s, apiKey, false);
        await new Promise((r) => setImmediate(r));
        req.close(constants.NGHTTP2_CANCEL);
      }
      s.destroy();
    }),
  );
  // 3. A burst of short, valid calls on 20 connections.
  const burst = Array.from({ length: 20 }, open);
  await Promise.all(
    burst.map(async (s) => {
      for (let round = 0; round < 10; round++)
        await Promise.all(Array.from({ length: 50 }, () => new Promise((r) => whoAmI(s, apiKey, true).on('close', r).resume())));
    }),
  );
  for (const s of burst) s.destroy();
  await sleep(6_000); // the floods' request timeout (5 s) passes
  for (const s of floods) s.destroy();
}

/** collectGarbage asks a process's V8 for a full GC over the inspector protocol. */
async function collectGarbage(url: string): Promise<void> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const done = new Promise((resolve) =>
    ws.on('message', (data: Buffer) => (JSON.parse(data.toString('utf8')) as { id?: number }).id === 1 && resolve(undefined)),
  );
  ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
  await done;
  ws.close();
}

/** runEdgeMemoryBenchmark measures the edge's RSS around the abuse for each allocator variant. */
export async function runEdgeMemoryBenchmark(options: {
  adminUrl: string;
  samples: number;
  sampleSeconds: number;
  /** only runs the variants whose name contains it. */
  only?: string;
}): Promise<EdgeMemoryBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-edge-memory-'));
  const dev = await startDevStack(
    loadDevStackConfig(
      {
        PARLEY_DEV_DIR: dir,
        PARLEY_DEV_PORT_BASE: String(24_000 + Math.floor(Math.random() * 200) * 50),
        PARLEY_LOG_LEVEL: 'warn',
        DATABASE_URL: options.adminUrl,
      },
      root,
    ),
    () => undefined,
  );
  const variants: EdgeMemoryVariant[] = [];
  try {
    const info = dev.info;
    const ca = await readFile(info.caCert);
    const apiKey = info.bootstrap!.apiKey!;
    const settings: { variant: string; env: Record<string, string> }[] = [
      { variant: 'glibc defaults', env: {} },
      { variant: 'MALLOC_ARENA_MAX=2', env: { MALLOC_ARENA_MAX: '2' } },
      { variant: 'MALLOC_ARENA_MAX=2, MALLOC_TRIM_THRESHOLD_=131072', env: { MALLOC_ARENA_MAX: '2', MALLOC_TRIM_THRESHOLD_: '131072' } },
      // A fixed mmap threshold stops glibc from raising it after each freed large block, so big
      // buffers (TLS records, HTTP/2 frames) keep coming from mmap and go back to the OS when freed.
      { variant: 'MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=131072', env: { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' } },
    ];
    // The last variant keeps glibc's defaults and has V8 run a full GC right after the abuse, through
    // the inspector protocol (HeapProfiler.collectGarbage): what RSS is once the garbage is collected.
    settings.push({ variant: 'glibc defaults, full GC forced after the abuse', env: { NODE_OPTIONS: '--inspect=127.0.0.1:0' } });
    const only = options.only;
    for (const { variant, env } of settings.filter((v) => only === undefined || v.variant.includes(only))) {
      let inspectorUrl: string | undefined;
      const [port, health, publicPort] = [await freePort(), await freePort(), await freePort()];
      const edge = new ServiceProcess({
        name: 'edge',
        script: serviceScript(root, 'edge'),
        env: {
          ...env,
          ...Object.fromEntries(PEERS.map((p) => [peerUrlVariable(p), info.services[p].url])),
          PARLEY_TLS_CERT: join(info.certsDir, 'edge.crt'),
          PARLEY_TLS_KEY: join(info.certsDir, 'edge.key'),
          PARLEY_TLS_CA: info.caCert,
          PARLEY_LOG_LEVEL: 'warn',
          PARLEY_SERVICE_PORT: String(port),
          PARLEY_HEALTH_PORT: String(health),
          PARLEY_PUBLIC_PORT: String(publicPort),
          PARLEY_EDGE_REQUEST_TIMEOUT_MS: '5000',
          PARLEY_EDGE_HEADERS_TIMEOUT_MS: '5000',
        },
        healthUrl: `http://127.0.0.1:${health}/readyz`,
        onLine: (_name, line) => {
          inspectorUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1];
        },
      });
      edge.start();
      try {
        await edge.waitReady(60_000);
        const url = `https://localhost:${publicPort}`;
        const pid = edge.pid!;
        // Warm-up: the edge's normal working set (caches, JIT, a few connections).
        const warm = connect(url, { ca });
        warm.on('error', () => undefined);
        for (let i = 0; i < 20; i++)
          await Promise.all(Array.from({ length: 20 }, () => new Promise((r) => whoAmI(warm, apiKey, true).on('close', r).resume())));
        warm.destroy();
        await sleep(3_000);
        const baselineMb = await rssMb(pid);
        let peakMb = baselineMb;
        const sampler = setInterval(
          () =>
            void rssMb(pid).then(
              (mb) => (peakMb = Math.max(peakMb, mb)),
              () => undefined,
            ),
          250,
        );
        await abuse(url, ca, apiKey);
        clearInterval(sampler);
        if (inspectorUrl !== undefined) await collectGarbage(inspectorUrl);
        const afterMb: number[] = [];
        for (let i = 0; i <= options.samples; i++) {
          afterMb.push(await rssMb(pid));
          if (i < options.samples) await sleep(options.sampleSeconds * 1000);
        }
        variants.push({ variant, env, baselineMb, peakMb, afterMb, retainedMb: Math.round((afterMb.at(-1)! - baselineMb) * 10) / 10 });
        process.stdout.write(`edge-memory: ${variant}: ${baselineMb} MB → peak ${peakMb} → ${afterMb.join(', ')} MB\n`);
      } finally {
        await edge.stop();
      }
    }
  } finally {
    await dev.stop();
  }
  return {
    sampleSeconds: options.sampleSeconds,
    abuse:
      '40 connections × 200 streams with unfinished bodies (refused past 100 per connection; the rest cut by a 5 s request timeout), 10 connections resetting streams until GOAWAY, then 10,000 WhoAmI calls on 20 connections',
    variants,
  };
}
