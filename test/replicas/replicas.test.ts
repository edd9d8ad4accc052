// Every service as two real processes (the dev stack with PARLEY_DEV_REPLICAS=2): what DESIGN
// says must hold across replicas is decided in Postgres, so it holds whichever replica a call
// reaches. One stack for the whole file (starting 16 processes is the expensive part).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDevStackConfig, startDevStack, type DevStack } from '@parley/devstack';
import { Code, ConnectError } from '@connectrpc/connect';
import { CertificateSource, createServiceClient } from '@parley/platform';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { twilioSignature } from '@parley/webhooks';
import { startWebhookReceiver, type WebhookReceiver } from '../integrations/receiver.js';

const root = join(import.meta.dirname, '..', '..');
// The edge's documented revocation bound (PARLEY_EDGE_AUTH_CACHE_MS, default 1000 ms).
const AUTH_CACHE_MS = 1000;
// The secrets service's maintenance lock (services/secrets/src/scheduler.ts, "psec").
const SECRETS_MAINTENANCE_LOCK = 0x70_73_65_63;
// Short bounds for the replica-local caches, set through each service's own variables (README).
// How often each identity replica re-reads the session signing keys (PARLEY_SIGNING_KEY_RELOAD_MS);
// identity's in-process JWKS lives no longer than that, so a key change is seen within twice this.
const SIGNING_KEY_RELOAD_MS = 500;
// How long each edge serves /.well-known/jwks.json from memory (PARLEY_EDGE_JWKS_CACHE_MS).
const EDGE_JWKS_CACHE_MS = 500;
// How often a live conversation asks tenant-data whether it was ended elsewhere (PARLEY_SESSION_LIVE_CHECK_INTERVAL_MS).
const LIVE_CHECK_INTERVAL_MS = 300;
// How long an orchestrator replica keeps a workspace's Twilio auth token (PARLEY_CALL_WEBHOOK_TOKEN_CACHE_MS).
const CALL_TOKEN_CACHE_MS = 500;
// How long a secrets replica keeps a decrypted data key (PARLEY_DEK_CACHE_MAX_AGE_MS).
const DEK_CACHE_MAX_AGE_MS = 5_000;
// Each bound is waited for plus this, for the work itself (a reload, an RPC) on a loaded machine,
// whose timers can fire seconds late: the assertions are about what holds after the bound, never
// about how fast. A cache that is never refreshed still fails.
const WORK_SLACK_MS = 10_000;

/**
 * withinBound waits until `settled` holds, for at most a staleness bound and the slack for the work
 * that follows it; the assertions after it say what was wrong if it never did.
 */
async function withinBound(boundMs: number, settled: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + boundMs + WORK_SLACK_MS;
  while (!(await settled()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

let stack: DevStack;
let receiver: WebhookReceiver;
let ca: Buffer;
let portBase: number;
const logs: string[] = [];

/** Reply is a Connect JSON answer. */
interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** post sends one Connect JSON call on a fresh connection (so the stack's entry point picks a replica for it). */
function post(baseUrl: string, path: string, body: unknown, apiKey: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${baseUrl}${path}`,
      { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) });
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** postRetrying retries a call that reached a replica which is gone (503), as a client would. */
async function postRetrying(baseUrl: string, path: string, body: unknown, apiKey: string): Promise<Reply> {
  let res = await post(baseUrl, path, body, apiKey);
  for (let attempt = 1; attempt < 10 && res.status === 503; attempt++) res = await post(baseUrl, path, body, apiKey);
  return res;
}

const edges = () => stack.info.replicas.edge.map((r) => r.publicUrl!);
const bootstrapKey = () => stack.info.bootstrap!.apiKey!;

async function createApiKey(scopes: string[]): Promise<{ id: string; secret: string }> {
  const res = await post(
    stack.info.edgeUrl,
    '/parley.api.v1.ApiKeyService/CreateApiKey',
    { name: `r-${randomUUID().slice(0, 8)}`, scopes },
    bootstrapKey(),
  );
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { id: (res.body.apiKey as { id: string }).id, secret: res.body.secret as string };
}

/** LiveSession is a conversation held open on one orchestrator replica. */
interface LiveSession {
  readonly conversationId: string;
  /** frames are the frames received so far. */
  readonly frames: { type: string; reason?: string }[];
  /** closed is set once the replica closed the socket. */
  closed: { code: number } | undefined;
  readonly ws: WebSocket;
}

/** openLive starts a conversation on one orchestrator replica and keeps it open. */
function openLive(url: string, token: string): Promise<LiveSession> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('https:', 'wss:')}/v1/session`, { ca });
    let session: LiveSession | undefined;
    const frames: LiveSession['frames'] = [];
    ws.once('error', reject);
    ws.once('open', () => ws.send(JSON.stringify({ type: 'start', token })));
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as { type: string; conversationId?: string; reason?: string };
      frames.push(frame);
      if (frame.type === 'ready' && session === undefined) {
        session = { conversationId: frame.conversationId!, frames, closed: undefined, ws };
        resolve(session);
      }
    });
    ws.once('close', (code: number, reason: Buffer) => {
      if (session === undefined) reject(new Error(`closed before ready: ${code} ${reason.toString('utf8')}`));
      else session.closed = { code };
    });
  });
}

/** mintToken asks for a session token for the demo agent through the stack's entry point. */
async function mintToken(): Promise<string> {
  const res = await post(
    stack.info.edgeUrl,
    '/parley.api.v1.SessionService/CreateSession',
    { agentId: stack.info.bootstrap!.agentId },
    bootstrapKey(),
  );
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.token as string;
}

/** kidOf reads the kid from a token's protected header. */
const kidOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as { kid: string }).kid;

/** jwksKidsOf lists a JWKS document's kids, sorted. */
function jwksKidsOf(jwksJson: string): string[] {
  return (JSON.parse(jwksJson) as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();
}

/** publicJwksKids reads one edge's /.well-known/jwks.json: its kids and the max-age it allows. */
function publicJwksKids(edgeUrl: string): Promise<{ kids: string[]; maxAge: number }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${edgeUrl}/.well-known/jwks.json`, { ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const set = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { keys: { kid: string }[] };
        const maxAge = /max-age=(\d+)/.exec(String(res.headers['cache-control']))?.[1];
        resolve({ kids: set.keys.map((k) => k.kid).sort(), maxAge: Number(maxAge) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** asService opens an mTLS client to one replica with a service's dev certificate. */
async function asService<S extends Parameters<typeof createServiceClient>[0]>(
  caller: string,
  service: S,
  url: string,
  expectName: Parameters<typeof createServiceClient>[1]['expect'],
): Promise<{ client: ReturnType<typeof createServiceClient<S>>; close(): void }> {
  const certificates = await CertificateSource.open({
    certFile: join(stack.info.certsDir, `${caller}.crt`),
    keyFile: join(stack.info.certsDir, `${caller}.key`),
    caFile: stack.info.caCert,
  });
  const client = createServiceClient(service, { baseUrl: url, certificates, expect: expectName, trustDomain: 'parley.local' });
  return {
    client,
    close: () => {
      client.close();
      certificates.close();
    },
  };
}

/** cachedDataKeys reads a secrets replica's gauge of data keys held in memory (0 when none was ever held). */
async function cachedDataKeys(healthUrl: string): Promise<number> {
  const text = await (await fetch(`${healthUrl.replace(/\/readyz$/, '')}/metrics`)).text();
  const line = /^parley_cache_entries\w*\{[^}]*parley_cache="data_key"[^}]*\}\s+(\S+)/m.exec(text);
  return line === null ? 0 : Number(line[1]);
}

/** twilioCall posts an inbound-call webhook to one orchestrator replica, signed with `authToken` over the stack's public session URL. */
function twilioCall(replicaUrl: string, agentId: string, authToken: string): Promise<number> {
  const path = `/v1/telephony/twilio/voice/${stack.info.bootstrap!.tenantId!}/${agentId}`;
  const form = {
    CallSid: `CA${randomBytes(16).toString('hex')}`,
    AccountSid: `AC${randomBytes(16).toString('hex')}`,
    From: '+14155550100',
    To: '+14155550199',
    CallStatus: 'ringing',
    Direction: 'inbound',
    ApiVersion: '2010-04-01',
  };
  // Twilio signs the URL it was configured with: the entry point (PARLEY_SESSION_PUBLIC_URL), not the replica's own port.
  const signature = twilioSignature({ authToken, url: `https://localhost:${portBase + 1}${path}`, params: form });
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${replicaUrl}${path}`,
      {
        method: 'POST',
        ca,
        agent: false,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** sessionAttempt opens the session port of one orchestrator replica and says how a start with `token` ended. */
function sessionAttempt(url: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('https:', 'wss:')}/v1/session`, { ca });
    ws.once('error', reject);
    ws.once('open', () => ws.send(JSON.stringify({ type: 'start', token })));
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as { type: string; code?: string };
      if (frame.type === 'ready' || frame.type === 'error') {
        ws.close();
        resolve(frame.type === 'ready' ? 'ready' : `error:${frame.code ?? ''}`);
      }
    });
    ws.once('close', (code: number, reason: Buffer) => resolve(`closed:${code}:${reason.toString('utf8')}`));
  });
}

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  const dir = await mkdtemp(join(tmpdir(), 'parley-replicas-'));
  // Below the kernel's ephemeral port range (32768+), where outgoing connections cannot take them.
  portBase = 10_000 + Math.floor(Math.random() * 90) * 100;
  const config = loadDevStackConfig(
    { PARLEY_DEV_DIR: dir, PARLEY_DEV_PORT_BASE: String(portBase), PARLEY_DEV_REPLICAS: '2', PARLEY_LOG_LEVEL: 'warn' },
    root,
  );
  stack = await startDevStack(
    {
      ...config,
      serviceEnv: {
        integrations: receiver.env,
        // Retired versions are due at once and both replicas try to sweep every 200 ms.
        secrets: {
          PARLEY_SECRET_VERSION_GRACE_MS: '0',
          PARLEY_SECRETS_MAINTENANCE_INTERVAL_MS: '200',
          PARLEY_LOG_LEVEL: 'info',
          PARLEY_DEK_CACHE_MAX_AGE_MS: String(DEK_CACHE_MAX_AGE_MS),
        },
        identity: { PARLEY_SIGNING_KEY_RELOAD_MS: String(SIGNING_KEY_RELOAD_MS) },
        edge: { PARLEY_EDGE_JWKS_CACHE_MS: String(EDGE_JWKS_CACHE_MS) },
        'voice-orchestrator': {
          PARLEY_SESSION_LIVE_CHECK_INTERVAL_MS: String(LIVE_CHECK_INTERVAL_MS),
          PARLEY_CALL_WEBHOOK_TOKEN_CACHE_MS: String(CALL_TOKEN_CACHE_MS),
        },
      },
    },
    (line) => logs.push(line),
  );
  ca = await readFile(stack.info.caCert);
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

describe('two replicas of every service', () => {
  it('run as separate processes behind one entry point per public port', async () => {
    for (const replicas of Object.values(stack.info.replicas)) {
      expect(replicas).toHaveLength(2);
      expect(new Set(replicas.map((r) => r.pid)).size).toBe(2);
    }
    expect(edges()).toHaveLength(2);
    // Each edge replica answers on its own port, and so does the entry point.
    for (const url of [...edges(), stack.info.edgeUrl]) {
      const res = await post(url, '/parley.api.v1.AgentService/ListAgents', {}, bootstrapKey());
      expect(res.status, url).toBe(200);
    }
  });

  it('consume a session token once when it is raced at both orchestrator replicas', async () => {
    const session = await post(
      stack.info.edgeUrl,
      '/parley.api.v1.SessionService/CreateSession',
      { agentId: stack.info.bootstrap!.agentId },
      bootstrapKey(),
    );
    expect(session.status, JSON.stringify(session.body)).toBe(200);
    const token = session.body.token as string;
    const outcomes = await Promise.all(stack.info.replicas['voice-orchestrator'].map((r) => sessionAttempt(r.publicUrl!, token)));
    expect(
      outcomes.filter((o) => o === 'ready'),
      outcomes.join(' | '),
    ).toHaveLength(1);
    // The other is refused as a spent token (a caller's mistake, 4401), not as a failure.
    expect(
      outcomes.filter((o) => o.startsWith('closed:4401:')),
      outcomes.join(' | '),
    ).toHaveLength(1);
  });

  it('refuse an API key revoked through one edge at every edge within the documented bound', async () => {
    const key = await createApiKey(['agents:read']);
    // Both edges have the key in their auth cache.
    for (const url of edges()) expect((await post(url, '/parley.api.v1.AgentService/ListAgents', {}, key.secret)).status, url).toBe(200);
    const revoked = await post(edges()[0]!, '/parley.api.v1.ApiKeyService/RevokeApiKey', { apiKeyId: key.id }, bootstrapKey());
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    await new Promise((r) => setTimeout(r, AUTH_CACHE_MS + 100));
    for (const url of edges()) {
      const res = await post(url, '/parley.api.v1.AgentService/ListAgents', {}, key.secret);
      expect([res.status, res.body.code], url).toEqual([401, 'unauthenticated']);
    }
  });

  it('keep every audit chain linear and verifiable while three services append through two audit replicas', async () => {
    const tenantId = stack.info.bootstrap!.tenantId!;
    // identity (API keys), tenant-data (agents) and secrets (provider keys) record audit events;
    // their relays send them to the audit replicas in turn, all at once.
    const calls = [];
    for (let i = 0; i < 6; i++) {
      calls.push(
        post(
          stack.info.edgeUrl,
          '/parley.api.v1.ApiKeyService/CreateApiKey',
          { name: `audit-${i}`, scopes: ['agents:read'] },
          bootstrapKey(),
        ),
      );
      calls.push(post(stack.info.edgeUrl, '/parley.api.v1.AgentService/CreateAgent', { name: `audit-${i}`, prompt: 'p' }, bootstrapKey()));
      calls.push(
        post(
          stack.info.edgeUrl,
          '/parley.api.v1.SecretService/PutSecret',
          { name: `audit-${i}`, providerKind: 'llm', value: `sk-${randomUUID()}` },
          bootstrapKey(),
        ),
      );
    }
    for (const res of await Promise.all(calls)) expect(res.status, JSON.stringify(res.body)).toBe(200);
    const admin = new Client({ connectionString: stack.info.databaseUrl });
    await admin.connect();
    try {
      // Wait until the outboxes are drained into the log.
      const deadline = Date.now() + 30_000;
      let count = 0;
      for (;;) {
        const { rows } = await admin.query<{ n: string }>(
          `select count(*) as n from parley_audit.events where tenant_id = $1 and action in ('api_key.create', 'agent.create', 'secret.create')`,
          [tenantId],
        );
        count = Number(rows[0]!.n);
        if (count >= 18 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(count).toBeGreaterThanOrEqual(18);
      const { rows } = await admin.query<{ seq: string }>('select seq from parley_audit.events where tenant_id = $1 order by seq', [
        tenantId,
      ]);
      const seqs = rows.map((r) => Number(r.seq));
      // No gap and no duplicate: 1..n.
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    } finally {
      await admin.end();
    }
    const verified = await post(stack.info.edgeUrl, '/parley.api.v1.AuditService/VerifyLog', {}, bootstrapKey());
    expect(verified.status, JSON.stringify(verified.body)).toBe(200);
    expect(verified.body.ok, JSON.stringify(verified.body)).toBe(true);
  });

  it('run the secrets maintenance on one replica at a time: none while another holds its lock, then exactly once', async () => {
    const name = `rotated-${randomUUID().slice(0, 8)}`;
    const admin = new Client({ connectionString: stack.info.databaseUrl });
    await admin.connect();
    try {
      // This session takes the lock the replicas' schedulers take; while it holds it, neither runs.
      await admin.query('select pg_advisory_lock($1)', [SECRETS_MAINTENANCE_LOCK]);
      const destroyedLines = () => logs.filter((l) => /^\[secrets(#2)?\]/.test(l) && l.includes('retired secret versions destroyed'));
      const before = destroyedLines().length;
      const put = await post(
        stack.info.edgeUrl,
        '/parley.api.v1.SecretService/PutSecret',
        { name, providerKind: 'llm', value: 'sk-first-version-value-000000' },
        bootstrapKey(),
      );
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      const rotated = await post(
        stack.info.edgeUrl,
        '/parley.api.v1.SecretService/RotateSecret',
        { secretId: (put.body.secret as { id: string }).id, value: 'sk-second-version-value-00000' },
        bootstrapKey(),
      );
      expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
      await new Promise((r) => setTimeout(r, 1_000)); // five intervals of both schedulers
      expect(destroyedLines().length).toBe(before);
      await admin.query('select pg_advisory_unlock($1)', [SECRETS_MAINTENANCE_LOCK]);
      const deadline = Date.now() + 30_000;
      while (destroyedLines().length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 600));
      const runs = destroyedLines().slice(before);
      const destroyed = runs.map((l) => (JSON.parse(l.slice(l.indexOf('{'))) as { destroyed: number }).destroyed);
      // The one retired version was destroyed once, by one replica.
      expect(destroyed.reduce((a, b) => a + b, 0)).toBe(1);
    } finally {
      await admin.end();
    }
  });

  it('deliver a webhook once when both integrations workers race for it', async () => {
    const endpoint = await post(
      stack.info.edgeUrl,
      '/parley.api.v1.WebhookService/CreateWebhookEndpoint',
      { url: receiver.url('/replicas'), eventTypes: ['conversation.ended'] },
      bootstrapKey(),
    );
    expect(endpoint.status, JSON.stringify(endpoint.body)).toBe(200);
    const certificates = await CertificateSource.open({
      certFile: join(stack.info.certsDir, 'voice-orchestrator.crt'),
      keyFile: join(stack.info.certsDir, 'voice-orchestrator.key'),
      caFile: stack.info.caCert,
    });
    // As the orchestrator calls it: over the list of both integrations replicas, so each emit wakes
    // one replica's worker while the other's polls.
    const integrations = createServiceClient(IntegrationsService, {
      baseUrl: stack.info.replicas.integrations.map((r) => r.url).join(','),
      certificates,
      expect: 'integrations',
      trustDomain: 'parley.local',
    });
    try {
      const eventIds = Array.from({ length: 10 }, () => randomUUID());
      await Promise.all(
        eventIds.map((eventId) =>
          integrations.emitEvent({
            tenantId: stack.info.bootstrap!.tenantId!,
            eventId,
            type: 'conversation.ended',
            data: { conversation_id: randomUUID() },
          }),
        ),
      );
      const received = () => receiver.received.filter((r) => r.path === '/replicas');
      const deadline = Date.now() + 30_000;
      while (received().length < eventIds.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 1_500)); // a second delivery would come within a poll
      const ids = received().map((r) => String(r.headers['webhook-id']));
      expect(ids).toHaveLength(eventIds.length);
      expect(new Set(ids).size).toBe(eventIds.length);
    } finally {
      integrations.close();
      certificates.close();
    }
  });

  describe('keep each replica-local cache within its documented staleness bound', () => {
    it('data keys: a subject shredded through one secrets replica is refused by the other at once, and its key leaves memory within PARLEY_DEK_CACHE_MAX_AGE_MS', async () => {
      const tenantId = stack.info.bootstrap!.tenantId!;
      const subjectId = randomUUID();
      const scope = { tenantId, subjectId, purpose: 'replica-staleness' };
      const [first, second] = stack.info.replicas.secrets.map((r) => r);
      const writer = await asService('tenant-data', SecretsService, first!.url, 'secrets');
      const readers = await Promise.all(stack.info.replicas.secrets.map((r) => asService('tenant-data', SecretsService, r.url, 'secrets')));
      const shredder = await asService('lifecycle', SecretsService, first!.url, 'secrets');
      try {
        const { ciphertext } = await writer.client.encryptForSubject({ ...scope, plaintext: Buffer.from('a turn of the subject') });
        // Both replicas open it, so both hold the subject's data key in memory.
        for (const reader of readers) {
          const { plaintext } = await reader.client.decryptForSubject({ ...scope, ciphertext });
          expect(Buffer.from(plaintext).toString('utf8')).toBe('a turn of the subject');
        }
        expect(await cachedDataKeys(second!.healthUrl)).toBeGreaterThanOrEqual(1);
        expect((await shredder.client.shredSubjectKey({ tenantId, subjectId })).shredded).toBe(true);
        // Refused at the other replica with no wait at all: the subject key is looked up in
        // Postgres on every call, the cache only holds the unwrapped key for it.
        for (const reader of readers) {
          const err = await reader.client.decryptForSubject({ ...scope, ciphertext }).then(
            () => undefined,
            (e: unknown) => ConnectError.from(e),
          );
          expect(err?.code, err?.message).toBe(Code.FailedPrecondition);
        }
        // The other replica was never told; nobody asks it for that key again, and still it is
        // wiped within the bound (no data key is held there any more).
        await withinBound(DEK_CACHE_MAX_AGE_MS, async () => (await cachedDataKeys(second!.healthUrl)) === 0);
        expect(await cachedDataKeys(second!.healthUrl)).toBe(0);
      } finally {
        for (const c of [writer, shredder, ...readers]) c.close();
      }
    });

    it('JWKS: a signing key rotated by one identity replica is published by every identity and edge replica within the bound, before it signs', async () => {
      const admin = new Client({ connectionString: stack.info.databaseUrl });
      await admin.connect();
      const identities = await Promise.all(stack.info.replicas.identity.map((r) => asService('edge', IdentityService, r.url, 'identity')));
      try {
        const published = async () =>
          (
            await admin.query<{ kid: string; lead_ms: number }>(
              `select kid, extract(epoch from activates_at - created_at) * 1000 as lead_ms
                 from parley_identity.signing_keys where publish_until > now() order by created_at`,
            )
          ).rows;
        const before = await published();
        // Rotation is due when the signing key is older than PARLEY_SIGNING_KEY_ROTATION_HOURS:
        // age it instead of waiting a day. Whichever replica takes the rotation lock first rotates.
        await admin.query(`update parley_identity.signing_keys set created_at = created_at - interval '30 days'`);
        await withinBound(SIGNING_KEY_RELOAD_MS + EDGE_JWKS_CACHE_MS, async () => {
          const kids = (await published()).map((k) => k.kid).sort();
          if (kids.length <= before.length) return false;
          const lists = [
            ...(await Promise.all(identities.map(async (i) => jwksKidsOf((await i.client.getJwks({})).jwksJson)))),
            ...(await Promise.all(edges().map(async (url) => (await publicJwksKids(url)).kids))),
          ];
          return lists.every((l) => JSON.stringify(l) === JSON.stringify(kids));
        });
        const after = await published();
        // Exactly one successor, made by one replica.
        expect(after.map((k) => k.kid).slice(0, before.length)).toEqual(before.map((k) => k.kid));
        expect(after).toHaveLength(before.length + 1);
        const successor = after.at(-1)!;
        // It signs only after every verifier can know it: a replica's reload plus the JWKS lifetime a client may keep (60 s).
        expect(Number(successor.lead_ms)).toBeGreaterThan(SIGNING_KEY_RELOAD_MS + 60_000);
        const kids = after.map((k) => k.kid).sort();
        for (const identity of identities) {
          const { jwksJson } = await identity.client.getJwks({});
          expect((JSON.parse(jwksJson) as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort()).toEqual(kids);
        }
        for (const url of edges()) {
          const set = await publicJwksKids(url);
          expect(set.kids, url).toEqual(kids);
          expect(set.maxAge, url).toBeLessThanOrEqual(60);
        }
        // Meanwhile every replica still signs with the current key, and its tokens verify everywhere.
        for (const orchestrator of stack.info.replicas['voice-orchestrator']) {
          const token = await mintToken();
          expect(kidOf(token)).toBe(before.at(-1)!.kid);
          expect(await sessionAttempt(orchestrator.publicUrl!, token)).toBe('ready');
        }
      } finally {
        for (const c of identities) c.close();
        await admin.end();
      }
    });

    it('JWKS: signing keys withdrawn in Postgres are refused by every replica within the bound, and the key made in their place verifies everywhere', async () => {
      const admin = new Client({ connectionString: stack.info.databaseUrl });
      await admin.connect();
      const identities = await Promise.all(stack.info.replicas.identity.map((r) => asService('edge', IdentityService, r.url, 'identity')));
      try {
        // Minted before the withdrawal and not used yet.
        const stale = await mintToken();
        const withdrawn = (await admin.query<{ kid: string }>('select kid from parley_identity.signing_keys')).rows.map((r) => r.kid);
        expect(withdrawn).toContain(kidOf(stale));
        // The documented emergency step for a leaked signing key (README): end its publication.
        await admin.query('update parley_identity.signing_keys set publish_until = now() where publish_until > now()');
        // A replica's reload, identity's in-process JWKS (no longer than the reload) and the edge's copy.
        await withinBound(2 * SIGNING_KEY_RELOAD_MS + EDGE_JWKS_CACHE_MS, async () => {
          const kids = (
            await admin.query<{ kid: string }>('select kid from parley_identity.signing_keys where publish_until > now()')
          ).rows.map((r) => r.kid);
          if (kids.length === 0) return false;
          const lists = [
            ...(await Promise.all(identities.map(async (i) => jwksKidsOf((await i.client.getJwks({})).jwksJson)))),
            ...(await Promise.all(edges().map(async (url) => (await publicJwksKids(url)).kids))),
          ];
          return lists.every((l) => JSON.stringify(l) === JSON.stringify(kids));
        });
        const fresh = (await admin.query<{ kid: string }>('select kid from parley_identity.signing_keys where publish_until > now()')).rows;
        // With no usable key left, one replica made one that signs at once.
        expect(fresh).toHaveLength(1);
        expect(withdrawn).not.toContain(fresh[0]!.kid);
        for (const identity of identities) {
          const { jwksJson } = await identity.client.getJwks({});
          expect((JSON.parse(jwksJson) as { keys: { kid: string }[] }).keys.map((k) => k.kid)).toEqual([fresh[0]!.kid]);
        }
        for (const url of edges()) expect((await publicJwksKids(url)).kids, url).toEqual([fresh[0]!.kid]);
        // The token signed with a withdrawn key is refused at every orchestrator (through either identity replica).
        for (const orchestrator of stack.info.replicas['voice-orchestrator']) {
          expect(await sessionAttempt(orchestrator.publicUrl!, stale)).toMatch(/^closed:4401:/);
        }
        // Tokens minted now (by either identity replica) carry the new key and verify at every orchestrator.
        for (let i = 0; i < 4; i++) {
          const token = await mintToken();
          expect(kidOf(token)).toBe(fresh[0]!.kid);
          const orchestrator = stack.info.replicas['voice-orchestrator'][i % 2]!;
          expect(await sessionAttempt(orchestrator.publicUrl!, token), orchestrator.name).toBe('ready');
        }
      } finally {
        for (const c of identities) c.close();
        await admin.end();
      }
    });

    it('conversation live: a conversation ended through the API closes on whichever orchestrator replica holds it within the live-check interval, and secrets refuses it at once', async () => {
      const sessions = await Promise.all(
        stack.info.replicas['voice-orchestrator'].map(async (r) => openLive(r.publicUrl!, await mintToken())),
      );
      const resolvers = await Promise.all(
        stack.info.replicas.secrets.map((r) => asService('voice-orchestrator', SecretsService, r.url, 'secrets')),
      );
      try {
        for (const [i, session] of sessions.entries()) {
          const ended = await post(
            edges()[(i + 1) % 2]!,
            '/parley.api.v1.ConversationService/EndConversation',
            { conversationId: session.conversationId, reason: 'ended elsewhere' },
            bootstrapKey(),
          );
          expect(ended.status, JSON.stringify(ended.body)).toBe(200);
        }
        // No cache in secrets: every replica refuses to resolve for an ended conversation at once.
        for (const session of sessions) {
          for (const resolver of resolvers) {
            const err = await resolver.client
              .resolveForConversation({
                tenantId: stack.info.bootstrap!.tenantId!,
                conversationId: session.conversationId,
                agentId: stack.info.bootstrap!.agentId!,
              })
              .then(
                () => undefined,
                (e: unknown) => ConnectError.from(e),
              );
            expect(err?.code, err?.message).toBe(Code.FailedPrecondition);
          }
        }
        // Each orchestrator replica learns of the end at its next check: an end frame, then the close.
        await withinBound(LIVE_CHECK_INTERVAL_MS, async () =>
          sessions.every((session) => session.closed !== undefined && session.frames.some((f) => f.type === 'end')),
        );
        for (const session of sessions) {
          expect(
            session.frames.filter((f) => f.type === 'end'),
            JSON.stringify(session.frames),
          ).toHaveLength(1);
          expect(session.closed, session.conversationId).toBeDefined();
        }
      } finally {
        for (const session of sessions) session.ws.terminate();
        for (const c of resolvers) c.close();
      }
    });

    it('Twilio auth token: a telephony secret rotated through the API is used by every orchestrator replica within PARLEY_CALL_WEBHOOK_TOKEN_CACHE_MS', async () => {
      const oldToken = randomBytes(16).toString('hex');
      const newToken = randomBytes(16).toString('hex');
      const secret = await post(
        stack.info.edgeUrl,
        '/parley.api.v1.SecretService/PutSecret',
        { name: `twilio-${randomUUID().slice(0, 8)}`, providerKind: 'telephony', value: oldToken },
        bootstrapKey(),
      );
      expect(secret.status, JSON.stringify(secret.body)).toBe(200);
      const secretId = (secret.body.secret as { id: string }).id;
      const created = await post(
        stack.info.edgeUrl,
        '/parley.api.v1.AgentService/CreateAgent',
        {
          name: `phone-${randomUUID().slice(0, 8)}`,
          prompt: 'p',
          providerSettings: { llm: { provider: 'scripted', rules: [], defaultReply: 'ok', delayMs: 0 } },
          secretRefs: { telephony: secretId },
        },
        bootstrapKey(),
      );
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      const agentId = (created.body.agent as { id: string }).id;
      const orchestrators = stack.info.replicas['voice-orchestrator'].map((r) => r.publicUrl!);
      // Both replicas answer a call signed with the current token, and now hold it in memory.
      for (const url of orchestrators) expect(await twilioCall(url, agentId, oldToken), url).toBe(200);
      const rotated = await post(edges()[0]!, '/parley.api.v1.SecretService/RotateSecret', { secretId, value: newToken }, bootstrapKey());
      expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
      await withinBound(CALL_TOKEN_CACHE_MS, async () =>
        (await Promise.all(orchestrators.map((url) => twilioCall(url, agentId, oldToken)))).every((status) => status === 403),
      );
      // Past the bound every replica checks signatures with the rotated token only.
      for (const url of orchestrators) {
        expect(await twilioCall(url, agentId, newToken), url).toBe(200);
        expect(await twilioCall(url, agentId, oldToken), url).toBe(403);
      }
    });
  });

  it('lose nothing acknowledged when a replica is SIGKILLed under load: retries succeed on the other', async () => {
    const created: string[] = [];
    const seen: string[] = [];
    let unavailable = 0;
    const createWithRetry = async (i: number) => {
      const history: string[] = [];
      for (let attempt = 0; attempt < 10; attempt++) {
        let res: Reply | undefined;
        try {
          res = await post(
            stack.info.edgeUrl,
            '/parley.api.v1.AgentService/CreateAgent',
            { name: `load-${i}`, prompt: 'p' },
            bootstrapKey(),
          );
        } catch {
          res = undefined; // the connection was cut: retry
        }
        history.push(res === undefined ? 'cut' : `${res.status}/${String(res.body.code ?? '')}`);
        if (res?.status === 200) {
          created.push((res.body.agent as { id: string }).id);
          return;
        }
        // An attempt the caller did not see succeed may still have committed (the replica died
        // after the commit, before the answer): names are unique, so the retry says so.
        if (attempt > 0 && res?.status === 409 && res.body.code === 'already_exists') {
          seen.push(`load-${i}: ${history.join(' ')}`);
          return;
        }
        // Retryable: UNAVAILABLE (a replica went away) and ABORTED (a concurrent change won).
        const retryable = res === undefined || res.status === 503 || (res.status === 409 && res.body.code === 'aborted');
        if (!retryable)
          throw new Error(`CreateAgent load-${i} answered ${res?.status}: ${JSON.stringify(res?.body)} after ${history.join(' ')}`);
        if (res === undefined || res.status === 503) unavailable++;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`CreateAgent load-${i} failed 10 times`);
    };
    const victim = stack.info.replicas['tenant-data'][1]!;
    const load = (async () => {
      for (let batch = 0; batch < 8; batch++) await Promise.all([0, 1, 2, 3].map((j) => createWithRetry(batch * 4 + j)));
    })();
    // Killed once the first batch has landed, so mid-load however fast or slow the machine is (a
    // fixed 300 ms could come after a quick machine's last batch, leaving no call to retry).
    let loadEnded = false;
    void load.then(
      () => (loadEnded = true),
      () => (loadEnded = true),
    );
    while (created.length + seen.length < 4 && !loadEnded) await new Promise((r) => setTimeout(r, 20));
    process.kill(victim.pid!, 'SIGKILL');
    await load;
    expect(created.length + seen.length, seen.join('; ')).toBe(32);
    // The dead replica was hit (and the caller retried) at least once.
    expect(unavailable).toBeGreaterThan(0);
    // Every acknowledged agent is there, read through either edge (a read that reaches the dead
    // replica is retried like any other call).
    for (const [i, id] of created.entries()) {
      const res = await postRetrying(edges()[i % 2]!, '/parley.api.v1.AgentService/GetAgent', { agentId: id }, bootstrapKey());
      expect(res.status, `${id}: ${JSON.stringify(res.body)}`).toBe(200);
    }
    // And every name is there exactly once, the unacknowledged ones included.
    const list = await postRetrying(stack.info.edgeUrl, '/parley.api.v1.AgentService/ListAgents', { pageSize: 200 }, bootstrapKey());
    expect(list.status, JSON.stringify(list.body)).toBe(200);
    const names = (list.body.agents as { name: string }[]).map((a) => a.name).filter((n) => n.startsWith('load-'));
    expect(names.sort()).toEqual(Array.from({ length: 32 }, (_, i) => `load-${i}`).sort());
  });
});
