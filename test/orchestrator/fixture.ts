// A real conversation stack for tests: the public stack (tenant-data, identity, secrets, audit,
// integrations, edge as processes on the run's Postgres) plus the voice-orchestrator process with its session
// port, and a WebSocket client that speaks the session protocol the way a browser does.
import { fileURLToPath } from 'node:url';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { peerUrlVariable } from '@parley/platform';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type { Client } from '@connectrpc/connect';
import WebSocket from 'ws';
import { expect } from 'vitest';
import { startPublicStack, type PublicStack } from '../edge/fixture.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** ConversationStack is the public stack plus a running voice-orchestrator. */
export interface ConversationStack {
  readonly stack: PublicStack;
  readonly sessionUrl: string;
  readonly orchestratorUrl: string;
  /** logs are every line of every process, the orchestrator's included. */
  readonly logs: string[];
  orchestrator: ServiceProcess;
  /** startOrchestrator (re)starts the orchestrator with extra environment. */
  startOrchestrator(extra?: Record<string, string>): Promise<void>;
  /** startReplica starts a second orchestrator process on ports of its own (stopped by stop()); it answers at `url`. */
  startReplica(extra?: Record<string, string>): Promise<{ readonly url: string; readonly process: ServiceProcess }>;
  createAgent(body: Record<string, unknown>): Promise<string>;
  putSecret(name: string, value: string, providerKind?: string): Promise<string>;
  createSession(
    agentId: string,
    options?: { origin?: string; subjectRef?: string; ttlSeconds?: number },
  ): Promise<{ token: string; sessionId: string }>;
  connect(options?: { origin?: string; path?: string }): Promise<SessionClient>;
  tenantData(): Promise<Client<typeof TenantDataService>>;
  stop(): Promise<void>;
}

/** Frame is a server frame as the client received it. */
export type Frame = { type: string; [key: string]: unknown };

/** SessionClient is a WebSocket to the session port, with the frames received so far. */
export interface SessionClient {
  readonly ws: WebSocket;
  readonly frames: Frame[];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** audio are the binary frames received (PCM16 at the declared rate), with the time each arrived (performance.now()). */
  readonly audio: { at: number; bytes: Buffer }[];
  send(frame: unknown): void;
  /** sendAudio sends PCM16 samples as one binary frame. */
  sendAudio(samples: Int16Array): void;
  /** next waits for the next unread frame matching the predicate. */
  next(match: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** reply collects one whole assistant reply (sentences up to the final frame). */
  reply(timeoutMs?: number): Promise<{ sentences: string[]; final: Frame }>;
}

/**
 * startConversationStack starts everything; `orchestratorEnv` adds to the orchestrator's
 * environment, `stackEnv` to the public stack's services' (e.g. integrations' egress allow-list).
 */
export async function startConversationStack(
  orchestratorEnv: Record<string, string> = {},
  stackEnv: Parameters<typeof startPublicStack>[0] = {},
): Promise<ConversationStack> {
  const port = await freePort();
  const health = await freePort();
  const sessionPort = await freePort();
  const orchestratorUrl = `https://localhost:${port}`;
  // The edge forwards CallService/PlaceCall to this orchestrator.
  const stack = await startPublicStack({
    ...stackEnv,
    edge: { [peerUrlVariable('voice-orchestrator')]: orchestratorUrl, ...stackEnv.edge },
  });
  const logs = stack.logs;
  const ownerKey = stack.bootstrap.apiKey;
  const tls = stack.pki.files('voice-orchestrator');
  const env = (extra: Record<string, string>) => ({
    PARLEY_SERVICE_PORT: String(port),
    PARLEY_HEALTH_PORT: String(health),
    PARLEY_PUBLIC_PORT: String(sessionPort),
    PARLEY_TLS_CERT: tls.certFile,
    PARLEY_TLS_KEY: tls.keyFile,
    PARLEY_TLS_CA: tls.caFile,
    PARLEY_LOG_LEVEL: 'info',
    // Room on a loaded machine for a reply to finish and every conversation to be recorded ended (SIGTERM test).
    PARLEY_SHUTDOWN_GRACE_MS: '10000',
    [peerUrlVariable('identity')]: stack.urls.identity,
    [peerUrlVariable('tenant-data')]: stack.urls['tenant-data'],
    [peerUrlVariable('secrets')]: stack.urls.secrets,
    [peerUrlVariable('integrations')]: stack.urls.integrations,
    [peerUrlVariable('audit')]: stack.urls.audit,
    ...orchestratorEnv,
    ...extra,
  });
  const make = (extra: Record<string, string>, name = 'voice-orchestrator', healthPort = health) =>
    new ServiceProcess({
      name,
      script: serviceScript(root, 'voice-orchestrator'),
      env: env(extra),
      healthUrl: `http://127.0.0.1:${healthPort}/readyz`,
      onLine: (name, line) => logs.push(`[${name}] ${line}`),
    });
  const replicas: ServiceProcess[] = [];
  const self: ConversationStack = {
    stack,
    sessionUrl: `wss://localhost:${sessionPort}/v1/session`,
    orchestratorUrl,
    logs,
    orchestrator: make({}),
    async startOrchestrator(extra = {}) {
      self.orchestrator = make(extra);
      self.orchestrator.start();
      await self.orchestrator.waitReady(30_000);
    },
    async startReplica(extra = {}) {
      const [servicePort, healthPort, publicPort] = [await freePort(), await freePort(), await freePort()];
      const replica = make(
        {
          ...extra,
          PARLEY_SERVICE_PORT: String(servicePort),
          PARLEY_HEALTH_PORT: String(healthPort),
          PARLEY_PUBLIC_PORT: String(publicPort),
        },
        `voice-orchestrator-${replicas.length + 2}`,
        healthPort,
      );
      replicas.push(replica);
      replica.start();
      await replica.waitReady(30_000);
      return { url: `https://localhost:${servicePort}`, process: replica };
    },
    async createAgent(body) {
      const res = await stack.call('/parley.api.v1.AgentService/CreateAgent', { name: `agent-${Date.now()}`, ...body }, ownerKey);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return (res.body.agent as { id: string }).id;
    },
    async putSecret(name, value, providerKind = 'llm') {
      const res = await stack.call('/parley.api.v1.SecretService/PutSecret', { name, providerKind, value }, ownerKey);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return (res.body.secret as { id: string }).id;
    },
    async createSession(agentId, options = {}) {
      const res = await stack.call(
        '/parley.api.v1.SessionService/CreateSession',
        {
          agentId,
          origin: options.origin ?? 'https://app.example.com',
          ...(options.subjectRef !== undefined ? { subjectRef: options.subjectRef } : {}),
          ...(options.ttlSeconds !== undefined ? { ttlSeconds: options.ttlSeconds } : {}),
        },
        ownerKey,
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return { token: res.body.token as string, sessionId: res.body.sessionId as string };
    },
    async connect(options = {}) {
      const url = options.path === undefined ? self.sessionUrl : `wss://localhost:${sessionPort}${options.path}`;
      const ws = new WebSocket(url, { ca: stack.ca, origin: options.origin ?? 'https://app.example.com' });
      const frames: Frame[] = [];
      const audio: { at: number; bytes: Buffer }[] = [];
      let read = 0;
      const waiters = new Set<() => void>();
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          audio.push({ at: performance.now(), bytes: Buffer.from(data) });
          return;
        }
        frames.push(JSON.parse(data.toString('utf8')) as Frame);
        for (const w of waiters) w();
      });
      const closed = new Promise<{ code: number; reason: string }>((resolve) => {
        ws.on('close', (code, reason) => {
          resolve({ code, reason: reason.toString('utf8') });
          for (const w of waiters) w();
        });
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const next: SessionClient['next'] = (match, timeoutMs = 10_000) =>
        new Promise((resolve, reject) => {
          const check = () => {
            while (read < frames.length) {
              const f = frames[read++] as Frame;
              if (match(f)) {
                waiters.delete(check);
                clearTimeout(timer);
                resolve(f);
                return;
              }
            }
            if (ws.readyState === ws.CLOSED) {
              waiters.delete(check);
              clearTimeout(timer);
              reject(new Error(`connection closed before the frame arrived; frames: ${JSON.stringify(frames)}`));
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            reject(new Error(`frame not received in ${timeoutMs} ms; frames: ${JSON.stringify(frames)}`));
          }, timeoutMs);
          waiters.add(check);
          check();
        });
      return {
        ws,
        frames,
        closed,
        audio,
        send: (frame) => ws.send(JSON.stringify(frame)),
        sendAudio: (samples) => ws.send(Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength), { binary: true }),
        next,
        async reply(timeoutMs = 10_000) {
          const sentences: string[] = [];
          for (;;) {
            const f = await next((x) => x.type === 'assistant_text', timeoutMs);
            if (f.final === true) return { sentences, final: f };
            sentences.push(f.text as string);
          }
        },
      };
    },
    tenantData: () => stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService),
    async stop() {
      await Promise.all(replicas.map((r) => r.stop().catch(() => undefined)));
      await self.orchestrator.stop().catch(() => undefined);
      await stack.stop();
    },
  };
  await self.startOrchestrator();
  return self;
}

/** scripted builds scripted provider settings (zero delay unless given). */
export function scripted(
  rules: { match: string; reply: string; tool?: { name: string; arguments: Record<string, unknown> } }[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { llm: { provider: 'scripted', rules, delayMs: 0, ...extra } };
}
