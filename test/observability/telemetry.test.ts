// Observability of the real public stack: traces exported by every service process to an
// in-process OTLP/HTTP receiver, and the Prometheus scrape on each health port. It lives in the
// cross-tenant-workers project: the audit relay span it looks for must come from this stack's
// relays, not from another test's stack that shares the database.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OtlpReceiver, type ExportedSpan } from '../src/echo-fixture.js';
import { pollUntil, startPublicStack, type PublicStack, type StackService } from '../edge/fixture.js';

let receiver: OtlpReceiver;
let stack: PublicStack;

const SERVICES: StackService[] = ['tenant-data', 'identity', 'secrets', 'audit', 'integrations', 'edge'];
const FORGED_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const forgedTraceparent = `00-${FORGED_TRACE}-00f067aa0ba902b7-01`;

beforeAll(async () => {
  receiver = new OtlpReceiver();
  const endpoint = await receiver.start();
  const otel = {
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,k8s.pod.name=pod%2D1',
  };
  stack = await startPublicStack({
    ...Object.fromEntries(SERVICES.map((s) => [s, otel])),
    // The throttle test below needs identity's production limit (the fixture raises it for every
    // other stack); a short block keeps the next file's stack on this database unblocked.
    identity: { ...otel, PARLEY_AUTH_MAX_FAILURES: '10', PARLEY_AUTH_BLOCK_SECONDS: '5' },
  });
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.stop();
});

const secretsPath = (rpc: string) => `/parley.api.v1.SecretService/${rpc}`;

/** post sends Connect JSON to the public port and returns status, headers and the parsed body. */
async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await stack.raw(
    'POST',
    path,
    { 'content-type': 'application/json', authorization: `Bearer ${stack.bootstrap.apiKey}`, ...headers },
    typeof body === 'string' ? body : JSON.stringify(body),
  );
  return { status: res.status, traceId: res.headers['x-parley-trace-id'], body: JSON.parse(res.text || '{}') as Record<string, unknown> };
}

/** spansOf waits until `ready` holds for a trace's spans (the processes export every 100 ms). */
async function waitFor(ready: (spans: readonly ExportedSpan[]) => boolean, what: string): Promise<ExportedSpan[]> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (ready(receiver.spans)) return [...receiver.spans];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; spans seen: ${receiver.spans.map((s) => `${s.service}:${s.name}`).join(', ')}`);
}

describe('traces of a public request', () => {
  it('one PutSecret is one new trace (not the caller forged one), its id is returned, and the audit relay span links to it', async () => {
    const value = `sk-live-${randomBytes(24).toString('hex')}`;
    const res = await post(
      secretsPath('PutSecret'),
      { name: `otel-${randomUUID()}`, providerKind: 'llm', value },
      { traceparent: forgedTraceparent },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const traceId = String(res.traceId);
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceId).not.toBe(FORGED_TRACE);

    const spans = await waitFor(
      (all) =>
        all.some((s) => s.service === 'secrets' && s.name === 'audit.relay deliver' && s.links.some((l) => l.traceId === traceId)) &&
        all.some((s) => s.traceId === traceId && s.service === 'edge' && s.kind === 2),
      'the request and relay spans',
    );
    const inTrace = spans.filter((s) => s.traceId === traceId);
    expect(spans.some((s) => s.traceId === FORGED_TRACE)).toBe(false);

    // The edge's server span: a new root linked to the caller's context, Connect JSON labelled as such.
    const edgeServer = inTrace.find((s) => s.service === 'edge' && s.kind === 2);
    expect(edgeServer?.parentSpanId).toBe('');
    expect(edgeServer?.name).toBe('parley.api.v1.SecretService/PutSecret');
    expect(edgeServer?.attributes).toMatchObject({
      'rpc.system.name': 'connectrpc',
      'rpc.method': 'parley.api.v1.SecretService/PutSecret',
      'rpc.response.status_code': 'ok',
      'parley.rpc.encoding': 'json',
      'parley.tenant_id': stack.bootstrap.tenantId,
    });
    expect(edgeServer?.attributes['network.peer.address']).toBeDefined();
    expect(edgeServer?.attributes['parley.principal.id']).toBeDefined();
    expect(edgeServer?.links.map((l) => l.traceId)).toContain(FORGED_TRACE);
    expect(edgeServer?.resource).toMatchObject({
      'service.name': 'edge',
      'deployment.environment.name': 'test',
      'k8s.pod.name': 'pod-1',
    });
    expect(edgeServer?.resource['service.instance.id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(edgeServer?.resource['host.name']).toBeDefined();
    expect(edgeServer?.resource['process.pid']).toBeDefined();

    // The secrets service served it in the same trace, and its client spans name the peer.
    const secretsServer = inTrace.find(
      (s) => s.service === 'secrets' && s.kind === 2 && s.name === 'parley.secrets.v1.SecretsService/PutSecret',
    );
    expect(secretsServer, inTrace.map((s) => `${s.service}:${s.name}`).join(', ')).toBeDefined();
    expect(secretsServer?.attributes['rpc.system.name']).toBe('grpc');
    expect(secretsServer?.attributes['rpc.response.status_code']).toBe('OK');
    expect(secretsServer?.attributes['parley.tenant_id']).toBe(stack.bootstrap.tenantId);
    const edgeClient = inTrace.find((s) => s.service === 'edge' && s.kind === 3 && s.name === secretsServer?.name);
    expect(edgeClient?.attributes['server.address']).toBe('localhost');
    expect(edgeClient?.attributes['server.port']).toEqual(expect.any(Number));

    // Postgres statements are spans of the trace, with placeholders and never the values.
    const pgSpans = inTrace.filter((s) => s.attributes['db.system.name'] === 'postgresql');
    expect(pgSpans.length).toBeGreaterThan(0);
    expect(pgSpans.some((s) => String(s.attributes['db.query.text']).includes('$1'))).toBe(true);

    // The relay's delivery, a trace of its own, links back to this request.
    const relay = spans.find(
      (s) => s.service === 'secrets' && s.name === 'audit.relay deliver' && s.links.some((l) => l.traceId === traceId),
    );
    expect(relay?.kind).toBe(4); // PRODUCER
    // A retried delivery joins the first attempt's trace, so that trace may hold several
    // deliveries: the relay span found must have its own AppendEvents call under it.
    const appends = spans.filter(
      (s) => s.traceId === relay?.traceId && s.name === 'parley.audit.v1.AuditService/AppendEvents' && s.kind === 3,
    );
    expect(appends.map((a) => a.parentSpanId)).toContain(relay?.spanId);

    // Neither the provider key nor the API key is in any attribute of any span.
    const exported = JSON.stringify(spans);
    expect(exported).not.toContain(value.slice(8, 40));
    expect(exported).not.toContain(stack.bootstrap.apiKey);
  });

  it('a NOT_FOUND from a bad id leaves the server spans un-errored, errors the client span, and the error body carries the trace id', async () => {
    const res = await post(secretsPath('GetSecret'), { secretId: randomUUID() });
    expect(res.status).toBe(404);
    expect(res.body.trace_id).toBe(res.traceId);
    const traceId = String(res.traceId);
    const spans = await waitFor(
      (all) =>
        all.some((s) => s.traceId === traceId && s.kind === 2 && s.service === 'secrets') &&
        all.some((s) => s.traceId === traceId && s.kind === 2 && s.service === 'edge') &&
        all.some((s) => s.traceId === traceId && s.kind === 3 && s.service === 'edge' && s.name.endsWith('/GetSecret')),
      'the GetSecret spans',
    );
    const inTrace = spans.filter((s) => s.traceId === traceId);
    const servers = inTrace.filter((s) => s.kind === 2 && s.name.endsWith('/GetSecret'));
    expect(servers.map((s) => s.service).sort(), inTrace.map((s) => `${s.service}:${s.kind}:${s.name}`).join(', ')).toEqual([
      'edge',
      'secrets',
    ]);
    for (const s of servers) {
      expect(s.status).not.toBe(2);
      expect(s.attributes['error.type']).toBeUndefined();
    }
    expect(servers.find((s) => s.service === 'edge')?.attributes['rpc.response.status_code']).toBe('not_found');
    expect(servers.find((s) => s.service === 'secrets')?.attributes['rpc.response.status_code']).toBe('NOT_FOUND');
    const client = inTrace.find((s) => s.service === 'edge' && s.kind === 3 && s.name.endsWith('/GetSecret'));
    expect(client?.status).toBe(2);
    expect(client?.attributes['error.type']).toBe('NOT_FOUND');
  });

  it('a request refused before the interceptors (malformed JSON, unknown method) still gets a span, the trace id and a warn line', async () => {
    const malformed = await post(secretsPath('PutSecret'), '{"name": ');
    expect(malformed.status).toBe(400);
    expect(malformed.body.trace_id).toBe(malformed.traceId);
    const wrongType = await post(secretsPath('PutSecret'), { name: 42, providerKind: ['llm'] });
    expect(wrongType.status).toBe(400);
    const unknown = await post('/parley.api.v1.SecretService/NoSuchMethod', {});
    expect(unknown.status).toBe(404);
    expect(String(unknown.traceId)).toMatch(/^[0-9a-f]{32}$/);

    const ids = [malformed.traceId, wrongType.traceId, unknown.traceId].map(String);
    const spans = await waitFor(
      (all) => ids.every((id) => all.some((s) => s.traceId === id && s.service === 'edge')),
      'the refused requests',
    );
    const span = (id: string) => spans.find((s) => s.traceId === id && s.service === 'edge');
    expect(span(ids[0]!)?.attributes['rpc.response.status_code']).toBe('invalid_argument');
    expect(span(ids[1]!)?.attributes['rpc.response.status_code']).toBe('invalid_argument');
    expect(span(ids[2]!)?.attributes['rpc.method']).toBe('_OTHER');
    for (const id of ids) {
      expect(
        stack.logs.some((l) => l.includes(id) && l.includes('"level":"warn"')),
        `a warn line with trace ${id}`,
      ).toBe(true);
    }
  });

  it('the JWKS document is served under a server span whose identity call is its child', async () => {
    const res = await stack.raw('GET', '/.well-known/jwks.json', { traceparent: forgedTraceparent });
    expect(res.status).toBe(200);
    const traceId = String(res.headers['x-parley-trace-id']);
    // The edge's server span ends after identity's answer, so it may come in a later export batch.
    const spans = await waitFor(
      (all) =>
        all.some((s) => s.traceId === traceId && s.service === 'identity') &&
        all.some((s) => s.traceId === traceId && s.service === 'edge' && s.kind === 2),
      'the JWKS spans',
    );
    const server = spans.find((s) => s.traceId === traceId && s.service === 'edge' && s.kind === 2);
    expect(server?.name).toBe('GET /.well-known/jwks.json');
    expect(server?.links.map((l) => l.traceId)).toContain(FORGED_TRACE);
    expect(spans.find((s) => s.traceId === traceId && s.service === 'identity' && s.kind === 2)?.name).toBe(
      'parley.identity.v1.IdentityService/GetJwks',
    );
  });
});

/** scrape reads a service's /metrics. */
async function scrape(service: StackService): Promise<string> {
  const res = await fetch(`${stack.healthUrls[service]}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** sampleValue is the value of the first sample whose line starts with name and contains every label. */
function sampleValue(text: string, name: string, labels: string[]): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('metrics on the health port', () => {
  it('every service exposes the RPC, pool and runtime metrics, and a request moves the right histogram', async () => {
    for (const service of SERVICES) {
      const text = await scrape(service);
      // The edge has no database of its own.
      if (service !== 'edge') expect(text, service).toMatch(/db_client_connection_count\{/);
      expect(text, service).toContain('target_info{');
      // A series appears with its first sample: these services have served RPCs by now.
      if (['edge', 'identity', 'secrets', 'audit'].includes(service)) {
        expect(text, service).toContain('# TYPE rpc_server_call_duration histogram');
        expect(text, service).toContain('rpc_server_active_requests');
      }
    }
    // What the earlier requests of this file must have moved, each on the service that owns it.
    const gauges = await Promise.all(SERVICES.map(async (s) => [s, await scrape(s)] as const));
    const on = (service: StackService) => gauges.find(([s]) => s === service)?.[1] ?? '';
    for (const [service, text] of gauges) expect(text, service).toMatch(/parley_tls_certificate_expires_in\{[^}]*\} [1-9]/);
    expect(on('secrets')).toMatch(/parley_kek_calls_total\{[^}]*parley_kek_operation="generate_data_key"[^}]*parley_kek_result="ok"/);
    expect(on('edge')).toMatch(/parley_cache_lookups_total\{[^}]*parley_cache="api_key"/);
    expect(on('edge')).toMatch(/parley_cache_lookups_total\{[^}]*parley_cache="jwks"/);
    expect(on('secrets')).toMatch(/parley_audit_outbox_depth\{[^}]*\} \d/);
    expect(on('secrets')).toMatch(/parley_audit_outbox_age\{[^}]*\} \d/);
    expect(on('audit')).toMatch(/parley_audit_checkpoint_oldest_age\{[^}]*\} \d/);
    expect(on('edge')).toMatch(/rpc_client_call_duration_bucket\{/);
    // Each cache of tenant-data answers has its LISTEN connection, which hears its own heartbeat.
    await pollUntil(async () => {
      const texts = await Promise.all((['secrets', 'identity'] as const).map((service) => scrape(service)));
      return texts.every((text) =>
        /^parley_db_listening\{[^}]*parley_db_listen_channel="parley_conversation_access"[^}]*\} 1$/m.test(text),
      );
    }, 30_000);

    const labels = ['rpc_method="parley.api.v1.SecretService/ListSecrets"', 'rpc_response_status_code="ok"'];
    const before = sampleValue(await scrape('edge'), 'rpc_server_call_duration_count', labels);
    expect((await post(secretsPath('ListSecrets'), {})).status).toBe(200);
    const after = sampleValue(await scrape('edge'), 'rpc_server_call_duration_count', labels);
    expect(after).toBe(before + 1);
    const secrets = await scrape('secrets');
    expect(
      sampleValue(secrets, 'rpc_server_call_duration_count', ['rpc_method="parley.secrets.v1.SecretsService/ListSecrets"']),
    ).toBeGreaterThan(0);
    const edge = await scrape('edge');
    expect(
      sampleValue(edge, 'rpc_client_call_duration_count', ['rpc_method="parley.secrets.v1.SecretsService/ListSecrets"']),
    ).toBeGreaterThan(0);
    // No tenant id as a label on any series.
    expect(edge).not.toContain(stack.bootstrap.tenantId);
  });

  it('counts throttle blocks once one address keeps sending bad API keys', async () => {
    const before = sampleValue(await scrape('identity'), 'parley_throttle_blocks_total', ['parley_throttle="api_key_source"']);
    let refused = 0;
    // identity blocks a source after 10 failures a minute; the next ones are refused unchecked.
    for (let i = 0; i < 14; i++) {
      const res = await post(secretsPath('ListSecrets'), {}, { authorization: `Bearer pk_test_${randomBytes(20).toString('hex')}` });
      if (res.status === 429) refused += 1;
    }
    expect(refused).toBeGreaterThan(0);
    const after = sampleValue(await scrape('identity'), 'parley_throttle_blocks_total', ['parley_throttle="api_key_source"']);
    expect(after - before).toBe(refused);
  });
});
