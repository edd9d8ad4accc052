// Coverage: every privileged public RPC emits exactly one audit event, with the right action and
// the calling principal as actor, through the real path (edge → service → outbox → relay → audit),
// read back through the public AuditService. The contract is PRIVILEGED_RPCS (data, in
// @parley/audit-outbox); this file says how to call each one. An RPC that exists in the public API
// but has no step here and is not listed in PENDING fails the test, so a new privileged RPC
// cannot slip in unaudited. The public ExportEvents runs to the edge's export deadline, not the
// internal default.
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { connect as connectHttp2, constants } from 'node:http2';
import { connect as connectTls } from 'node:tls';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { PRIVILEGED_RPCS } from '@parley/audit-outbox';
import { PUBLIC_MODULES } from '@parley/edge/public';
import { AuditService as PublicAuditService } from '@parley/proto/parley/api/v1/audit_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, startPublicStack, type PublicStack } from '../edge/fixture.js';
import { startWebhookReceiver, type WebhookReceiver } from '../integrations/receiver.js';
import { adminPool } from '../src/pg.js';

type Step = (s: { call: PublicStack['call']; key: string }) => Promise<void>;

const ok = async (res: Promise<{ status: number; body: Record<string, unknown> }>): Promise<Record<string, unknown>> => {
  const r = await res;
  if (r.status !== 200) throw new Error(`call failed with ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
};
const suffix = () => randomBytes(3).toString('hex');
const idOf = (body: Record<string, unknown>, field: string): string => (body[field] as { id: string }).id;
const newKey = async (call: PublicStack['call'], key: string): Promise<string> =>
  idOf(await ok(call('/parley.api.v1.ApiKeyService/CreateApiKey', { name: `cov-${suffix()}`, scopes: ['agents:read'] }, key)), 'apiKey');
const newMember = async (call: PublicStack['call'], key: string): Promise<string> =>
  idOf(
    await ok(
      call(
        '/parley.api.v1.MemberService/AddMember',
        { email: `m-${randomBytes(4).toString('hex')}@example.com`, displayName: 'Cov', role: 'viewer' },
        key,
      ),
    ),
    'member',
  );
const newAgent = async (call: PublicStack['call'], key: string): Promise<string> =>
  idOf(await ok(call('/parley.api.v1.AgentService/CreateAgent', { name: `cov-${suffix()}`, prompt: 'Be brief.' }, key)), 'agent');
const newSecret = async (call: PublicStack['call'], key: string): Promise<string> =>
  idOf(
    await ok(
      call(
        '/parley.api.v1.SecretService/PutSecret',
        { name: `cov-${suffix()}`, providerKind: 'llm', value: `sk-cov-${randomBytes(16).toString('hex')}` },
        key,
      ),
    ),
    'secret',
  );
let receiver: WebhookReceiver;
const newEndpoint = async (call: PublicStack['call'], key: string, eventTypes = ['conversation.ended']): Promise<string> =>
  idOf(await ok(call('/parley.api.v1.WebhookService/CreateWebhookEndpoint', { url: receiver.url('/cov'), eventTypes }, key)), 'endpoint');
const newConnection = async (call: PublicStack['call'], key: string): Promise<string> =>
  idOf(
    await ok(call('/parley.api.v1.ConnectionService/CreateConnection', { name: `cov-${suffix()}`, baseUrl: receiver.url('/api') }, key)),
    'connection',
  );
// A delivered delivery to replay: an endpoint of its own, one event, delivered to the receiver.
const deliveredDelivery = async (call: PublicStack['call'], key: string): Promise<string> => {
  const endpointId = await newEndpoint(call, key, ['guardrail.escalated']);
  const integrations = await stack.clientAs('voice-orchestrator', 'integrations', IntegrationsService);
  try {
    await integrations.emitEvent({ tenantId: stack.bootstrap.tenantId, eventId: randomUUID(), type: 'guardrail.escalated', data: {} });
  } finally {
    integrations.close();
  }
  let id = '';
  await pollUntil(async () => {
    const body = await ok(call('/parley.api.v1.WebhookService/ListWebhookDeliveries', { endpointId, state: 'delivered' }, key));
    id = ((body.deliveries as { id: string }[] | undefined) ?? [])[0]?.id ?? '';
    return id !== '';
  }, 15_000);
  return id;
};

// The agent sessions are created for: made (and its agent.create event seen) in beforeAll, so
// that no set-up event of the same action as a step under test can arrive during that step.
let sessionAgent = '';

/** STEPS makes one successful call of each covered RPC (set-up calls emit their own, other actions). */
const STEPS: Record<string, Step> = {
  'parley.api.v1.ApiKeyService/CreateApiKey': async ({ call, key }) => void (await newKey(call, key)),
  'parley.api.v1.ApiKeyService/RotateApiKey': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.ApiKeyService/RotateApiKey', { apiKeyId: await newKey(call, key), overlapSeconds: 0 }, key))),
  'parley.api.v1.ApiKeyService/RevokeApiKey': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.ApiKeyService/RevokeApiKey', { apiKeyId: await newKey(call, key) }, key))),
  'parley.api.v1.MemberService/AddMember': async ({ call, key }) => void (await newMember(call, key)),
  'parley.api.v1.MemberService/UpdateMemberRole': async ({ call, key }) =>
    void (await ok(
      call('/parley.api.v1.MemberService/UpdateMemberRole', { memberId: await newMember(call, key), role: 'developer' }, key),
    )),
  'parley.api.v1.MemberService/RemoveMember': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.MemberService/RemoveMember', { memberId: await newMember(call, key) }, key))),
  'parley.api.v1.SessionService/RevokeSession': async ({ call, key }) => {
    const session = await ok(call('/parley.api.v1.SessionService/CreateSession', { agentId: sessionAgent }, key));
    await ok(call('/parley.api.v1.SessionService/RevokeSession', { sessionId: session.sessionId }, key));
  },
  'parley.api.v1.CallService/SetDoNotContact': async ({ call, key }) =>
    void (await ok(
      call('/parley.api.v1.CallService/SetDoNotContact', { phone: `+1415555${randomInt(1000, 10000)}`, doNotContact: true }, key),
    )),
  'parley.api.v1.AgentService/CreateAgent': async ({ call, key }) => void (await newAgent(call, key)),
  'parley.api.v1.AgentService/UpdateAgent': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.AgentService/UpdateAgent', { agentId: await newAgent(call, key), name: `cov-${suffix()}` }, key))),
  'parley.api.v1.AgentService/DeleteAgent': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.AgentService/DeleteAgent', { agentId: await newAgent(call, key) }, key))),
  'parley.api.v1.AgentService/SetGuardrailPolicy': async ({ call, key }) =>
    void (await ok(
      call(
        '/parley.api.v1.AgentService/SetGuardrailPolicy',
        { agentId: await newAgent(call, key), guardrailPolicy: { version: 1 }, expectedPolicyVersion: 1 },
        key,
      ),
    )),
  'parley.api.v1.SecretService/PutSecret': async ({ call, key }) => void (await newSecret(call, key)),
  'parley.api.v1.SecretService/RotateSecret': async ({ call, key }) =>
    void (await ok(
      call(
        '/parley.api.v1.SecretService/RotateSecret',
        { secretId: await newSecret(call, key), value: `sk-cov-${randomBytes(16).toString('hex')}`, expectedVersion: 1 },
        key,
      ),
    )),
  'parley.api.v1.SecretService/DeleteSecret': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.SecretService/DeleteSecret', { secretId: await newSecret(call, key) }, key))),
  'parley.api.v1.WebhookService/CreateWebhookEndpoint': async ({ call, key }) => void (await newEndpoint(call, key)),
  'parley.api.v1.WebhookService/DeleteWebhookEndpoint': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.WebhookService/DeleteWebhookEndpoint', { endpointId: await newEndpoint(call, key) }, key))),
  'parley.api.v1.WebhookService/RotateWebhookSecret': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.WebhookService/RotateWebhookSecret', { endpointId: await newEndpoint(call, key) }, key))),
  'parley.api.v1.RetentionService/SetRetentionPolicy': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.RetentionService/SetRetentionPolicy', { rules: [{ dataClass: 'transcript', days: 0 }] }, key))),
  'parley.api.v1.RetentionService/SetLegalHold': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.RetentionService/SetLegalHold', { kind: 'subject', targetId: randomUUID(), held: true }, key))),
  'parley.api.v1.PrivacyService/ExportSubject': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.PrivacyService/ExportSubject', { externalRef: `nobody-${randomUUID()}` }, key))),
  'parley.api.v1.PrivacyService/ForgetSubject': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.PrivacyService/ForgetSubject', { externalRef: `nobody-${randomUUID()}` }, key))),
  'parley.api.v1.PrivacyService/DownloadExport': async ({ call, key }) => {
    // An export of nobody finishes with an empty bundle; its one download is the audited read.
    const job = (await ok(call('/parley.api.v1.PrivacyService/ExportSubject', { externalRef: `nobody-${randomUUID()}` }, key))).job as {
      id: string;
    };
    let token = '';
    await pollUntil(async () => {
      const got = (await ok(call('/parley.api.v1.PrivacyService/GetPrivacyJob', { jobId: job.id }, key))).job as { downloadToken?: string };
      token = got.downloadToken ?? '';
      return token !== '';
    }, 15_000);
    await ok(call('/parley.api.v1.PrivacyService/DownloadExport', { jobId: job.id, token }, key));
  },
  'parley.api.v1.WebhookService/ReplayWebhookDelivery': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.WebhookService/ReplayWebhookDelivery', { deliveryId: await deliveredDelivery(call, key) }, key))),
  'parley.api.v1.ConnectionService/CreateConnection': async ({ call, key }) => void (await newConnection(call, key)),
  'parley.api.v1.ConnectionService/UpdateConnection': async ({ call, key }) =>
    void (await ok(
      call(
        '/parley.api.v1.ConnectionService/UpdateConnection',
        { connectionId: await newConnection(call, key), name: `cov-${suffix()}`, baseUrl: receiver.url('/v2') },
        key,
      ),
    )),
  'parley.api.v1.ConnectionService/DeleteConnection': async ({ call, key }) =>
    void (await ok(call('/parley.api.v1.ConnectionService/DeleteConnection', { connectionId: await newConnection(call, key) }, key))),
};

/**
 * PENDING are privileged RPCs that exist in the public API but cannot be covered here yet, each
 * with the reason. Empty this list as the services record their events.
 */
const PENDING: Record<string, string> = {
  'parley.api.v1.WorkspaceService/CreateWorkspace':
    "needs a deployment administrator's operator token (OIDC); covered with its system-tenant events in test/edge/operator-signin.test.ts",
  'parley.api.v1.WorkspaceService/SuspendWorkspace':
    "needs a deployment administrator's operator token (OIDC); covered with its system-tenant events in test/edge/operator-signin.test.ts",
  'parley.api.v1.WorkspaceService/AddWorkspaceOwner':
    "needs a deployment administrator's operator token (OIDC); its member.add is recorded as AddMember's is",
  'parley.api.v1.ConversationService/ListTranscriptTurns':
    'needs a conversation with turns, which only the voice-orchestrator writes; covered in test/orchestrator/conversation.test.ts',
  'parley.api.v1.ConversationService/EndConversation':
    'needs a live conversation, which only the voice-orchestrator starts; covered in test/orchestrator/conversation.test.ts',
  'parley.api.v1.CallService/PlaceCall':
    'needs the voice-orchestrator and a telephony provider (the Twilio stand-in); covered (one call.place per placed call) in test/orchestrator/place-call.test.ts',
  'parley.api.v1.ConversationService/GetRecording':
    'needs a recorded call, which only the voice-orchestrator makes; covered (one recording.read per read) in test/orchestrator/call-recording.test.ts',
  'parley.api.v1.ConversationService/StreamRecording':
    'needs a recording in a blob store; covered (one recording.read per read, committed before any audio is sent) in test/edge/recording-stream.test.ts',
};

// Every service the edge serves, from its module list (the same list its router and auth
// interceptor use): a privileged RPC added to the public API is in scope here at once.
const publicRpcs = (): Set<string> =>
  new Set(PUBLIC_MODULES.flatMap((m) => m.service.methods.map((method) => `${m.service.typeName}/${method.name}`)));

let stack: PublicStack;
let key: string;
const LONG_READ_DEADLINE_MS = 2_000;
/** IDLE_TIMEOUT_MS is the edge's idle timeout here (2 min by default): short, still several seconds (every call of this file opens a connection). */
const IDLE_TIMEOUT_MS = 2_000;
let actorId: string;

beforeAll(async () => {
  // The stack runs its own audit service; every service relays its outbox to it. Integrations may
  // deliver to the local receiver (the private allow-list is on for 127.0.0.1 in this file only).
  receiver = await startWebhookReceiver();
  // A public export or verification may run 2 s here (10 min by default), far below the internal
  // calls' 10 s default; a connection idles out after 2 s. Every other call of this file opens a
  // connection of its own (stack.call), so none meets an idle one being closed.
  stack = await startPublicStack({
    integrations: receiver.env,
    edge: { PARLEY_EDGE_LONG_READ_DEADLINE_MS: String(LONG_READ_DEADLINE_MS), PARLEY_EDGE_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS) },
  });
  key = stack.bootstrap.apiKey;
  actorId = (await ok(stack.call('/parley.api.v1.AccountService/WhoAmI', {}, key))).principalId as string;
  sessionAgent = await newAgent(stack.call.bind(stack), key);
  await pollUntil(async () => (await eventsFor('agent.create')).some((e) => e.targetId === sessionAgent), 15_000);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

// Only events by the calling key count: set-up done by the system (bootstrap) may arrive late.
async function eventsFor(action: string): Promise<{ actorKind: string; actorId: string; targetId: string }[]> {
  const body = await ok(
    stack.call('/parley.api.v1.AuditService/ListEvents', { filter: { action, actorKind: 'api_key', actorId }, pageSize: 500 }, key),
  );
  return (body.events as { actorKind: string; actorId: string; targetId: string }[] | undefined) ?? [];
}

describe('audit coverage of privileged RPCs', () => {
  it('every privileged RPC in the public API is either exercised here or pending with a reason', () => {
    const existing = publicRpcs();
    const unaccounted = PRIVILEGED_RPCS.filter(
      (p) => existing.has(p.rpc) && STEPS[p.rpc] === undefined && PENDING[p.rpc] === undefined,
    ).map((p) => p.rpc);
    expect(unaccounted).toEqual([]);
    // A step or pending entry for an RPC that is not in the registry is a typo; a step for an RPC
    // the public API does not serve could never run; a pending entry for a covered RPC is stale.
    for (const rpc of [...Object.keys(STEPS), ...Object.keys(PENDING)]) expect(PRIVILEGED_RPCS.map((p) => p.rpc)).toContain(rpc);
    for (const rpc of Object.keys(STEPS)) expect(existing, rpc).toContain(rpc);
    for (const rpc of Object.keys(PENDING)) expect(STEPS[rpc], rpc).toBeUndefined();
  });

  it.each(PRIVILEGED_RPCS.filter((p) => STEPS[p.rpc] !== undefined).map((p) => [p.rpc, p] as const))(
    '%s emits exactly one event with the caller as actor',
    async (_rpc, p) => {
      // Every entry of the registry names the calling principal as actor; one that names a service needs its own check here.
      expect(p.actor).toBe('principal');
      const before = (await eventsFor(p.action)).length;
      await STEPS[p.rpc]?.({ call: stack.call.bind(stack), key });
      const deadline = Date.now() + 15_000;
      let events = await eventsFor(p.action);
      while (events.length <= before && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        events = await eventsFor(p.action);
      }
      expect(events.length, `${p.rpc} emitted no ${p.action} event`).toBe(before + 1);
      // Newest first: the new event is the first; its actor is the calling API key.
      expect(events[0]).toMatchObject({ actorKind: 'api_key', actorId });
      // Exactly one: a second delivery or a second record would show up within the relay's poll.
      await new Promise((r) => setTimeout(r, 300));
      expect((await eventsFor(p.action)).length).toBe(before + 1);
    },
  );

  it('VerifyLog through the public API confirms the chain the events went into', async () => {
    const body = await ok(stack.call('/parley.api.v1.AuditService/VerifyLog', {}, key));
    expect(body.ok).toBe(true);
  });
});

describe('the public long reads (ExportEvents, VerifyLog) and idle connections', () => {
  it("run to the edge's long-read deadline, not the internal calls' 10 s default, two at once per audit replica", async () => {
    const audit = createClient(PublicAuditService, createGrpcTransport({ baseUrl: stack.publicUrl, nodeOptions: { ca: stack.ca } }));
    // Audit's export (its database timeouts lifted to 10 min) and its verification (30 s of
    // statement timeout) wait behind this lock on the purge anchors they read first; this file's
    // database is its own, so nothing else waits on it. Only a deadline can end either call, and
    // the caller sets none (gRPC over HTTP/2, and Connect's JSON over HTTP/1.1 for VerifyLog).
    const admin = adminPool(2);
    const holder = await admin.connect();
    const headers = { authorization: `Bearer ${key}` };
    const lock = async () => {
      await holder.query('begin');
      await holder.query('lock table parley_audit.purge_anchors in access exclusive mode');
    };
    const timed = async (call: Promise<unknown>) => {
      const started = Date.now();
      const outcome = await call.then(
        () => 'finished',
        (err: unknown) => ConnectError.from(err),
      );
      return { outcome, elapsed: Date.now() - started };
    };
    const exportLines = async () => {
      const lines: string[] = [];
      for await (const line of audit.exportEvents({}, { headers })) lines.push(line.ndjson);
      return lines;
    };
    const cutAtTheDeadline = ({ outcome, elapsed }: { outcome: unknown; elapsed: number }) => {
      expect(outcome).toMatchObject({ code: Code.DeadlineExceeded });
      // Cut at the configured 2 s: under the internal default of 10 s it could not end before
      // that (the margin is for a loaded machine).
      expect(elapsed).toBeGreaterThanOrEqual(LONG_READ_DEADLINE_MS - 100);
      expect(elapsed).toBeLessThan(8_000);
    };
    try {
      await lock();
      let lines: string[] = [];
      const exported = timed(exportLines().then((l) => void (lines = l)));
      const overHttp1 = timed(
        stack.call('/parley.api.v1.AuditService/VerifyLog', {}, key).then(({ status, body }) => {
          throw new ConnectError(`HTTP ${status}: ${JSON.stringify(body)}`, status === 504 ? Code.DeadlineExceeded : Code.Unknown);
        }),
      );
      // Both wait on the lock in audit, each holding one of its database connections (until the edge
      // cuts them: audit then cancels their statements and frees both): the replica's two long-read
      // slots are taken, so a third reader is refused at once, and told to come back, rather than take a third.
      await pollUntil(async () => {
        const { rows } = await admin.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%purge_anchors%'`,
        );
        return rows[0]!.n >= 2;
      }, 30_000);
      const third = await audit.verifyLog({}, { headers }).then(
        () => undefined,
        (err: unknown) => ConnectError.from(err),
      );
      expect(third?.code).toBe(Code.ResourceExhausted);
      expect(third?.rawMessage).toMatch(/already running 2 exports or verifications at once; try again/);
      cutAtTheDeadline(await exported);
      cutAtTheDeadline(await overHttp1);
      expect(lines).toEqual([]);
      await holder.query('rollback');
      // Once the held reads end, their slots are free again: an export runs to its seal.
      await pollUntil(async () => {
        const got = await exportLines().catch(() => []);
        return got.some((l) => l.includes('"type":"seal"'));
      }, 30_000);
      // And a verification alone is cut at the edge's deadline too.
      await lock();
      cutAtTheDeadline(await timed(audit.verifyLog({}, { headers })));
    } finally {
      await holder.query('rollback');
      holder.release();
      await admin.end();
    }
  });

  it('keeps a connection whose call waits in silence past the idle timeout (HTTP/2 and HTTP/1.1), and closes those with nothing in flight', async () => {
    const audit = createClient(PublicAuditService, createGrpcTransport({ baseUrl: stack.publicUrl, nodeOptions: { ca: stack.ca } }));
    const headers = { authorization: `Bearer ${key}` };
    // One connection holds the lock, the other watches who waits on it.
    const admin = adminPool(2);
    const holder = await admin.connect();
    const idle: {
      once(event: 'close', listener: () => void): unknown;
      on(event: 'error', listener: () => void): unknown;
      destroy(): void;
    }[] = [];
    try {
      // ListEvents (the internal 10 s default, audit's 30 s statement timeout) waits behind this
      // lock, sending nothing either way: a long export waiting on a lock, without the export's 2 s cap.
      await holder.query('begin');
      await holder.query('lock table parley_audit.events in access exclusive mode');
      const settled = <T>(call: Promise<T>) =>
        call.then(
          (value) => ({ value }),
          (err: unknown) => ({ err: ConnectError.from(err) }),
        );
      const overHttp2 = settled(audit.listEvents({ pageSize: 1 }, { headers }));
      const overHttp1 = settled(stack.call('/parley.api.v1.AuditService/ListEvents', { pageSize: 1 }, key));
      // Both requests are in once audit waits on the lock for both; their connections are silent from then on.
      await pollUntil(async () => {
        const { rows } = await admin.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like 'select * from "events" where%order by "seq" desc%'`,
        );
        return rows[0]!.n >= 2;
      }, 30_000);
      // Connections opened after that, with nothing in flight: one silent, one after a request
      // (HTTP/2), one HTTP/1.1 that never asks. They close once idle for the timeout, so the held
      // calls' connections, silent since before they opened, have been idle at least as long.
      const silent = connectHttp2(stack.publicUrl, { ca: stack.ca });
      const used = connectHttp2(stack.publicUrl, { ca: stack.ca });
      const http1 = connectTls({
        host: 'localhost',
        port: Number(new URL(stack.publicUrl).port),
        ca: stack.ca,
        ALPNProtocols: ['http/1.1'],
      });
      idle.push(silent, used, http1);
      for (const c of idle) c.on('error', () => undefined);
      const ends = idle.map((c) => new Promise<void>((resolve) => c.once('close', resolve)));
      const answered = await new Promise<number>((resolve, reject) => {
        const req = used.request({ ':path': '/.well-known/jwks.json' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
      });
      expect(answered).toBe(200);
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        Promise.all(ends).then(() => 'all closed'),
        new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still open'), 30_000))),
      ]);
      clearTimeout(timer);
      expect(outcome).toBe('all closed');
      await holder.query('rollback');
      // Released, both calls are answered on the connections they were made on.
      const [h2, h1] = await Promise.all([overHttp2, overHttp1]);
      expect(h2).toMatchObject({ value: { events: [expect.anything()] } });
      expect(h1).toMatchObject({ value: { status: 200 } });
    } finally {
      for (const c of idle) c.destroy();
      await holder.query('rollback');
      holder.release();
      await admin.end();
    }
  });
  it('cuts an HTTP/2 answer a client does not read (zero window) and still closes a connection whose held stream the client reset', async () => {
    const closed = (c: { destroyed: boolean; once(event: 'close', listener: () => void): unknown }) =>
      new Promise<void>((resolve) => (c.destroyed ? resolve() : c.once('close', resolve)));
    // Polled by the events themselves; the bound is only for a machine that never gets to them.
    const within = async <T>(event: Promise<T>, ms: number): Promise<T | 'timed out'> => {
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        event,
        new Promise<'timed out'>((resolve) => (timer = setTimeout(() => resolve('timed out'), ms))),
      ]);
      clearTimeout(timer);
      return outcome;
    };
    // HTTP/2: a client that grants no flow-control window gets the JWKS's headers, never its body.
    const zeroWindow = connectHttp2(stack.publicUrl, { ca: stack.ca, settings: { initialWindowSize: 0 } });
    // HTTP/2: a request whose body never ends (nothing to send back) held past the idle timeout,
    // then reset by the client: the connection is left with no stream and must still idle out.
    const reset = connectHttp2(stack.publicUrl, { ca: stack.ca });
    const all = [zeroWindow, reset];
    try {
      for (const c of all) c.on('error', () => undefined);
      const stalled = zeroWindow.request({ ':path': '/.well-known/jwks.json' });
      stalled.on('error', () => undefined);
      stalled.pause();
      const status = new Promise<number>((resolve) => stalled.once('response', (h) => resolve(Number(h[':status']))));
      expect(await within(status, 30_000)).toBe(200);
      const held = reset.request({
        ':method': 'POST',
        ':path': '/parley.api.v1.AccountService/WhoAmI',
        'content-type': 'application/json',
      });
      held.on('error', () => undefined);
      held.write('{');
      // A connection opened now, with nothing in flight, closes once idle for the timeout; one
      // opened then closes a timeout later: by then the held stream has been silent for two
      // timeouts and the edge has looked at it at least once.
      for (const _ of [1, 2]) {
        const probe = connectHttp2(stack.publicUrl, { ca: stack.ca });
        all.push(probe);
        probe.on('error', () => undefined);
        expect(await within(closed(probe), 30_000)).toBeUndefined();
      }
      expect(held.closed).toBe(false);
      held.close(constants.NGHTTP2_CANCEL);
      await within(Promise.all([closed(stalled), closed(zeroWindow), closed(reset)]), 30_000);
      expect({
        stalledStream: stalled.closed,
        zeroWindow: zeroWindow.destroyed,
        reset: reset.destroyed,
      }).toEqual({
        stalledStream: true,
        zeroWindow: true,
        reset: true,
      });
      // The stalled stream was cancelled by the edge, its body never delivered.
      expect(stalled.rstCode).toBe(constants.NGHTTP2_CANCEL);
    } finally {
      for (const c of all) c.destroy();
    }
  });
});
