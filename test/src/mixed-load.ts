// A steady mixed load on the public API for the fault tests (test/faults) and the soak benchmark, and the ledger of what the stack
// acknowledged: agent updates, secret puts, and sessions carried through the session port to a
// conversation that resolved its agent's provider key. Every call's outcome is kept with its time,
// so each fault's window can be read back: which errors callers saw, and when each kind of call
// succeeded again.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:https';
import WebSocket from 'ws';

/** LoadKind is one kind of call in the mix. */
export type LoadKind = 'agent.update' | 'secret.put' | 'session';

/** Outcome is one call's result: 'ok', or the error class a caller saw (a Connect code, a close code, a transport error). */
export interface Outcome {
  readonly at: number;
  readonly kind: LoadKind;
  readonly result: string;
  /** message is what the caller was told, kept for the report when it is not a clear error. */
  readonly message?: string;
}

/** Acked is one acknowledged write: the name or id to look for, and when the caller was told. */
export interface Acked {
  readonly id: string;
  readonly at: number;
}

/** Ledger is what the stack acknowledged, to be found again once the faults are over. */
export interface Ledger {
  /** agents: per agent, every name sent in order, and the acknowledged ones with when. */
  readonly agents: Map<string, { sent: string[]; acked: Acked[] }>;
  /** secrets are the ids of acknowledged PutSecret calls. */
  readonly secrets: Acked[];
  /** conversations are the ids of conversations that reached `ready` (their provider key was resolved). */
  readonly conversations: Acked[];
}

const CLEAR_CODES = new Set(['unavailable', 'deadline_exceeded', 'resource_exhausted', 'aborted']);
const CLEAR_CLOSE_CODES = new Set([1001, 1006, 1013]);
const TRANSPORT = /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|socket hang up|client timeout)$/;
const STACK_TRACE = /\n\s+at |\bat [\w.<>]+ \(|\.[cm]?[jt]s:\d+:\d+/;

/** isClear tells whether a caller saw a clear, retryable error: UNAVAILABLE-like, never INTERNAL, never a stack trace. */
export function isClear(o: Outcome): boolean {
  if (o.result === 'ok') return true;
  if (o.message !== undefined && STACK_TRACE.test(o.message)) return false;
  if (o.result.startsWith('connect:')) return CLEAR_CODES.has(o.result.slice('connect:'.length));
  if (o.result.startsWith('close:')) return CLEAR_CLOSE_CODES.has(Number(o.result.slice('close:'.length)));
  if (o.result.startsWith('transport:')) return TRANSPORT.test(o.result.slice('transport:'.length));
  return false;
}

/** LoadTarget is where the load goes. */
export interface LoadTarget {
  readonly edgeUrl: string;
  readonly sessionUrl: string;
  readonly ca: Buffer;
  readonly apiKey: string;
}

/** MixedLoad runs the mix until stopped. */
export class MixedLoad {
  readonly outcomes: Outcome[] = [];
  readonly ledger: Ledger = { agents: new Map(), secrets: [], conversations: [] };
  readonly #target: LoadTarget;
  readonly #http: Agent;
  #running = false;
  #loops: Promise<void>[] = [];
  #counter = 0;

  constructor(target: LoadTarget) {
    this.#target = target;
    this.#http = new Agent({ keepAlive: true, maxSockets: 8, ca: target.ca });
  }

  /** call POSTs Connect JSON to the edge; a failure resolves to the class of error a caller saw. */
  async call(
    path: string,
    body: unknown,
    timeoutMs = 15_000,
  ): Promise<{ ok: true; body: Record<string, unknown> } | { ok: false; result: string; message: string }> {
    return new Promise((resolve) => {
      const req = request(
        `${this.#target.edgeUrl}${path}`,
        {
          method: 'POST',
          agent: this.#http,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${this.#target.apiKey}` },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => resolve({ ok: false, result: `transport:${transportName(err)}`, message: err.message }));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: Record<string, unknown>;
            try {
              parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
            } catch {
              return resolve({ ok: false, result: `http:${res.statusCode}`, message: text.slice(0, 500) });
            }
            if (res.statusCode === 200) return resolve({ ok: true, body: parsed });
            const code = typeof parsed.code === 'string' ? parsed.code : `http:${res.statusCode}`;
            resolve({ ok: false, result: `connect:${code}`, message: String(parsed.message ?? text.slice(0, 500)) });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('client timeout')));
      req.on('error', (err) => resolve({ ok: false, result: `transport:${transportName(err)}`, message: err.message }));
      req.end(JSON.stringify(body));
    });
  }

  /**
   * seedAgents stores the "llm" secret `secretName` and creates one OpenAI-compatible agent per name
   * that refers to it, so that every conversation start resolves that key (the load never sends a
   * user turn, so the provider is never called). It resolves to the agents' ids, in order.
   */
  async seedAgents(secretName: string, names: readonly string[]): Promise<string[]> {
    const llm = await this.call('/parley.api.v1.SecretService/PutSecret', {
      name: secretName,
      providerKind: 'llm',
      value: `sk-${secretName}-value`,
    });
    if (!llm.ok) throw new Error(`PutSecret: ${llm.result} ${llm.message}`);
    const agents: string[] = [];
    for (const name of names) {
      const created = await this.call('/parley.api.v1.AgentService/CreateAgent', {
        name,
        prompt: 'Be brief.',
        providerSettings: { llm: { provider: 'openai-compatible', model: 'gpt-test' } },
        secretRefs: { llm: (llm.body.secret as { id: string }).id },
      });
      if (!created.ok) throw new Error(`CreateAgent: ${created.result} ${created.message}`);
      agents.push((created.body.agent as { id: string }).id);
    }
    return agents;
  }

  /** start begins one loop per kind (agent updates on each given agent, secret puts, sessions with the resolving agent). */
  start(options: { updateAgents: string[]; sessionAgent: string }): void {
    this.#running = true;
    this.#loops = [
      ...options.updateAgents.map((id) => this.#loop(() => this.updateAgentOnce(id))),
      this.#loop(() => this.putSecretOnce()),
      this.#loop(() => this.sessionOnce(options.sessionAgent)),
    ];
  }

  /** stop ends the loops after their current call and closes the kept-alive connections. */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.#http.destroy();
  }

  /** recoveredAfter is the time from `since` until every kind had succeeded again, or undefined while one has not. */
  recoveredAfter(since: number): number | undefined {
    const kinds: LoadKind[] = ['agent.update', 'secret.put', 'session'];
    let latest = since;
    for (const kind of kinds) {
      const first = this.outcomes.find((o) => o.kind === kind && o.at >= since && o.result === 'ok');
      if (first === undefined) return undefined;
      latest = Math.max(latest, first.at);
    }
    return latest - since;
  }

  async #loop(step: () => Promise<Outcome>): Promise<void> {
    while (this.#running) {
      const outcome = await step();
      this.outcomes.push(outcome);
      // A failed call is retried after a pause, as a well-behaved client backs off.
      await new Promise((r) => setTimeout(r, outcome.result === 'ok' ? 40 : 250));
    }
  }

  /** updateAgentOnce renames the agent to a fresh name and records it. */
  async updateAgentOnce(agentId: string): Promise<Outcome> {
    const name = `fault-${agentId.slice(0, 8)}-${++this.#counter}`;
    let entry = this.ledger.agents.get(agentId);
    if (entry === undefined) this.ledger.agents.set(agentId, (entry = { sent: [], acked: [] }));
    entry.sent.push(name);
    const res = await this.call('/parley.api.v1.AgentService/UpdateAgent', { agentId, name });
    if (res.ok) entry.acked.push({ id: name, at: Date.now() });
    return outcome('agent.update', res);
  }

  /** putSecretOnce stores a new secret and records its id. */
  async putSecretOnce(): Promise<Outcome> {
    const name = `fault-secret-${++this.#counter}`;
    const res = await this.call('/parley.api.v1.SecretService/PutSecret', {
      name,
      providerKind: 'llm',
      value: `sk-fault-${randomBytes(12).toString('hex')}`,
    });
    if (res.ok) this.ledger.secrets.push({ id: (res.body.secret as { id: string }).id, at: Date.now() });
    return outcome('secret.put', res);
  }

  /** sessionOnce creates a session, starts its conversation on the session port (the agent's key is resolved) and ends it. */
  async sessionOnce(agentId: string): Promise<Outcome> {
    const created = await this.call('/parley.api.v1.SessionService/CreateSession', { agentId });
    if (!created.ok) return outcome('session', created);
    const token = String(created.body.token);
    const result = await new Promise<{ result: string; message?: string; conversationId?: string }>((resolve) => {
      const ws = new WebSocket(this.#target.sessionUrl, { ca: this.#target.ca });
      const timer = setTimeout(() => {
        ws.terminate();
        resolve({ result: 'transport:client timeout' });
      }, 15_000);
      let conversationId: string | undefined;
      ws.on('open', () => ws.send(JSON.stringify({ type: 'start', token })));
      ws.on('message', (data: Buffer) => {
        let frame: { type: string; conversationId?: string };
        try {
          frame = JSON.parse(data.toString('utf8')) as typeof frame;
        } catch {
          return;
        }
        if (frame.type === 'ready') {
          conversationId = frame.conversationId;
          ws.send(JSON.stringify({ type: 'end' }));
        }
      });
      ws.on('error', (err) => {
        clearTimeout(timer);
        resolve({ result: `transport:${transportName(err)}`, message: err.message });
      });
      ws.on('close', (code, reason) => {
        clearTimeout(timer);
        if (conversationId !== undefined) resolve({ result: 'ok', conversationId });
        else resolve({ result: `close:${code}`, message: reason.toString('utf8') });
      });
    });
    const at = Date.now();
    if (result.conversationId !== undefined) this.ledger.conversations.push({ id: result.conversationId, at });
    return { at, kind: 'session', result: result.result, ...(result.message !== undefined ? { message: result.message } : {}) };
  }
}

function outcome(kind: LoadKind, res: { ok: true } | { ok: false; result: string; message: string }): Outcome {
  return res.ok ? { at: Date.now(), kind, result: 'ok' } : { at: Date.now(), kind, result: res.result, message: res.message };
}

function transportName(err: Error & { code?: string }): string {
  return err.code ?? err.message;
}
