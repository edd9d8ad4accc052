import { Code, ConnectError, createContextValues, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import { TLSSocket, type SecureContextOptions } from 'node:tls';
import { callerKey, createAuthorizationInterceptor, type CallerPolicy } from './authz.js';
import { isCallerMistake, toConnectError, UnavailableError, type ErrorAudience } from './errors.js';
import { addRoutesToGrpcJs, recordRoutes, type SurfaceCall } from './grpc-js-adapter.js';
import { callerFromCertificate, type Caller } from './identity.js';
import type { Logger } from './logger.js';
import { createServerTracingInterceptor } from './telemetry.js';
import { createTextFieldInterceptor } from './text-fields.js';
import type { CertificateSource, TlsMaterial } from './tls.js';

/** MtlsServerOptions configure createMtlsServer. */
export interface MtlsServerOptions {
  readonly certificates: CertificateSource;
  readonly trustDomain: string;
  readonly policies: readonly CallerPolicy[];
  readonly routes: (router: ConnectRouter) => void;
  readonly logger: Logger;
  /** interceptors run inside authorization, closest to the handlers. */
  readonly interceptors?: readonly Interceptor[];
}

/** MtlsServer is a listening (or ready to listen) mTLS server. */
export interface MtlsServer {
  /** listen binds the port (0 for any) and resolves to the port bound. */
  listen(port: number, host: string): Promise<number>;
  /** close stops accepting, lets in-flight calls finish within graceMs, then cuts what is left. */
  close(graceMs: number): Promise<void>;
}

/**
 * createErrorInterceptor maps domain errors to gRPC codes in one place and logs failures: a
 * caller's mistake at info, anything else at error with its cause, which never reaches the
 * caller (it gets INTERNAL "internal error"). Server-streaming handlers run while the response
 * is read, after next() has returned, so their errors are mapped inside the stream as well.
 */
export function createErrorInterceptor(logger: Logger, audience: ErrorAudience = 'internal'): Interceptor {
  const mapAndLog = (err: unknown, method: string, signal: AbortSignal): ConnectError => {
    // CANCELED while our own caller still waits was not decided by anyone here: a peer's HTTP/2
    // stream was reset under the call (the peer process died, its connection dropped). That is
    // UNAVAILABLE, which callers retry on another replica, not CANCELED ("you gave up").
    const cut = err instanceof ConnectError && err.code === Code.Canceled && !signal.aborted;
    const mapped = toConnectError(
      cut ? new UnavailableError('a peer service went away during the call; retry', { cause: err }) : err,
      audience,
    );
    if (isCallerMistake(mapped.code)) {
      logger.info({ method, code: mapped.code, reason: mapped.rawMessage }, 'rpc refused');
    } else {
      logger.error({ method, code: mapped.code, err }, 'rpc failed');
    }
    return mapped;
  };
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw mapAndLog(err, method, req.signal);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* mapped() {
        try {
          yield* messages;
        } catch (err) {
          throw mapAndLog(err, method, req.signal);
        }
      })(),
    };
  };
}

/**
 * RotatingServerCredentials are grpc-js server credentials whose certificate, key and CA follow a
 * CertificateSource: grpc-js calls setSecureContext on its HTTP/2 servers when they change, so new
 * connections use the new certificate and established ones keep theirs until they close.
 */
class RotatingServerCredentials extends grpc.ServerCredentials {
  constructor(material: TlsMaterial) {
    // A client certificate from the CA is required: the handshake fails without one.
    super({ requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, RotatingServerCredentials.contextOf(material));
  }

  static contextOf(m: TlsMaterial): SecureContextOptions {
    return { cert: m.cert, key: m.key, ca: m.ca, minVersion: 'TLSv1.2' };
  }

  /** rotate puts new material into service for the connections that come next. */
  rotate(m: TlsMaterial): void {
    this.updateSecureContextOptions(RotatingServerCredentials.contextOf(m));
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** MAX_CALLERS_CACHED bounds the certificate → caller cache of the slow path (one entry per distinct peer certificate). */
const MAX_CALLERS_CACHED = 1_024;

/**
 * connectionOf finds the TLS connection a grpc-js call arrived on. grpc-js has no public way to
 * it: its getAuthContext() runs getPeerCertificate() (every fingerprint, the whole subject) on
 * every call, which was 22% of the kernel's CPU in its profile. The path below is grpc-js
 * 1.14's (pinned exactly); when it is not there, callers are read the slow, public way, and
 * test/kernel/grpc-js-server.test.ts fails so that an upgrade does not slow the plane silently.
 */
export function connectionOf(call: SurfaceCall): TLSSocket | undefined {
  const socket = (call as { call?: { stream?: { session?: { socket?: unknown } } } }).call?.stream?.session?.socket;
  return socket instanceof TLSSocket ? socket : undefined;
}

/**
 * createCallerReader reads the SPIFFE caller of a call from its verified peer certificate, once
 * per connection (X.509 parsing costs far more than the call), as connect-node's server did.
 */
function createCallerReader(trustDomain: string): (call: SurfaceCall) => Caller | undefined {
  const perConnection = new WeakMap<TLSSocket, Caller | null>();
  const perCertificate = new Map<string, Caller | null>();
  return (call) => {
    const socket = connectionOf(call);
    if (socket !== undefined) {
      const cached = perConnection.get(socket);
      if (cached !== undefined) return cached ?? undefined;
      let caller: Caller | undefined;
      if (socket.authorized) {
        const peer = socket.getPeerCertificate(false);
        if (peer.raw !== undefined) caller = callerFromCertificate(peer.raw, trustDomain);
      }
      perConnection.set(socket, caller ?? null);
      return caller;
    }
    const peer = call.getAuthContext().sslPeerCertificate;
    if (peer?.raw === undefined) return undefined;
    const cached = perCertificate.get(peer.fingerprint256);
    if (cached !== undefined) return cached ?? undefined;
    const caller = callerFromCertificate(peer.raw, trustDomain);
    if (perCertificate.size >= MAX_CALLERS_CACHED) perCertificate.clear();
    perCertificate.set(peer.fingerprint256, caller ?? null);
    return caller;
  };
}

/**
 * createMtlsServer builds the server every service runs on its internal port: @grpc/grpc-js on
 * HTTP/2 over TLS, requiring a client certificate from the configured CA, serving the handlers
 * services register with `routes(router)` (connect's plain-object handlers) with tracing, error
 * mapping, per-RPC authorization and the text rule (no NUL or unpaired surrogate in any string
 * field) around them as connect interceptors, undecodable bodies refused as INVALID_ARGUMENT
 * (counted, logged at warn), and certificates swapped in when the files change. grpc-js rather
 * than connect-node: the same calls cost about a third of the CPU (bench/README.md, kernel). The
 * edge's public plane (Connect JSON, gRPC-Web) stays on connect-node (createConnectHandler).
 */
export function createMtlsServer(options: MtlsServerOptions): MtlsServer {
  const credentials = new RotatingServerCredentials(options.certificates.current);
  const server = new grpc.Server({
    // As connect-node's defaults were: no limit of its own on message sizes inside the cluster.
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    // channelz stays on (about 2% of the kernel's CPU): grpc-js 1.14's forceShutdown finds the
    // connections to cut through channelz's registry only, so without it close() could not end
    // calls still running after the grace period (test/kernel/grpc-js-server.test.ts).
  });
  let boundPort: number | undefined;
  const callerOf = createCallerReader(options.trustDomain);
  addRoutesToGrpcJs(server, recordRoutes(options.routes), {
    logger: options.logger,
    interceptors: [
      createServerTracingInterceptor(),
      createErrorInterceptor(options.logger),
      createAuthorizationInterceptor(options.policies),
      createTextFieldInterceptor(),
      ...(options.interceptors ?? []),
    ],
    contextValues: (call) => createContextValues().set(callerKey, callerOf(call)),
    localPort: () => boundPort,
  });
  const stopWatching = options.certificates.onChange((m) => credentials.rotate(m));

  return {
    async listen(port, host) {
      const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      boundPort = await new Promise<number>((resolve, reject) =>
        server.bindAsync(address, credentials, (err, bound) => (err === null ? resolve(bound) : reject(err))),
      );
      return boundPort;
    },
    async close(graceMs) {
      stopWatching();
      const drained = new Promise<'drained'>((resolve) => server.tryShutdown(() => resolve('drained')));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), graceMs);
      });
      const outcome = await Promise.race([drained, deadline]);
      clearTimeout(timer);
      if (outcome === 'deadline') {
        server.forceShutdown();
        options.logger.warn('shutdown grace period over; closed the remaining connections');
      }
    },
  };
}
