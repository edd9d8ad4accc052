import type { DescService } from '@bufbuild/protobuf';
import { createClient, type Client, type Interceptor, type Transport } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { DEFAULT_INTERNAL_DEADLINE_MS, type InternalClientImplementation } from './config.js';
import { createGrpcJsTransport, MisconfigurationLog, type EndpointConnectionEvents } from './grpc-js-transport.js';
import { callerFromCertificate } from './identity.js';
import type { Logger } from './logger.js';
import { spiffeIdFor, type ServiceName } from './services.js';
import { createClientTracingInterceptor } from './telemetry.js';
import type { CertificateSource, TlsMaterial } from './tls.js';

/** MtlsTransportOptions configure createMtlsTransport. */
export interface MtlsTransportOptions {
  /**
   * baseUrl of the peer, e.g. https://localhost:7102, or the comma-separated URLs of its replicas
   * (the dev stack's stand-in for a headless Service's DNS answers): calls are spread over them
   * the same way.
   */
  readonly baseUrl: string;
  readonly certificates: CertificateSource;
  /** expect is the peer service; its SPIFFE ID must be the server certificate's. */
  readonly expect: ServiceName;
  readonly trustDomain: string;
  readonly interceptors?: readonly Interceptor[];
  /** defaultTimeoutMs bounds every call without its own deadline (default DEFAULT_INTERNAL_DEADLINE_MS; services pass PARLEY_INTERNAL_DEADLINE_MS). */
  readonly defaultTimeoutMs?: number;
  /**
   * resolveEveryMs: how often the peer's DNS name is resolved to its endpoints (a Kubernetes
   * headless Service has one address per ready pod). Calls are spread round-robin over them.
   */
  readonly resolveEveryMs?: number;
  /** resolve maps a host name to addresses; defaults to the system resolver (tests inject one). */
  readonly resolve?: (host: string) => Promise<string[]>;
  /** implementation makes the calls: @grpc/grpc-js (the default) or connect-node's transport. */
  readonly implementation?: InternalClientImplementation;
  /**
   * logger says when the peer's DNS name stops resolving (once per outage) and when it resolves
   * again, and (grpc-js) when connections to it are refused for a TLS or identity misconfiguration
   * (once per outage) and when one connects again.
   */
  readonly logger?: Logger;
  /** pingIntervalMs: how often each connection is pinged to find a peer gone without closing (default 10 s); tests shorten it. */
  readonly pingIntervalMs?: number;
}

/** bareHost strips the brackets of an IPv6 literal in a URL's hostname. */
function bareHost(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, '');
}

async function systemResolve(host: string): Promise<string[]> {
  return (await lookup(host, { all: true })).map((a) => a.address);
}

/** EndpointTransport is one endpoint's transport: close lets its calls in flight finish, abort does not wait. */
interface EndpointTransport extends Transport {
  close(): void;
  abort(): void;
  /** failing tells that its last connection attempt failed (calls go elsewhere while another endpoint is not). */
  failing?(): boolean;
}

/** Endpoint is one resolved address (or one listed URL) of a peer with its own HTTP/2 connection. */
interface Endpoint {
  readonly address: string;
  readonly transport: EndpointTransport;
}

/** EndpointSpec is what one endpoint's transport is built from. */
interface EndpointSpec {
  /** target is the URL to connect to. */
  readonly target: URL;
  /** verifyHost is the name the server certificate must carry (also sent as SNI when the target is a bare address). */
  readonly verifyHost: string;
  readonly byAddress: boolean;
  readonly material: TlsMaterial;
  readonly interceptors: readonly Interceptor[];
  readonly defaultTimeoutMs: number;
  readonly peer: ServiceName;
  readonly pingIntervalMs: number;
  readonly connections: EndpointConnectionEvents | undefined;
  checkServerIdentity(host: string, cert: PeerCertificate): Error | undefined;
}

/** connectNodeEndpoint is an endpoint served by connect-node's gRPC transport (PARLEY_INTERNAL_CLIENT=connect-node). */
function connectNodeEndpoint(spec: EndpointSpec): EndpointTransport {
  const nodeOptions = {
    cert: spec.material.cert,
    key: spec.material.key,
    ca: spec.material.ca,
    // Connect to the pod's address but verify the certificate against the service's DNS name.
    ...(spec.byAddress ? { servername: spec.verifyHost } : {}),
    checkServerIdentity: spec.checkServerIdentity,
  };
  const baseUrl = spec.target.origin;
  // Pings find a peer that vanished without closing (node failure, partition) within seconds.
  const sessionManager = new Http2SessionManager(
    baseUrl,
    { idleConnectionTimeoutMs: 60_000, pingIntervalMs: spec.pingIntervalMs, pingTimeoutMs: 5_000 },
    nodeOptions,
  );
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    interceptors: [...spec.interceptors],
    defaultTimeoutMs: spec.defaultTimeoutMs,
    // No gzip on the internal plane: the profiles of ResolveForConversation showed tenant-data
    // spending ~10% of its CPU gzipping answers over 1 KiB (agents with their policy) for a
    // hop that stays inside the cluster. Not advertising grpc-accept-encoding keeps the
    // answers plain; servers still accept compressed requests from other clients.
    acceptCompression: [],
  });
  return {
    unary: (...args) => transport.unary(...args),
    stream: (...args) => transport.stream(...args),
    // The retired connection closes itself once idle; its calls in flight finish on it.
    close: () => undefined,
    abort: () => sessionManager.abort(),
  };
}

/** grpcJsEndpoint is an endpoint whose calls @grpc/grpc-js makes (the default). */
function grpcJsEndpoint(spec: EndpointSpec): EndpointTransport {
  const port = spec.target.port || '443';
  return createGrpcJsTransport({
    // The URL's host, brackets and all for IPv6: grpc-js's default resolver reads host:port.
    target: `${spec.target.hostname}:${port}`,
    ...(spec.byAddress ? { servername: spec.verifyHost } : {}),
    material: spec.material,
    checkServerIdentity: spec.checkServerIdentity,
    interceptors: spec.interceptors,
    defaultTimeoutMs: spec.defaultTimeoutMs,
    peer: spec.peer,
    pingIntervalMs: spec.pingIntervalMs,
    ...(spec.connections !== undefined ? { connections: spec.connections } : {}),
  });
}

/**
 * createMtlsTransport returns a gRPC transport over HTTP/2 with mutual TLS that presents this
 * service's certificate, verifies the server against the CA and its SPIFFE ID against the
 * expected service, propagates trace context, and switches to new certificates when the files
 * are rotated (calls already in flight finish on the old connection). HTTP/2 connections live
 * long, so for a DNS name it resolves every endpoint and spreads calls over them per call
 * rather than pinning one pod. Calls are made by @grpc/grpc-js (createGrpcJsTransport): in the
 * profiles of CreateSession, connect-node's client was a large share of the edge's CPU per call;
 * `implementation: 'connect-node'` keeps connect-node's transport available.
 */
export function createMtlsTransport(options: MtlsTransportOptions): Transport & { close(): void } {
  const expected = spiffeIdFor(options.expect, options.trustDomain);
  const implementation = options.implementation ?? 'grpc-js';
  const endpointOf = implementation === 'grpc-js' ? grpcJsEndpoint : connectNodeEndpoint;
  const defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_INTERNAL_DEADLINE_MS;
  const misconfigurations = options.logger !== undefined ? new MisconfigurationLog(options.expect, options.logger) : undefined;
  // A list of URLs is a fixed set of endpoints, as if DNS had answered with them.
  const listed = options.baseUrl.split(',');
  const url = new URL(listed[0] ?? options.baseUrl);
  const host = bareHost(url.hostname);
  // An IP literal or localhost is one endpoint; a DNS name may be a headless Service of many pods.
  const balanced = listed.length === 1 && isIP(host) === 0 && host !== 'localhost';
  // address: one resolved address of `host` (connect there, verify the certificate for `host`).
  const build = (address: string | undefined, m: TlsMaterial) => {
    if (address === undefined) return buildFor(options.baseUrl, host, false, m, host);
    return buildFor(`https://${isIP(address) === 6 ? `[${address}]` : address}:${url.port || '443'}`, host, true, m, address);
  };
  // target: the URL to connect to; verifyHost: the name its certificate must carry (also sent as
  // SNI when the target is a bare address); key: the endpoint's address in `endpoints`.
  const buildFor = (target: string, verifyHost: string, byAddress: boolean, m: TlsMaterial, key: string): EndpointTransport => {
    const targetUrl = new URL(target);
    return endpointOf({
      target: targetUrl,
      verifyHost,
      byAddress,
      material: m,
      defaultTimeoutMs,
      peer: options.expect,
      pingIntervalMs: options.pingIntervalMs ?? 10_000,
      connections: misconfigurations?.for(key),
      // server.address on each CLIENT span says which pod answered.
      interceptors: [
        createClientTracingInterceptor({ address: bareHost(targetUrl.hostname), port: Number(targetUrl.port || '443') }),
        ...(options.interceptors ?? []),
      ],
      checkServerIdentity(_servername: string, cert: PeerCertificate) {
        const hostError = checkServerIdentity(verifyHost, cert);
        if (hostError !== undefined) return hostError;
        const peer = callerFromCertificate(cert.raw, options.trustDomain);
        if (peer?.spiffeId !== expected) {
          return new Error(`server certificate is ${peer?.spiffeId ?? 'not a SPIFFE SVID'}, expected ${expected}`);
        }
        return undefined;
      },
    });
  };

  let material = options.certificates.current;
  let endpoints: Endpoint[] =
    listed.length > 1
      ? listed.map((target) => ({
          address: target,
          transport: buildFor(target, bareHost(new URL(target).hostname), false, material, target),
        }))
      : [{ address: host, transport: build(undefined, material) }];
  let next = 0;
  const retired: EndpointTransport[] = [];
  const retire = (e: Endpoint) => {
    retired.push(e.transport);
    // In-flight calls finish on the retired connection; it is closed once idle or at close().
    e.transport.close();
    if (retired.length > 64) retired.shift()?.abort();
  };
  const stop = options.certificates.onChange((m) => {
    material = m;
    endpoints = endpoints.map((e) => {
      retire(e);
      if (listed.length > 1)
        return { address: e.address, transport: buildFor(e.address, bareHost(new URL(e.address).hostname), false, m, e.address) };
      return { address: e.address, transport: build(balanced ? e.address : undefined, m) };
    });
  });

  let timer: NodeJS.Timeout | undefined;
  if (balanced) {
    const resolve = options.resolve ?? systemResolve;
    // Said once when refreshes start failing and once when they work again, not every refresh.
    let dnsFailing = false;
    const dnsFailed = (reason: string) => {
      if (dnsFailing) return;
      dnsFailing = true;
      options.logger?.warn(
        { peer: options.expect, host, reason, endpoints: endpoints.length },
        'resolving the peer failed; calls keep going to its last known endpoints',
      );
    };
    const refresh = async () => {
      let addresses: string[];
      try {
        addresses = [...new Set(await resolve(host))].sort();
      } catch (err) {
        // Keep the last known endpoints when DNS is briefly unavailable.
        dnsFailed(err instanceof Error ? err.message : String(err));
        return;
      }
      if (addresses.length === 0) {
        dnsFailed('no addresses');
        return;
      }
      if (dnsFailing) {
        dnsFailing = false;
        options.logger?.info({ peer: options.expect, host, endpoints: addresses.length }, 'resolving the peer works again');
      }
      const current = new Map(endpoints.map((e) => [e.address, e]));
      endpoints = addresses.map((address) => current.get(address) ?? { address, transport: build(address, material) });
      for (const [address, e] of current) {
        if (addresses.includes(address)) continue;
        retire(e);
        misconfigurations?.forget(address);
      }
    };
    void refresh();
    timer = setInterval(() => void refresh(), options.resolveEveryMs ?? 5_000);
    timer.unref();
  }
  // Round-robin, passing over an endpoint whose last connection attempt failed (a pod restarting
  // or gone) while another is usable; when all failed, the next in turn (its call waits for one
  // fresh attempt: createGrpcJsTransport).
  const pick = () => {
    const n = endpoints.length;
    const first = (next + 1) % n;
    for (let i = 0; i < n; i++) {
      const at = (first + i) % n;
      const e = endpoints[at] as Endpoint;
      if (e.transport.failing?.() !== true) {
        next = at;
        return e.transport;
      }
    }
    next = first;
    return (endpoints[first] ?? (endpoints[0] as Endpoint)).transport;
  };
  return {
    unary: (...args) => pick().unary(...args),
    stream: (...args) => pick().stream(...args),
    close() {
      stop();
      if (timer !== undefined) clearInterval(timer);
      for (const t of [...retired, ...endpoints.map((e) => e.transport)]) t.abort();
    },
  };
}

/** createServiceClient builds a typed client for a peer service over createMtlsTransport. */
export function createServiceClient<S extends DescService>(service: S, options: MtlsTransportOptions): Client<S> & { close(): void } {
  const transport = createMtlsTransport(options);
  return Object.assign(createClient(service, transport), { close: () => transport.close() });
}
