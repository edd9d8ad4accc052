// A micro-benchmark of the internal plane's per-call telemetry, in one process: the CPU one
// served unary call spends on its SERVER span and duration metric (startRequestTrace, then
// enterServerCall and its end report, then finishRequestTrace), and one client call on its
// CLIENT span, traceparent injection and duration metric. Not a suite: run it by hand,
//   node bench/dist/span-cpu.js [calls] [processor]
// where processor is `noop` (a service without an OTLP endpoint, as the kernel bench runs),
// `batch` (a BatchSpanProcessor whose exporter drops its batches: the deployed shape) or `off`
// (the SDK not started, the API's no-ops: the floor). Prints CPU µs per call, median of 5 rounds.
import { Code, type Interceptor, type UnaryRequest, type UnaryResponse } from '@connectrpc/connect';
import { context } from '@opentelemetry/api';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import {
  createClientTracingInterceptor,
  enterServerCall,
  finishRequestTrace,
  startRequestTrace,
  startTelemetry,
  type TraceCarrier,
} from '@parley/platform';

const calls = Number(process.argv[2] ?? 20_000);
const processorKind = process.argv[3] ?? 'noop';

/** DroppingExporter takes every batch and drops it, so that only the processor's own work is measured. */
class DroppingExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: (result: { code: 0 }) => void): void {
    done({ code: 0 });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

if (processorKind !== 'off') {
  startTelemetry({
    serviceName: 'identity',
    serviceVersion: 'bench',
    otlpEndpoint: undefined,
    ...(processorKind === 'batch'
      ? { spanProcessors: [new BatchSpanProcessor({ exporter: new DroppingExporter(), maxQueueSize: 65_536, scheduledDelayMillis: 200 })] }
      : {}),
  });
}

const metadata: TraceCarrier = {
  get: (name) => (name === 'content-type' ? 'application/grpc+proto' : name === 'traceparent' ? traceparent : undefined),
};
let traceparent: string | undefined;
const method = 'parley.testing.v1.EchoService/Echo';

/** serverCall is what the grpc-js adapter does for the telemetry of one unary call. */
function serverCall(): void {
  const started = startRequestTrace({
    headers: metadata,
    method,
    peerAddress: '127.0.0.1',
    peerPort: 40_000,
    localPort: 8443,
    trustParent: true,
  });
  context.with(started.context, () => {
    const done = enterServerCall(started.trace, method);
    done(0);
  });
  finishRequestTrace(started.trace, 0, performance.now());
}

// The client side: the tracing interceptor around a call that answers at once.
const echoMethod = {
  name: 'Echo',
  parent: { typeName: 'parley.testing.v1.EchoService' },
} as unknown as UnaryRequest['method'];
const response = { stream: false, message: {}, header: new Headers(), trailer: new Headers() } as unknown as UnaryResponse;
const clientTracing: Interceptor = createClientTracingInterceptor({ address: '10.0.0.7', port: 8443 });
const clientNext = clientTracing(() => Promise.resolve(response));

async function clientCall(): Promise<void> {
  const req = {
    stream: false,
    service: echoMethod.parent,
    method: echoMethod,
    header: new Headers(),
    contextValues: undefined,
    message: {},
    signal: undefined,
    url: '',
    requestMethod: 'POST',
  } as unknown as UnaryRequest;
  await clientNext(req);
  if (req.header.get('traceparent') === null && processorKind !== 'off') throw new Error('no traceparent injected');
  void Code;
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function measure(name: string, fn: () => void | Promise<void>): Promise<void> {
  const rounds: number[] = [];
  for (let round = 0; round < 6; round++) {
    const before = cpuMicros();
    for (let i = 0; i < calls; i++) await fn();
    // Let the batch processor export what the round made, inside the round.
    await new Promise((r) => setTimeout(r, 250));
    if (round > 0) rounds.push((cpuMicros() - before) / calls);
  }
  rounds.sort((a, b) => a - b);
  process.stdout.write(
    `${name.padEnd(34)} ${(rounds[2] ?? Number.NaN).toFixed(2)} µs/call (rounds ${rounds.map((r) => r.toFixed(1)).join(' ')})\n`,
  );
}

await measure(`server, root span, ${processorKind}`, () => {
  traceparent = undefined;
  serverCall();
});
await measure(`server, sampled parent, ${processorKind}`, () => {
  traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  serverCall();
});
await measure(`client call, ${processorKind}`, clientCall);
process.exit(0);
