// Malformed requests below the interceptors (issue 18): undecodable protobuf, bad gRPC and
// gRPC-Web frames, bogus compressed bodies, on the edge and on an internal service.
import { Code } from '@connectrpc/connect';
import { trailerParse } from '@connectrpc/connect/protocol-grpc-web';
import { readFile } from 'node:fs/promises';
import { connect, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from './fixture.js';
import { afterTheAbuse, grpcFrame, grpcMessageOf, grpcStatusOf, type H2Answer, h2Request, ownerKey, stack } from './hardening-stack.js';

/** hardeningMalformedCases registers the tests of malformed requests below the interceptors, on the hardening stack of the file that calls it. */
export function hardeningMalformedCases(): void {
  describe('malformed requests below the interceptors', () => {
    const createAgent = '/parley.api.v1.AgentService/CreateAgent';
    // Field 1 (name) of CreateAgentRequest holding the bytes C3 28: not UTF-8.
    const invalidUtf8Name = Buffer.from([0x0a, 0x02, 0xc3, 0x28]);
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    let session: ClientHttp2Session;
    const auth = () => ({ authorization: `Bearer ${ownerKey}` });

    beforeAll(async () => {
      session = connect(stack.publicUrl, { ca: stack.ca });
      await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject));
    });
    afterAll(() => {
      session?.close();
    });

    const connectRefusal = (a: H2Answer) => {
      expect(a.status, a.body.toString()).toBe(400);
      const error = JSON.parse(a.body.toString()) as { code: string; message: string };
      expect(error.code).toBe('invalid_argument');
      return error.message;
    };

    it('answers 400 invalid_argument to application/proto bodies that are not protobuf or not UTF-8', async () => {
      for (const body of [garbage, invalidUtf8Name]) {
        const a = await h2Request(session, { ':path': createAgent, 'content-type': 'application/proto', ...auth() }, body);
        expect(connectRefusal(a)).toMatch(/not a valid parley\.api\.v1\.CreateAgentRequest/);
      }
    });

    it('answers INVALID_ARGUMENT to gRPC frames with garbage or invalid UTF-8 in a string field', async () => {
      for (const body of [garbage, invalidUtf8Name]) {
        const a = await h2Request(
          session,
          { ':path': createAgent, 'content-type': 'application/grpc', te: 'trailers', ...auth() },
          grpcFrame(body),
        );
        expect(grpcStatusOf(a), grpcMessageOf(a)).toBe(Code.InvalidArgument);
        expect(grpcMessageOf(a)).toMatch(/not a valid parley\.api\.v1\.CreateAgentRequest/);
      }
    });

    it('answers INVALID_ARGUMENT in the gRPC-Web trailer to an undecodable gRPC-Web message', async () => {
      const a = await h2Request(
        session,
        { ':path': createAgent, 'content-type': 'application/grpc-web+proto', ...auth() },
        grpcFrame(garbage),
      );
      expect(a.status).toBe(200);
      // The last envelope of the body is the trailer block (flag 0x80), CRLF-separated header lines.
      const last = a.body.subarray(a.body.lastIndexOf(0x80));
      const trailer = trailerParse(last.subarray(5));
      expect(Number(trailer.get('grpc-status')), decodeURIComponent(trailer.get('grpc-message') ?? '')).toBe(Code.InvalidArgument);
      expect(decodeURIComponent(trailer.get('grpc-message') ?? '')).toMatch(/not a valid parley\.api\.v1\.CreateAgentRequest/);
    });

    it('answers 400 to a bogus or truncated compressed body (br, gzip)', async () => {
      const json = Buffer.from(JSON.stringify({ name: 'x', prompt: 'y' }));
      const bodies: [string, Buffer][] = [
        ['br', Buffer.from('this is not brotli at all')],
        ['br', brotliCompressSync(json).subarray(0, 5)],
        ['gzip', Buffer.from('not gzip')],
        ['gzip', gzipSync(json).subarray(0, 12)],
      ];
      for (const [encoding, body] of bodies) {
        const a = await h2Request(
          session,
          { ':path': createAgent, 'content-type': 'application/json', 'content-encoding': encoding, ...auth() },
          body,
        );
        expect(connectRefusal(a), encoding).toMatch(/not valid .*(br|gzip)/);
      }
    });

    it('refuses them the same way on an internal service, counts them, and logs them at warn, never error', async () => {
      const tls = stack.pki.files('edge');
      const options: SecureClientSessionOptions = {
        ca: await readFile(tls.caFile),
        cert: await readFile(tls.certFile),
        key: await readFile(tls.keyFile),
      };
      const internal = connect(stack.urls['tenant-data'], options);
      try {
        const a = await h2Request(
          internal,
          { ':path': '/parley.tenantdata.v1.TenantDataService/GetAgent', 'content-type': 'application/grpc', te: 'trailers' },
          grpcFrame(garbage),
        );
        expect(grpcStatusOf(a), grpcMessageOf(a)).toBe(Code.InvalidArgument);
        const p = await h2Request(
          internal,
          { ':path': '/parley.tenantdata.v1.TenantDataService/GetAgent', 'content-type': 'application/proto' },
          invalidUtf8Name,
        );
        expect(p.status).toBe(400);
      } finally {
        internal.close();
      }
      // Log lines reach the test through the processes' stdout pipes, a moment after the answer.
      const warned = () => stack.logs.filter((l) => /"level":"warn"/.test(l) && /malformed request refused/.test(l));
      await pollUntil(
        async () =>
          warned().some((l) => l.startsWith('[tenant-data]') && /"malformed_requests_total":2/.test(l)) &&
          warned().some((l) => l.startsWith('[edge]')),
        10_000,
      );
      const errors = stack.logs.filter((l) => /"level":"(error|fatal)"/.test(l));
      expect(errors).toEqual([]);
    });
  });

  afterTheAbuse();
}
