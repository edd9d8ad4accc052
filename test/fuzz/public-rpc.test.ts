// Property-based fuzz of every public RPC (issue 18): fast-check builds request messages from the
// parley.api.v1 descriptors (every file in packages/proto's generated api folder, so a new service
// is fuzzed without touching this file), with hostile strings (NUL, lone surrogates, huge, SQL-ish,
// path traversal, bidi controls) and hostile sizes, and sends them through the edge with a valid
// owner key over Connect JSON, Connect binary and gRPC. No call may answer INTERNAL or UNKNOWN (or
// leak a stack trace), a refused call may not change any of the workspace's rows, and the stack is
// still answering at the end. The run count is bounded to fit the CI budget; a failure prints
// fast-check's seed and path (PARLEY_FUZZ_SEED=<seed> replays the run).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { create, type DescField, type DescFile, type DescMessage, type DescMethod, type DescService, ScalarType } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPublicStack, type PublicStack } from '../edge/fixture.js';
import type pg from 'pg';
import { adminPool } from '../src/pg.js';

const genDir = fileURLToPath(new URL('../../packages/proto/src/gen/parley/api/v1/', import.meta.url));
/** RUNS_PER_METHOD bounds the run: about 40 methods × this many calls. */
const RUNS_PER_METHOD = 10;
/** METHOD_TIME_CAP_MS stops a method's runs early on a slow machine (a CI budget guard, not a goal). */
const METHOD_TIME_CAP_MS = 3_000;
const MAX_DEPTH = 3;

const HOSTILE_STRINGS = [
  '',
  ' ',
  '\u0000',
  'agent\u0000name',
  '\ud800',
  'x\udfffy',
  '\ufffe\uffff',
  '\u202eevil\u202c',
  '👩‍👩‍👧‍👦',
  'e\u0301\u0301\u0301',
  '\r\n\r\nX-Injected: 1',
  "' OR '1'='1",
  "'; drop table agents; --",
  '$1::text',
  '../../../../etc/passwd',
  '..%2f..%2f..%2fetc%2fpasswd',
  '%00',
  '${jndi:ldap://x}',
  '<script>alert(1)</script>',
  'null',
  '00000000-0000-0000-0000-000000000000',
  '-1',
  '9'.repeat(40),
  'a'.repeat(10_000),
  'ü'.repeat(100_000),
];

let stack: PublicStack;
let ownerKey: string;
/** knownIds are real ids of this workspace, so that some calls reach past "not found". */
const knownIds: string[] = [];

/** COUNTED are the workspace's rows a refused call must leave as they were. */
const COUNTED = [
  'parley_tenant_data.agents',
  'parley_tenant_data.subjects',
  'parley_tenant_data.conversations',
  'parley_secrets.secrets',
  'parley_secrets.secret_versions',
  'parley_identity.members',
  'parley_identity.api_keys',
  'parley_integrations.webhook_endpoints',
];

let pool: pg.Pool;

async function rowCounts(tenantId: string): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ t: string; n: string }>(
    COUNTED.map((t) => `select '${t}' as t, count(*) as n from ${t} where tenant_id = $1`).join(' union all '),
    [tenantId],
  );
  return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
}

function stringArb(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    { weight: 2, arbitrary: fc.nat(1_000).map((i) => knownIds[i % knownIds.length] ?? '') },
    { weight: 1, arbitrary: fc.uuid() },
  );
}

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };

function scalarArb(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return stringArb();
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.double();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.constantFrom(0, -1, INT32.min, INT32.max), fc.integer(INT32));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.constantFrom(0, 1, 500, 501, 2 ** 32 - 1), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.constantFrom(0n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    default:
      return fc.oneof(fc.constantFrom(0n, -1n, -(2n ** 63n), 2n ** 63n - 1n), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
  }
}

const jsonLeaf: fc.Arbitrary<unknown> = fc.oneof(
  stringArb(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);
const jsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    jsonLeaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(stringArb(), tie('value'), { maxKeys: 4 }),
  ),
})).value;
const jsonObject = fc.dictionary(stringArb(), jsonValue, { maxKeys: 5 });

function messageFieldArb(message: DescMessage, depth: number): fc.Arbitrary<unknown> {
  switch (message.typeName) {
    case 'google.protobuf.Struct':
      return jsonObject;
    case 'google.protobuf.Value':
      return jsonValue;
    case 'google.protobuf.ListValue':
      return fc.array(jsonValue, { maxLength: 4 });
    case 'google.protobuf.Timestamp':
    case 'google.protobuf.Duration':
      // Valid ranges: an out-of-range one cannot even be written as JSON by the client.
      return fc.record({
        seconds: fc.bigInt({ min: -1_000_000_000n, max: 100_000_000_000n }),
        nanos: fc.integer({ min: 0, max: 999_999_999 }),
      });
    default:
      return depth >= MAX_DEPTH ? fc.constant({}) : messageInitArb(message, depth + 1);
  }
}

function singularArb(field: DescField, depth: number): fc.Arbitrary<unknown> {
  if (field.fieldKind === 'scalar') return scalarArb(field.scalar);
  if (field.fieldKind === 'enum') return fc.constantFrom(...field.enum.values.map((v) => v.number), 99);
  if (field.fieldKind === 'message') return messageFieldArb(field.message, depth);
  throw new Error(`not a singular field: ${field.name}`);
}

function fieldArb(field: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case 'list': {
      const item =
        field.listKind === 'scalar'
          ? scalarArb(field.scalar)
          : field.listKind === 'enum'
            ? fc.constantFrom(...field.enum.values.map((v) => v.number), 99)
            : messageFieldArb(field.message, depth);
      // Mostly short lists, sometimes a long one (a size limit must answer INVALID_ARGUMENT).
      return fc.oneof(
        { weight: 5, arbitrary: fc.array(item, { maxLength: 4 }) },
        { weight: 1, arbitrary: fc.array(item, { minLength: 200, maxLength: 600 }) },
      );
    }
    case 'map': {
      const value =
        field.mapKind === 'scalar'
          ? scalarArb(field.scalar)
          : field.mapKind === 'enum'
            ? fc.constantFrom(...field.enum.values.map((v) => v.number))
            : messageFieldArb(field.message, depth);
      const key = field.mapKey === ScalarType.STRING ? stringArb() : scalarArb(field.mapKey).map(String);
      return fc.dictionary(key as fc.Arbitrary<string>, value, { maxKeys: 4 });
    }
    default:
      return singularArb(field, depth);
  }
}

/** messageInitArb builds a message's init object: each field present or not, one case per oneof. */
function messageInitArb(message: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of message.fields) if (field.oneof === undefined) parts[field.localName] = fieldArb(field, depth);
  for (const oneof of message.oneofs)
    parts[oneof.localName] = fc.oneof(
      fc.constant({ case: undefined }),
      ...oneof.fields.map((f) => singularArb(f, depth).map((value) => ({ case: f.localName, value }))),
    );
  return fc.record(parts, { requiredKeys: [] });
}

function publicServices(): Promise<DescService[]> {
  const files = readdirSync(genDir).filter((f) => f.endsWith('_pb.ts'));
  return Promise.all(
    files.map(async (f) => {
      const mod = (await import(/* @vite-ignore */ pathToFileURL(join(genDir, f)).href)) as Record<string, unknown>;
      const file = Object.values(mod).find((v): v is DescFile => (v as DescFile | undefined)?.kind === 'file');
      return file?.services ?? [];
    }),
  ).then((all) => all.flat());
}

type Answer = { ok: true } | { ok: false; code: Code; message: string };

async function invoke(transport: Transport, service: DescService, method: DescMethod, init: Record<string, unknown>): Promise<Answer> {
  const client = createClient(service, transport) as unknown as Record<string, (req: unknown, opts: unknown) => unknown>;
  const call = client[method.localName]!;
  // A deadline the client gives up on is read as a refusal, yet the edge may still carry the call out:
  // it must be far past any call on a loaded machine, or a slow success would read as a refusal that wrote.
  const options = { headers: { authorization: `Bearer ${ownerKey}` }, timeoutMs: 60_000 };
  try {
    const request = create(method.input, init as never);
    if (method.methodKind === 'server_streaming') {
      let n = 0;
      for await (const _ of call(request, options) as AsyncIterable<unknown>) if (++n >= 3) break;
    } else {
      await call(request, options);
    }
    return { ok: true };
  } catch (err) {
    const e = ConnectError.from(err);
    // The edge resetting the stream with ENHANCE_YOUR_CALM (a body past its HTTP/2 session memory)
    // is the protocol's "too much": connect-node reads a reset it meets while still sending as
    // INTERNAL, where its own reset-code table (and gRPC's) says RESOURCE_EXHAUSTED.
    if (e.code === Code.Internal && /^Stream closed with error code NGHTTP2_ENHANCE_YOUR_CALM$/.test(e.rawMessage))
      return { ok: false, code: Code.ResourceExhausted, message: e.rawMessage };
    // The same reset can reach the client while it is still writing a large body: node's http2
    // then fails the write with ECANCELED, which connect-node also reports as INTERNAL. Only a
    // request big enough to be reset (well past 64 kB) is read that way; a small one stays a fault.
    if (e.code === Code.Internal && /^write ECANCELED$/.test(e.rawMessage) && jsonLength(init) > 65_536)
      return { ok: false, code: Code.ResourceExhausted, message: e.rawMessage };
    return { ok: false, code: e.code, message: e.rawMessage };
  }
}

/** jsonLength is the length of init as JSON (64-bit integers as strings: JSON.stringify throws on a bigint). */
function jsonLength(init: Record<string, unknown>): number {
  return JSON.stringify(init, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value)).length;
}

let methods: { service: DescService; method: DescMethod }[] = [];
let transports: Record<string, Transport>;

beforeAll(async () => {
  pool = adminPool(1);
  stack = await startPublicStack();
  ownerKey = stack.bootstrap.apiKey;
  const agent = await stack.call('/parley.api.v1.AgentService/CreateAgent', { name: 'Fuzz target', prompt: 'Be brief.' }, ownerKey);
  expect(agent.status, JSON.stringify(agent.body)).toBe(200);
  knownIds.push((agent.body.agent as { id: string }).id, stack.bootstrap.tenantId);
  const secret = await stack.call(
    '/parley.api.v1.SecretService/PutSecret',
    { name: 'fuzz-secret', providerKind: 'llm', value: 'sk-fuzz-value-0123456789' },
    ownerKey,
  );
  expect(secret.status, JSON.stringify(secret.body)).toBe(200);
  knownIds.push((secret.body.secret as { id: string }).id);
  methods = (await publicServices()).flatMap((service) => service.methods.map((method) => ({ service, method })));
  // Node's HTTP/2 client counts a request body still queued on a stream against its session's
  // memory limit (10 MiB by default). The edge answers an oversized body without reading the rest,
  // so the fuzz's own multi-megabyte bodies pile up there; past the limit the client resets every
  // later answer on the connection with ENHANCE_YOUR_CALM, after the edge carried the call out
  // (seed 857956522 deleted the known secret and read as refused). Room for the bodies this fuzz
  // sends keeps every ENHANCE_YOUR_CALM it sees the edge's.
  const http2Options = { ca: stack.ca, maxSessionMemory: 512 };
  transports = {
    'connect-json': createConnectTransport({ baseUrl: stack.publicUrl, httpVersion: '2', nodeOptions: http2Options }),
    'connect-proto': createConnectTransport({
      baseUrl: stack.publicUrl,
      httpVersion: '1.1',
      useBinaryFormat: true,
      nodeOptions: { ca: stack.ca },
    }),
    grpc: createGrpcTransport({ baseUrl: stack.publicUrl, nodeOptions: http2Options }),
  };
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await pool?.end();
});

const SERVER_FAULTS = [Code.Internal, Code.Unknown, Code.DataLoss, Code.Unimplemented];
const STACK_TRACE = /\n\s+at |\.[cm]?[jt]s:\d+:\d+/;

describe('fuzzing every public RPC through the edge', () => {
  it('finds the public API to fuzz', () => {
    expect(methods.length).toBeGreaterThanOrEqual(30);
    expect(methods.map((m) => `${m.service.name}/${m.method.name}`)).toContain('AgentService/CreateAgent');
  });

  it('answers every generated request with success or a caller-facing error, and a refused call writes nothing', async () => {
    const tenantId = stack.bootstrap.tenantId;
    const seed = process.env['PARLEY_FUZZ_SEED'] === undefined ? Date.now() % 2_147_483_647 : Number(process.env['PARLEY_FUZZ_SEED']);
    const tally: Record<string, number> = {};
    for (const { service, method } of methods) {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...Object.keys(transports)), messageInitArb(method.input), async (via, init) => {
          const before = await rowCounts(tenantId);
          const answer = await invoke(transports[via]!, service, method, init);
          const label = `${service.name}/${method.name} via ${via}`;
          tally[answer.ok ? 'ok' : Code[answer.code]] = (tally[answer.ok ? 'ok' : Code[answer.code]] ?? 0) + 1;
          if (!answer.ok) {
            expect(SERVER_FAULTS, `${label}: ${Code[answer.code]} ${answer.message}`).not.toContain(answer.code);
            expect(answer.message, label).not.toMatch(STACK_TRACE);
            expect(await rowCounts(tenantId), `${label} was refused (${Code[answer.code]}) but changed rows`).toEqual(before);
          }
        }),
        // The time cap only bites on a crowded machine: the whole fuzz then stays within ~2 minutes.
        { numRuns: RUNS_PER_METHOD, seed, endOnFailure: true, interruptAfterTimeLimit: METHOD_TIME_CAP_MS, markInterruptAsFailure: false },
      );
    }
    process.stdout.write(`fuzz: seed ${seed}, ${methods.length} methods, outcomes ${JSON.stringify(tally)}\n`);
    // Both outcomes were reached: the fuzz is not only bouncing off one validation.
    expect(tally.ok ?? 0).toBeGreaterThan(0);
    expect(tally.InvalidArgument ?? 0).toBeGreaterThan(0);
  }, 240_000);

  it('leaves the stack answering, with no error logged for a caller’s input', async () => {
    expect((await stack.call('/parley.api.v1.AccountService/WhoAmI', {}, ownerKey)).status).toBe(200);
    expect((await stack.call('/parley.api.v1.AgentService/ListAgents', {}, ownerKey)).status).toBe(200);
    expect(stack.logs.filter((l) => /"level":"(error|fatal)"/.test(l)).slice(0, 5)).toEqual([]);
  });
});
