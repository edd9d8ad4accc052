// What the hardening tests share: one public stack with small HTTP/2 and body limits (so the abuse
// reaches them quickly), an owner key and an agent, and raw HTTP/2 and gRPC helpers.
import type { ClientHttp2Session, IncomingHttpHeaders } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool } from '../src/pg.js';
import { startPublicStack, type PublicStack } from './fixture.js';

/** MAX_STREAMS is the edge's concurrent-stream limit in these tests. */
export const MAX_STREAMS = 8;
/** REQUEST_TIMEOUT_MS is the edge's request timeout in these tests. */
export const REQUEST_TIMEOUT_MS = 1500;
/** MAX_CONNECTIONS_PER_ADDRESS is the edge's per-address connection limit in these tests. */
export const MAX_CONNECTIONS_PER_ADDRESS = 12;

// Assigned in useHardeningStack's beforeAll; importers see them through ES live bindings.
export let stack: PublicStack;
export let ownerKey: string;
export let agentId: string;

/** useHardeningStack starts the stack for the calling test file (hardening.test.ts) and stops it after. */
export function useHardeningStack(): void {
  beforeAll(async () => {
    // Small HTTP/2 and body limits, so the abuse tests below reach them quickly.
    stack = await startPublicStack({
      edge: {
        PARLEY_EDGE_MAX_CONCURRENT_STREAMS: String(MAX_STREAMS),
        PARLEY_EDGE_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        PARLEY_EDGE_MAX_CONNECTIONS_PER_ADDRESS: String(MAX_CONNECTIONS_PER_ADDRESS),
        PARLEY_EDGE_STREAM_RESET_BURST: '50',
        PARLEY_EDGE_STREAM_RESET_RATE: '10',
      },
    });
    ownerKey = stack.bootstrap.apiKey;
    const agent = await stack.call('/parley.api.v1.AgentService/CreateAgent', { name: 'Hardening bot', prompt: 'Be brief.' }, ownerKey);
    expect(agent.status, JSON.stringify(agent.body)).toBe(200);
    agentId = (agent.body.agent as { id: string }).id;
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });
}

export async function rowsMatching(table: string, marker: string): Promise<number> {
  const pool = adminPool(1);
  try {
    const { rows } = await pool.query<{ n: string }>(`select count(*) as n from ${table} x where x::text like $1`, [`%${marker}%`]);
    return Number(rows[0]?.n ?? 0);
  } finally {
    await pool.end();
  }
}

/** H2Answer is a raw HTTP/2 answer. */
export interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
}

/** h2Request sends one request on an HTTP/2 session and collects the whole answer. */
/** h2Request sends one request on a session and collects the answer. */
export function h2Request(session: ClientHttp2Session, headers: Record<string, string>, body: Buffer): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ...headers });
    let status = 0;
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      status = Number(h[':status']);
      responseHeaders = h;
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, headers: responseHeaders, trailers, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    req.end(body);
  });
}

/** grpcFrame wraps bytes in a gRPC length-prefixed message (uncompressed). */
/** grpcFrame wraps a message in a gRPC length-prefixed frame. */
export function grpcFrame(bytes: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([prefix, bytes]);
}

/** grpcStatusOf reads grpc-status from the trailers (or a trailers-only answer's headers). */
/** grpcStatusOf reads grpc-status from the trailers or headers. */
export const grpcStatusOf = (a: H2Answer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);
/** grpcMessageOf reads grpc-message from the trailers or headers. */
export const grpcMessageOf = (a: H2Answer) => decodeURIComponent(String(a.trailers['grpc-message'] ?? a.headers['grpc-message'] ?? ''));

/** afterTheAbuse checks, once the file's abuse is over, that no service logged at error and every one still answers. */
export function afterTheAbuse(): void {
  describe('after the abuse', () => {
    it('logged nothing at error in any service, and every service still answers', async () => {
      expect(stack.logs.filter((l) => /"level":"(error|fatal)"/.test(l))).toEqual([]);
      expect((await stack.call('/parley.api.v1.AgentService/ListAgents', {}, ownerKey)).status).toBe(200);
    });
  });
}
