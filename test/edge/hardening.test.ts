// Hostile input through the real public stack (issue 18): text Postgres cannot store, malformed
// bodies below the interceptors, session tokens with stray characters, and HTTP/2 abuse of the
// edge's public port. Every refusal is the caller's error code with a message naming what to fix,
// never INTERNAL, and nothing is written.
import { Code, ConnectError } from '@connectrpc/connect';
import { trailerParse } from '@connectrpc/connect/protocol-grpc-web';
import { readFile } from 'node:fs/promises';
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { adminPool } from '../src/pg.js';
import { pollUntil, startPublicStack, type PublicStack } from './fixture.js';

const MAX_STREAMS = 8;
const REQUEST_TIMEOUT_MS = 1500;
const MAX_CONNECTIONS_PER_ADDRESS = 12;

let stack: PublicStack;
let ownerKey: string;
let agentId: string;

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

/** rowsMatching counts rows of a Parley table whose text contains a NUL-free marker. */
async function rowsMatching(table: string, marker: string): Promise<number> {
  const pool = adminPool(1);
  try {
    const { rows } = await pool.query<{ n: string }>(`select count(*) as n from ${table} x where x::text like $1`, [`%${marker}%`]);
    return Number(rows[0]?.n ?? 0);
  } finally {
    await pool.end();
  }
}

describe('NUL characters in request strings', () => {
  const refusedFor = async (path: string, body: unknown, field: RegExp) => {
    const res = await stack.call(path, body, ownerKey);
    expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(400);
    expect(res.body.code).toBe('invalid_argument');
    expect(res.body.message as string, path).toMatch(field);
    expect(res.body.message as string).toMatch(/NUL character \(U\+0000\)/);
  };

  it('answers INVALID_ARGUMENT naming the field on every kind of public RPC, and writes nothing', async () => {
    const marker = `nul-${Date.now()}`;
    await refusedFor('/parley.api.v1.AgentService/CreateAgent', { name: `${marker}\u0000x`, prompt: 'p' }, /^name /);
    await refusedFor('/parley.api.v1.AgentService/CreateAgent', { name: marker, prompt: 'a\u0000b' }, /^prompt /);
    await refusedFor(
      '/parley.api.v1.AgentService/CreateAgent',
      { name: marker, prompt: 'p', voice: { style: { tags: ['calm', 'x\u0000'] } } },
      /^voice\.style\.tags\[1\] /,
    );
    await refusedFor('/parley.api.v1.AgentService/CreateAgent', { name: marker, secretRefs: { llm: 'a\u0000' } }, /^secret_refs\.llm /);
    await refusedFor(
      '/parley.api.v1.MemberService/AddMember',
      { email: `${marker}\u0000@example.com`, displayName: 'X', role: 'viewer' },
      /^email /,
    );
    await refusedFor(
      '/parley.api.v1.MemberService/AddMember',
      { email: `${marker}@example.com`, displayName: 'X\u0000', role: 'viewer' },
      /^display_name /,
    );
    await refusedFor('/parley.api.v1.ApiKeyService/CreateApiKey', { name: `${marker}\u0000`, scopes: ['agents:read'] }, /^name /);
    await refusedFor('/parley.api.v1.ApiKeyService/CreateApiKey', { name: marker, scopes: ['agents:read\u0000'] }, /^scopes\[0\] /);
    await refusedFor('/parley.api.v1.AgentService/ListAgents', { pageToken: 'abc\u0000' }, /^page_token /);
    await refusedFor('/parley.api.v1.AuditService/ListEvents', { filter: { actorId: 'x\u0000' } }, /^filter\.actor_id /);
    await refusedFor('/parley.api.v1.SessionService/CreateSession', { agentId, subjectRef: 'user\u0000' }, /^subject_ref /);
    await refusedFor('/parley.api.v1.AgentService/UpdateAgent', { agentId, name: 'n\u0000' }, /^name /);
    expect(await rowsMatching('parley_tenant_data.agents', marker)).toBe(0);
    expect(await rowsMatching('parley_identity.members', marker)).toBe(0);
    expect(await rowsMatching('parley_identity.api_keys', marker)).toBe(0);
  });

  it('refuses an unpaired surrogate (no UTF-8 form), naming the field', async () => {
    const res = await stack.call('/parley.api.v1.AgentService/CreateAgent', { name: 'x\ud800', prompt: 'p' }, ownerKey);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.code).toBe('invalid_argument');
    expect(res.body.message).toMatch(/\bname\b/);
  });

  it('refuses invalid UTF-8 in a JSON body instead of storing U+FFFD', async () => {
    const marker = `utf8-${Date.now()}`;
    const body = Buffer.concat([Buffer.from(`{"name":"${marker}`), Buffer.from([0xc3, 0x28]), Buffer.from('","prompt":"p"}')]);
    const res = await stack.raw(
      'POST',
      '/parley.api.v1.AgentService/CreateAgent',
      {
        'content-type': 'application/json',
        authorization: `Bearer ${ownerKey}`,
      },
      body,
    );
    expect(res.status, res.text).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ code: 'invalid_argument' });
    expect(await rowsMatching('parley_tenant_data.agents', marker)).toBe(0);
  });

  it('is enforced by every internal service too, not only the edge', async () => {
    const asOrchestrator = await stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService);
    const err = await asOrchestrator
      .createSubject({ tenantId: stack.bootstrap.tenantId, externalRef: 'ref\u0000', email: 'a@example.com' })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toMatch(/^external_ref contains a NUL character/);
    const asEdge = await stack.clientAs('edge', 'identity', IdentityService);
    const verify = await asEdge.verifySession({ token: 'a.b.c\u0000' }).catch((e: unknown) => ConnectError.from(e));
    expect((verify as ConnectError).code).toBe(Code.InvalidArgument);
    expect(stack.logs.some((l) => /"level":"error"/.test(l) && /NUL|0x00/.test(l))).toBe(false);
  });
});

describe('session tokens with stray characters', () => {
  it('refuses token + "\\n", a space inside the signature and padding at VerifySession', async () => {
    const created = await stack.call('/parley.api.v1.SessionService/CreateSession', { agentId }, ownerKey);
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const token = created.body.token as string;
    const orchestrator = await stack.clientAs('voice-orchestrator', 'identity', IdentityService);
    const sig = token.lastIndexOf('.') + 5;
    for (const variant of [`${token}\n`, `${token} `, `${token.slice(0, sig)} ${token.slice(sig)}`, `${token}=`]) {
      const err = await orchestrator.verifySession({ token: variant }).catch((e: unknown) => ConnectError.from(e));
      expect(err, JSON.stringify(variant.slice(-8))).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unauthenticated);
      expect((err as ConnectError).rawMessage).toMatch(/compact form/);
    }
    // The untouched token still verifies (and is consumed once).
    expect((await orchestrator.verifySession({ token, consume: true })).claims?.sessionId).toBe(created.body.sessionId);
  });
});

/** H2Answer is what a raw HTTP/2 request got back: status, headers, trailers and body. */
interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
}

/** h2Request sends one request on an HTTP/2 session and collects the whole answer. */
function h2Request(session: ClientHttp2Session, headers: Record<string, string>, body: Buffer): Promise<H2Answer> {
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
function grpcFrame(bytes: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([prefix, bytes]);
}

/** grpcStatusOf reads grpc-status from the trailers (or a trailers-only answer's headers). */
const grpcStatusOf = (a: H2Answer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);
const grpcMessageOf = (a: H2Answer) => decodeURIComponent(String(a.trailers['grpc-message'] ?? a.headers['grpc-message'] ?? ''));

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

describe('HTTP/2 and slow-body limits at the public port', () => {
  const whoAmI = { ':method': 'POST', ':path': '/parley.api.v1.AccountService/WhoAmI', 'content-type': 'application/json' };

  it(`refuses streams beyond ${MAX_STREAMS} concurrent ones on one connection, and cuts bodies that never finish`, async () => {
    // Streams opened before the server's SETTINGS arrive are not held back by the client, as a
    // hostile client would not hold them back either.
    const session = connect(stack.publicUrl, { ca: stack.ca, peerMaxConcurrentStreams: 1000 });
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, () => {
          const req = session.request({ ...whoAmI, authorization: `Bearer ${ownerKey}` }, { endStream: false });
          req.write('{');
          const started = Date.now();
          return new Promise<{ refused: boolean; elapsed: number; status?: number }>((resolve) => {
            let status: number | undefined;
            req.on('response', (h) => (status = Number(h[':status'])));
            req.on('data', () => undefined);
            req.on('close', () =>
              resolve({
                refused: req.rstCode === constants.NGHTTP2_REFUSED_STREAM,
                elapsed: Date.now() - started,
                ...(status !== undefined ? { status } : {}),
              }),
            );
            req.on('error', () => undefined);
          });
        }),
      );
      const refused = outcomes.filter((o) => o.refused);
      const admitted = outcomes.filter((o) => !o.refused);
      expect(session.remoteSettings.maxConcurrentStreams).toBe(MAX_STREAMS);
      expect(refused).toHaveLength(20 - MAX_STREAMS);
      expect(admitted).toHaveLength(MAX_STREAMS);
      // The admitted streams never finished their bodies: each is cut after the request timeout.
      for (const o of admitted) {
        expect(o.elapsed).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
        expect(o.elapsed).toBeLessThan(REQUEST_TIMEOUT_MS + 3_000);
      }
    } finally {
      session.destroy();
    }
    // The edge still answers.
    expect((await stack.call('/parley.api.v1.AccountService/WhoAmI', {}, ownerKey)).status).toBe(200);
  });

  it('closes a connection that resets streams faster than the configured rate (50 at once, 10 a second)', async () => {
    const session = connect(stack.publicUrl, { ca: stack.ca });
    await new Promise<void>((resolve, reject) => session.once('remoteSettings', () => resolve()).once('error', reject));
    let sent = 0;
    let sentAtGoaway = -1;
    // nghttp2 answers a reset flood with GOAWAY; its code is INTERNAL_ERROR.
    const goaway = new Promise<number>((resolve) =>
      session.once('goaway', (code: number) => {
        sentAtGoaway = sent;
        resolve(code);
      }),
    );
    session.on('error', () => undefined);
    for (; sent < 900 && sentAtGoaway < 0 && !session.closed && !session.destroyed; sent += 1) {
      const req = session.request({ ...whoAmI, authorization: `Bearer ${ownerKey}` }, { endStream: false });
      req.on('error', () => undefined);
      // HEADERS and a first DATA frame on the wire, then the reset: a stream reset before it was
      // sent never reaches the server.
      req.write('{');
      await new Promise((r) => setImmediate(r));
      req.close(constants.NGHTTP2_CANCEL);
      await new Promise((r) => setImmediate(r));
    }
    const code = await Promise.race([goaway, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))]);
    session.destroy();
    expect(code, `after ${sent} resets`).toBe(constants.NGHTTP2_INTERNAL_ERROR);
    // Node's default burst of 1000 would absorb all 900 resets; the configured burst is 50 (the
    // client sees the GOAWAY a little after the server sent it, while the edge works through its queue).
    expect(sentAtGoaway).toBeGreaterThanOrEqual(50);
    expect((await stack.call('/parley.api.v1.AccountService/WhoAmI', {}, ownerKey)).status).toBe(200);
  });

  it(`refuses connections beyond ${MAX_CONNECTIONS_PER_ADDRESS} from one address`, async () => {
    const sessions: ClientHttp2Session[] = [];
    try {
      const results = await Promise.all(
        Array.from({ length: MAX_CONNECTIONS_PER_ADDRESS + 4 }, async () => {
          const s = connect(stack.publicUrl, { ca: stack.ca });
          sessions.push(s);
          s.on('error', () => undefined);
          const req = s.request({ ...whoAmI, authorization: `Bearer ${ownerKey}` });
          req.on('error', () => undefined);
          req.end('{}');
          return new Promise<number>((resolve) => {
            req.on('response', (h) => resolve(Number(h[':status'])));
            req.on('close', () => resolve(0));
          });
        }),
      );
      expect(results.filter((r) => r === 200)).toHaveLength(MAX_CONNECTIONS_PER_ADDRESS);
      expect(results.filter((r) => r === 0)).toHaveLength(4);
    } finally {
      for (const s of sessions) s.destroy();
    }
    // Once those are closed, the address may connect again.
    await new Promise((r) => setTimeout(r, 200));
    expect((await stack.call('/parley.api.v1.AccountService/WhoAmI', {}, ownerKey)).status).toBe(200);
  });

  it('cuts an HTTP/1.1 request whose body stops half-way after the request timeout', async () => {
    const started = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const req = httpsRequest(`${stack.publicUrl}/parley.api.v1.AccountService/WhoAmI`, {
        method: 'POST',
        ca: stack.ca,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': '100', authorization: `Bearer ${ownerKey}` },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('close', () => resolve(`status ${res.statusCode}`));
      });
      req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code}`));
      req.write('{');
    });
    const elapsed = Date.now() - started;
    expect(outcome).toMatch(/^(status 408|error ECONNRESET)$/);
    expect(elapsed).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(elapsed).toBeLessThan(REQUEST_TIMEOUT_MS + 3_000);
  });
});

describe('after the abuse', () => {
  it('logged nothing at error in any service, and every service still answers', async () => {
    expect(stack.logs.filter((l) => /"level":"(error|fatal)"/.test(l))).toEqual([]);
    expect((await stack.call('/parley.api.v1.AgentService/ListAgents', {}, ownerKey)).status).toBe(200);
  });
});
