// The conversation benchmark's baseline: one process that serves the same WebSocket session
// protocol with direct Postgres queries and no hops between services (token verified in-process,
// jti spent, agent read, conversation written, provider key read and decrypted, in one
// transaction; turns answered by the same scripted provider and sentence cut).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { JwksCache, SessionTokenVerifier } from '@parley/session-token';
import { scriptedProvider, SentenceBuffer, scriptedLlmSettings } from '@parley/voice-orchestrator';
import pg from 'pg';
import { WebSocketServer } from 'ws';

/** RULES are the scripted replies both Parley's agent and the baseline's use. */
export const RULES = [{ match: '^hello', reply: 'Hello there. I am fine, thank you. How can I help you today?' }];

/**
 * startBaseline serves the session protocol from this process with direct Postgres queries: the
 * same work as a Parley start (verify, spend jti, read agent, write conversation, read and
 * decrypt the provider key) and a Parley turn (scripted reply, sentence cut, frames, transcript
 * rows written off the reply path), without any hop between services.
 */
export async function startBaseline(adminUrl: string, cert: Buffer, key: Buffer, jwksJson: string, tenantId: string) {
  const pool = new pg.Pool({ connectionString: adminUrl, max: 10 });
  await pool.query(`drop schema if exists bench_baseline cascade; create schema bench_baseline;
    create table bench_baseline.used_jti (jti text primary key, used_at timestamptz not null default now());
    create table bench_baseline.agents (tenant_id uuid not null, id uuid primary key, prompt text not null, provider_settings jsonb not null, secret_id uuid not null);
    create table bench_baseline.secrets (tenant_id uuid not null, id uuid primary key, nonce bytea not null, ciphertext bytea not null);
    create table bench_baseline.conversations (tenant_id uuid not null, id uuid primary key, agent_id uuid not null, state text not null, started_at timestamptz not null default now());
    create table bench_baseline.transcript_turns (tenant_id uuid not null, conversation_id uuid not null, seq int not null, role text not null, text text not null, primary key (conversation_id, seq));`);
  const dek = randomBytes(32);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', dek, nonce);
  const sealed = Buffer.concat([cipher.update('sk-baseline-provider-key', 'utf8'), cipher.final(), cipher.getAuthTag()]);
  const agentId = '00000000-0000-7000-8000-00000000a9e7';
  const secretId = '00000000-0000-7000-8000-00000000c0de';
  await pool.query('insert into bench_baseline.secrets values ($1, $2, $3, $4)', [tenantId, secretId, nonce, sealed]);
  await pool.query('insert into bench_baseline.agents values ($1, $2, $3, $4, $5)', [
    tenantId,
    agentId,
    'Be brief.',
    JSON.stringify({ llm: { provider: 'scripted', rules: RULES, delayMs: 0 } }),
    secretId,
  ]);
  const verifier = new SessionTokenVerifier({
    issuer: 'parley:identity',
    audience: 'parley:voice-orchestrator',
    claimCacheSize: 0,
    jwks: new JwksCache({ source: async () => jwksJson }),
  });
  const https = createServer({ cert, key });
  const wss = new WebSocketServer({ server: https, maxPayload: 16_384 });
  wss.on('connection', (ws, req) => {
    const origin = req.headers.origin ?? '';
    let conversation: { id: string; tenant: string; seq: number; transcript: Promise<unknown> } | undefined;
    let provider: ReturnType<typeof scriptedProvider> | undefined;
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as { type: string; token?: string; text?: string };
      if (f.type === 'start') {
        void (async () => {
          const claims = await verifier.verify(f.token ?? '', { origin });
          const client = await pool.connect();
          try {
            await client.query('begin');
            await client.query("select set_config('app.tenant_id', $1, true)", [claims.tenant]);
            await client.query('insert into bench_baseline.used_jti (jti) values ($1)', [claims.jti]);
            const agent = (
              await client.query('select * from bench_baseline.agents where tenant_id = $1 and id = $2', [claims.tenant, agentId])
            ).rows[0] as {
              provider_settings: { llm: unknown };
              secret_id: string;
            };
            await client.query("insert into bench_baseline.conversations values ($1, $2, $3, 'live')", [
              claims.tenant,
              claims.sid,
              agentId,
            ]);
            const secret = (await client.query('select nonce, ciphertext from bench_baseline.secrets where id = $1', [agent.secret_id]))
              .rows[0] as {
              nonce: Buffer;
              ciphertext: Buffer;
            };
            await client.query('commit');
            const d = createDecipheriv('aes-256-gcm', dek, secret.nonce);
            d.setAuthTag(secret.ciphertext.subarray(-16));
            const plain = Buffer.concat([d.update(secret.ciphertext.subarray(0, -16)), d.final()]);
            plain.fill(0);
            provider = scriptedProvider(scriptedLlmSettings.parse(agent.provider_settings.llm));
            conversation = { id: claims.sid, tenant: claims.tenant, seq: 0, transcript: Promise.resolve() };
            ws.send(JSON.stringify({ type: 'ready', conversationId: claims.sid, agentId }));
          } finally {
            client.release();
          }
        })().catch(() => ws.close(4401, 'token invalid'));
      } else if (f.type === 'user_text' && conversation !== undefined && provider !== undefined) {
        const c = conversation;
        const record = (role: string, text: string) => {
          const seq = c.seq++;
          c.transcript = c.transcript
            .then(() =>
              pool.query('insert into bench_baseline.transcript_turns values ($1, $2, $3, $4, $5)', [c.tenant, c.id, seq, role, text]),
            )
            .catch((err: unknown) => process.stderr.write(`baseline transcript write failed: ${String(err)}\n`));
        };
        record('user', f.text ?? '');
        void (async () => {
          const buffer = new SentenceBuffer();
          const said: string[] = [];
          for await (const delta of provider.streamReply([{ role: 'user', content: f.text ?? '' }], new AbortController().signal)) {
            if (typeof delta !== 'string') break; // the benchmark's agent has no tools
            for (const s of buffer.push(delta)) {
              said.push(s);
              ws.send(JSON.stringify({ type: 'assistant_text', text: s, final: false }));
            }
          }
          for (const s of buffer.flush()) {
            said.push(s);
            ws.send(JSON.stringify({ type: 'assistant_text', text: s, final: false }));
          }
          ws.send(JSON.stringify({ type: 'assistant_text', text: '', final: true }));
          record('assistant', said.join(' '));
        })();
      } else if (f.type === 'end') {
        const c = conversation;
        void (async () => {
          if (c !== undefined) {
            await c.transcript;
            await pool.query("update bench_baseline.conversations set state = 'ended' where id = $1", [c.id]);
          }
          ws.close(1000, 'ended by the client');
        })();
      }
    });
  });
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  return {
    url: `wss://localhost:${(https.address() as AddressInfo).port}/v1/session`,
    async stop() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((r) => https.close(r));
      await pool.query('drop schema if exists bench_baseline cascade');
      await pool.end();
    },
  };
}
