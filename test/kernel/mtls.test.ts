import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateSource,
  callerOf,
  createLogger,
  createMtlsServer,
  createServiceClient,
  defineCallerPolicy,
  InvalidArgumentError,
  type MtlsServer,
  type TlsFiles,
} from '@parley/platform';
import { EchoResponseSchema, EchoService } from '@parley/proto/parley/testing/v1/echo_pb.js';
import { createTestPki, type TestPki } from '../src/pki.js';

const logger = createLogger({ service: 'test', version: 'test', level: 'silent' });

// identity serves Echo to edge only; AdminEcho to nobody.
const policy = defineCallerPolicy(EchoService, { echo: ['edge'], adminEcho: [], echoStream: ['edge'] });

let pki: TestPki;
let server: MtlsServer;
let url: string;

function rawClient(files: Partial<TlsFiles> & { caFile: string }) {
  return createClient(
    EchoService,
    createGrpcTransport({
      baseUrl: url,
      nodeOptions: {
        ca: readFileSync(files.caFile),
        ...(files.certFile ? { cert: readFileSync(files.certFile) } : {}),
        ...(files.keyFile ? { key: readFileSync(files.keyFile) } : {}),
      },
    }),
  );
}

async function codeOf(p: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/**
 * handshakeAlert opens a raw TLS connection with the given client files and reports what the server
 * did: an alert, a close, or acceptance (an HTTP/2 server sends its SETTINGS frame at once). TLS 1.3
 * reports the client-certificate verdict only after the client's Finished, hence the first read.
 */
async function handshakeAlert(files: Partial<TlsFiles> & { caFile: string }): Promise<string> {
  const port = Number(new URL(url).port);
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ALPNProtocols: ['h2'],
      ca: readFileSync(files.caFile),
      ...(files.certFile ? { cert: readFileSync(files.certFile) } : {}),
      ...(files.keyFile ? { key: readFileSync(files.keyFile) } : {}),
    });
    socket.on('error', (err) => resolve(err.message));
    socket.on('close', () => resolve('closed without alert'));
    socket.on('data', () => resolve('server accepted the connection'));
  });
}

beforeAll(async () => {
  pki = await createTestPki();
  const certificates = await CertificateSource.open(pki.files('identity'));
  server = createMtlsServer({
    certificates,
    trustDomain: 'parley.local',
    policies: [policy],
    logger,
    routes(router) {
      router.service(EchoService, {
        echo: (req, ctx) => create(EchoResponseSchema, { message: req.message, caller: callerOf(ctx).spiffeId, servedBy: 'identity' }),
        adminEcho: (req) => ({ message: req.message }),
        async *echoStream(req) {
          for (let index = 0; index < req.count; index++) yield { message: req.message, index };
          if (req.fail === 'invalid_argument') throw new InvalidArgumentError('count is too high for this test', { field: 'count' });
          if (req.fail === 'internal') throw new Error('db password=hunter2 at 10.0.0.7:5432');
        },
      });
    },
  });
  url = `https://localhost:${await server.listen(0, '127.0.0.1')}`;
});

afterAll(async () => {
  await server?.close(1_000);
});

describe('mTLS server', () => {
  it('accepts the TLS connection of a valid client certificate (control for the refusals below)', async () => {
    expect(await handshakeAlert(pki.files('edge'))).toBe('server accepted the connection');
  });

  it('refuses a call without a client certificate', async () => {
    expect(await codeOf(rawClient({ caFile: pki.paths.caCert }).echo({ message: 'hi' }))).not.toBe('ok');
    expect(await handshakeAlert({ caFile: pki.paths.caCert })).toMatch(/alert certificate required/);
  });

  it('refuses a client certificate from another CA', async () => {
    const foreign = await pki.foreign('edge');
    expect(await codeOf(rawClient({ ...foreign, caFile: pki.paths.caCert }).echo({ message: 'hi' }))).not.toBe('ok');
    expect(await handshakeAlert({ ...foreign, caFile: pki.paths.caCert })).toMatch(/closed without alert|alert unknown ca/);
  });

  it('refuses an expired client certificate', async () => {
    const expired = await pki.issue('expired-edge', {
      spiffeId: 'spiffe://parley.local/edge',
      notBefore: new Date(Date.now() - 48 * 3_600_000),
      validityHours: 1,
    });
    expect(await codeOf(rawClient(expired).echo({ message: 'hi' }))).not.toBe('ok');
    expect(await handshakeAlert(expired)).toMatch(/closed without alert|alert certificate expired/);
  });

  it('answers PERMISSION_DENIED naming caller and method for a caller not on the allow-list', async () => {
    const err = await rawClient(pki.files('secrets'))
      .echo({ message: 'hi' })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toBe('caller spiffe://parley.local/secrets may not call parley.testing.v1.EchoService/Echo');
  });

  it('denies by default: a method with an empty allow-list refuses every caller', async () => {
    expect(await codeOf(rawClient(pki.files('edge')).adminEcho({ message: 'hi' }))).toBe(Code.PermissionDenied);
  });

  it('answers UNAUTHENTICATED to a certificate from the right CA that carries no SPIFFE ID', async () => {
    const anonymous = await pki.issue('anonymous', { commonName: 'no-spiffe' });
    expect(await codeOf(rawClient(anonymous).echo({ message: 'hi' }))).toBe(Code.Unauthenticated);
  });

  it('denies a SPIFFE ID from another trust domain even with a service name', async () => {
    const other = await pki.issue('other-td', { spiffeId: 'spiffe://evil.example/edge' });
    expect(await codeOf(rawClient(other).echo({ message: 'hi' }))).toBe(Code.PermissionDenied);
  });

  it('lets an allowed caller through and tells the handler who called', async () => {
    const res = await rawClient(pki.files('edge')).echo({ message: 'hi' });
    expect(res.message).toBe('hi');
    expect(res.caller).toBe('spiffe://parley.local/edge');
  });

  it('refuses principal headers from any caller other than the edge', async () => {
    const withHeaders = defineCallerPolicy(EchoService, { echo: ['edge', 'voice-orchestrator'], adminEcho: [], echoStream: [] });
    const certificates = await CertificateSource.open(pki.files('tenant-data'));
    const s = createMtlsServer({
      certificates,
      trustDomain: 'parley.local',
      policies: [withHeaders],
      logger,
      routes: (r) => r.service(EchoService, { echo: (req) => ({ message: req.message }), adminEcho: (req) => ({ message: req.message }) }),
    });
    const port = await s.listen(0, '127.0.0.1');
    try {
      const mk = async (service: 'edge' | 'voice-orchestrator') =>
        createServiceClient(EchoService, {
          baseUrl: `https://localhost:${port}`,
          certificates: await CertificateSource.open(pki.files(service)),
          expect: 'tenant-data',
          trustDomain: 'parley.local',
        });
      const headers = { 'x-parley-principal-tenant-id': '00000000-0000-4000-8000-000000000001' };
      const fromOrchestrator = await mk('voice-orchestrator');
      const fromEdge = await mk('edge');
      expect(await codeOf(fromOrchestrator.echo({ message: 'x' }, { headers }))).toBe(Code.PermissionDenied);
      expect(await codeOf(fromOrchestrator.echo({ message: 'x' }))).toBe('ok');
      expect(await codeOf(fromEdge.echo({ message: 'x' }, { headers }))).toBe('ok');
      fromOrchestrator.close();
      fromEdge.close();
    } finally {
      await s.close(1_000);
    }
  });

  it('client refuses a server whose SPIFFE ID is not the expected service', async () => {
    const client = createServiceClient(EchoService, {
      baseUrl: url,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'secrets', // the server is identity
      trustDomain: 'parley.local',
    });
    const err = await client.echo({ message: 'hi' }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect(String((err as ConnectError).message) + String(((err as ConnectError).cause as Error | undefined)?.message)).toContain(
      'expected spiffe://parley.local/secrets',
    );
    client.close();
  });

  it('maps errors raised inside a server stream like unary ones: domain errors keep their code, others never leak', async () => {
    const client = rawClient(pki.files('edge'));
    const read = async (fail: string) => {
      const got: number[] = [];
      try {
        for await (const m of client.echoStream({ message: 's', count: 2, fail })) got.push(m.index);
        return { got, error: undefined };
      } catch (err) {
        return { got, error: ConnectError.from(err) };
      }
    };
    expect(await read('')).toEqual({ got: [0, 1], error: undefined });
    const domain = await read('invalid_argument');
    expect(domain.got).toEqual([0, 1]);
    expect(domain.error?.code).toBe(Code.InvalidArgument);
    expect(domain.error?.rawMessage).toBe('count is too high for this test');
    const internal = await read('internal');
    expect(internal.error?.code).toBe(Code.Internal);
    expect(internal.error?.rawMessage).toBe('internal error');
    expect(JSON.stringify(internal.error)).not.toContain('hunter2');
  });
});
