import type { DescService } from '@bufbuild/protobuf';
import { createClient, type Client, type Interceptor, type Transport } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { callerFromCertificate } from './identity.js';
import { spiffeIdFor, type ServiceName } from './services.js';
import { createClientTracingInterceptor } from './telemetry.js';
import type { CertificateSource, TlsMaterial } from './tls.js';

/** MtlsTransportOptions configure createMtlsTransport. */
export interface MtlsTransportOptions {
  /** baseUrl of the peer, e.g. https://localhost:7102. */
  readonly baseUrl: string;
  readonly certificates: CertificateSource;
  /** expect is the peer service; its SPIFFE ID must be the server certificate's. */
  readonly expect: ServiceName;
  readonly trustDomain: string;
  readonly interceptors?: readonly Interceptor[];
  /** defaultTimeoutMs bounds every call without its own deadline. */
  readonly defaultTimeoutMs?: number;
}

/**
 * createMtlsTransport returns a gRPC transport over HTTP/2 with mutual TLS that presents this
 * service's certificate, verifies the server against the CA and its SPIFFE ID against the
 * expected service, propagates trace context, and switches to new certificates when the files
 * are rotated (calls already in flight finish on the old connection).
 */
export function createMtlsTransport(options: MtlsTransportOptions): Transport & { close(): void } {
  const expected = spiffeIdFor(options.expect, options.trustDomain);
  const interceptors = [createClientTracingInterceptor(), ...(options.interceptors ?? [])];
  const build = (m: TlsMaterial) => {
    const nodeOptions = {
      cert: m.cert,
      key: m.key,
      ca: m.ca,
      checkServerIdentity(host: string, cert: PeerCertificate) {
        const hostError = checkServerIdentity(host, cert);
        if (hostError !== undefined) return hostError;
        const peer = callerFromCertificate(cert.raw, options.trustDomain);
        if (peer?.spiffeId !== expected) {
          return new Error(`server certificate is ${peer?.spiffeId ?? 'not a SPIFFE SVID'}, expected ${expected}`);
        }
        return undefined;
      },
    };
    const sessionManager = new Http2SessionManager(options.baseUrl, { idleConnectionTimeoutMs: 60_000 }, nodeOptions);
    const transport = createGrpcTransport({
      baseUrl: options.baseUrl,
      sessionManager,
      interceptors,
      defaultTimeoutMs: options.defaultTimeoutMs ?? 10_000,
    });
    return { transport, sessionManager };
  };
  let current = build(options.certificates.current);
  const retired: Http2SessionManager[] = [];
  const stop = options.certificates.onChange((m) => {
    retired.push(current.sessionManager);
    current = build(m);
  });
  return {
    unary: (...args) => current.transport.unary(...args),
    stream: (...args) => current.transport.stream(...args),
    close() {
      stop();
      for (const m of [...retired, current.sessionManager]) m.abort();
    },
  };
}

/** createServiceClient builds a typed client for a peer service over createMtlsTransport. */
export function createServiceClient<S extends DescService>(service: S, options: MtlsTransportOptions): Client<S> & { close(): void } {
  const transport = createMtlsTransport(options);
  return Object.assign(createClient(service, transport), { close: () => transport.close() });
}
