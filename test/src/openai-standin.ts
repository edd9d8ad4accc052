// A STAND-IN for an OpenAI-compatible chat-completions endpoint, for tests only: no real LLM can
// be reached where Parley's tests run, so this node:https server (its own throwaway CA, a
// certificate for 127.0.0.1, since the orchestrator's egress client speaks https only) answers POST
// /v1/chat/completions with `stream: true` in OpenAI's documented wire format (Server-Sent
// Events: `data: <chat.completion.chunk JSON>` events, then `data: [DONE]`; errors as
// `{"error":{...}}` JSON with an HTTP status). It is not OpenAI. See test/openai-standin/README.md.
import { randomUUID } from 'node:crypto';
import { writeFileSync, mkdtempSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import type { AddressInfo, Socket } from 'node:net';

/** OpenAiStandinMode is how the stand-in answers the next requests. */
export type OpenAiStandinMode =
  /** up streams the reply. */
  | 'up'
  /** unavailable answers 503 (a provider outage) to every request. */
  | 'unavailable'
  /** drop sends the first two chunks and then resets the connection (a provider dying mid-reply). */
  | 'drop'
  /** hang accepts the request and never answers. */
  | 'hang';

/** RecordedRequest is what a test may check about a request. */
export interface RecordedRequest {
  readonly authorization: string;
  readonly body: { model?: string; stream?: boolean; messages?: { role: string; content: string }[] };
}

/** OpenAiStandin is a running stand-in. */
export interface OpenAiStandin {
  /** baseUrl is what an agent's provider settings name, e.g. https://127.0.0.1:1234/v1. */
  readonly baseUrl: string;
  /** port is the stand-in's port (the egress port list must name it). */
  readonly port: number;
  /** caPem / caFile are the stand-in's CA (NODE_EXTRA_CA_CERTS for a process that must trust it). */
  readonly caPem: string;
  readonly caFile: string;
  /** egressEnv is the orchestrator environment that lets the egress client reach the stand-in on loopback (tests only). */
  readonly egressEnv: Record<string, string>;
  readonly requests: RecordedRequest[];
  /** mode applies to later requests; failFirst makes that many next requests answer 503 first. */
  setMode(mode: OpenAiStandinMode): void;
  failNext(count: number): void;
  /** reply sets the text streamed (default: "Stand-in reply. You said: <last user message>"). */
  setReply(reply: ((lastUser: string) => string) | undefined): void;
  stop(): Promise<void>;
}

function words(text: string): string[] {
  return text.match(/\S+\s*/gu) ?? [];
}

/** startOpenAiStandin starts the stand-in on a free loopback port; it accepts only `Bearer <apiKey>`. */
export async function startOpenAiStandin(options: { apiKey: string; chunkDelayMs?: number }): Promise<OpenAiStandin> {
  let mode: OpenAiStandinMode = 'up';
  let failures = 0;
  let replyOf: ((lastUser: string) => string) | undefined;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const delay = options.chunkDelayMs ?? 10;

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions')
      return json(res, 404, { error: { message: 'Not found', type: 'invalid_request_error', param: null, code: null } });
    let body: RecordedRequest['body'];
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RecordedRequest['body'];
    } catch {
      return json(res, 400, {
        error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null },
      });
    }
    requests.push({ authorization: req.headers.authorization ?? '', body });
    if (req.headers.authorization !== `Bearer ${options.apiKey}`)
      return json(res, 401, {
        error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
      });
    if (failures > 0) {
      failures--;
      return json(res, 503, { error: { message: 'The server is overloaded.', type: 'server_error', param: null, code: null } });
    }
    if (mode === 'unavailable')
      return json(res, 503, { error: { message: 'The server is overloaded.', type: 'server_error', param: null, code: null } });
    if (mode === 'hang') return;
    if (body.stream !== true)
      return json(res, 400, {
        error: { message: 'the stand-in only streams', type: 'invalid_request_error', param: 'stream', code: null },
      });
    const lastUser = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user')?.content ?? '';
    const text = replyOf?.(lastUser) ?? `Stand-in reply. You said: ${lastUser}`;
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model ?? 'stand-in', system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(chunk({ role: 'assistant', content: '' }, null));
    let sent = 0;
    for (const w of words(text)) {
      if (res.destroyed) return;
      res.write(chunk({ content: w }, null));
      sent++;
      if (mode === 'drop' && sent === 2) {
        await new Promise((r) => setTimeout(r, delay));
        res.socket?.destroy();
        return;
      }
      await new Promise((r) => setTimeout(r, delay));
    }
    res.write(chunk({}, 'stop'));
    res.end('data: [DONE]\n\n');
  };
  const ca = await createCertificateAuthority({ name: 'OpenAI stand-in test CA' });
  const leaf = await issueCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const caFile = join(mkdtempSync(join(tmpdir(), 'parley-openai-standin-')), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `https://127.0.0.1:${port}/v1`,
    port,
    caPem: ca.certPem,
    caFile,
    egressEnv: { PARLEY_EGRESS_ALLOWED_PORTS: String(port), PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32', NODE_EXTRA_CA_CERTS: caFile },
    requests,
    setMode(m) {
      mode = m;
    },
    failNext(count) {
      failures = count;
    },
    setReply(fn) {
      replyOf = fn;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
