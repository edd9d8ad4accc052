// A test fixture process built from the platform kernel exactly as a service is: it serves
// parley.testing.v1.EchoService so that the kernel's tests and benchmark can exercise mTLS,
// allow-lists, tracing across processes and graceful shutdown with real processes.
//   PARLEY_ECHO_AS     the service identity it runs as (a Parley service name)
//   PARLEY_ECHO_ALLOW  comma-separated callers allowed to call Echo
//   PARLEY_ECHO_PEER   a service name; with forward=true, Echo calls that peer's Echo
//   PARLEY_ECHO_POD    a replica name echoed back, to tell replicas apart
// SIGUSR2 ends every Echo delay now running: a test holds a call in flight (a long delay_ms) for
// exactly as long as it needs, instead of guessing a delay a loaded machine might outlast.
import { create } from '@bufbuild/protobuf';
import {
  defineCallerPolicy,
  envOptional,
  envString,
  isServiceName,
  runMain,
  callerOf,
  InvalidArgumentError,
  type ServiceName,
} from '@parley/platform';
import { EchoResponseSchema, EchoService } from '@parley/proto/parley/testing/v1/echo_pb.js';

function serviceName(value: string, variable: string): ServiceName {
  if (!isServiceName(value)) throw new Error(`${variable}: "${value}" is not a Parley service name`);
  return value;
}

const env = process.env;
const as = serviceName(envString(env, 'PARLEY_ECHO_AS'), 'PARLEY_ECHO_AS');
const allow = (envOptional(env, 'PARLEY_ECHO_ALLOW') ?? '')
  .split(',')
  .filter(Boolean)
  .map((s) => serviceName(s, 'PARLEY_ECHO_ALLOW'));
const peerName = envOptional(env, 'PARLEY_ECHO_PEER');
const pod = envOptional(env, 'PARLEY_ECHO_POD') ?? '';
const peer = peerName === undefined ? undefined : serviceName(peerName, 'PARLEY_ECHO_PEER');

/** held are the ends of the Echo delays running now; SIGUSR2 ends them all. */
const held = new Set<() => void>();
process.on('SIGUSR2', () => {
  for (const release of held) release();
  held.clear();
});

/** delay waits `ms`, or until SIGUSR2 releases it. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const release = () => {
      clearTimeout(timer);
      held.delete(release);
      resolve();
    };
    const timer = setTimeout(release, ms);
    held.add(release);
  });
}

runMain({
  name: as,
  version: 'test',
  policies: [defineCallerPolicy(EchoService, { echo: allow, adminEcho: [], echoStream: allow })],
  setup(ctx) {
    const client = peer === undefined ? undefined : ctx.clientFor(peer, EchoService);
    return {
      routes(router) {
        router.service(EchoService, {
          async echo(req, hctx) {
            if (req.delayMs > 60_000) throw new InvalidArgumentError('delay_ms must be at most 60000', { field: 'delay_ms' });
            if (req.delayMs > 0) await delay(req.delayMs);
            if (req.forward && client !== undefined) {
              const res = await client.echo({ message: req.message });
              return create(EchoResponseSchema, { message: res.message, caller: callerOf(hctx).spiffeId, servedBy: res.servedBy, pod });
            }
            return create(EchoResponseSchema, { message: req.message, caller: callerOf(hctx).spiffeId, servedBy: as, pod });
          },
          adminEcho(req) {
            return { message: req.message };
          },
        });
      },
    };
  },
});
