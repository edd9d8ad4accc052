// Shared by the live-conversation tests (conversation.test.ts, conversation-faults.test.ts): each
// file starts its own stack (the voice-orchestrator process with identity, tenant-data, secrets and audit on the run's
// Postgres, and the OpenAI-compatible stand-in of test/openai-standin) with a scripted agent.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { adminPool } from '../src/pg.js';
import { scripted, startConversationStack, type ConversationStack } from './fixture.js';

/** providerKey is the API key the stand-in accepts. */
export const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;

/** rules are the scripted agent's replies. */
export const rules = [
  { match: '^hello', reply: 'Hello there. How can I help you today?' },
  { match: 'hours', reply: 'We are open from nine to five. On weekends we are closed.' },
  { match: 'long', reply: `${'This is a long answer that goes on. '.repeat(30)}The end.` },
];

/** LiveConversations are a file's stack, its stand-in and scripted agent, and a way to start a conversation. */
export interface LiveConversations {
  readonly s: ConversationStack;
  readonly standin: OpenAiStandin;
  readonly scriptedAgent: string;
  /** start starts a conversation with the agent (default: the scripted agent) and waits for ready. */
  start(agentId?: string, options?: { subjectRef?: string }): ReturnType<typeof startSession>;
}

/**
 * useLiveConversations starts the stand-in, the stack (short start timeout and live-check
 * interval) and the scripted agent before the file's tests, and stops them after; read them
 * through the returned object once the tests run.
 */
export function useLiveConversations(): LiveConversations {
  let s: ConversationStack | undefined;
  let standin: OpenAiStandin | undefined;
  let scriptedAgent: string | undefined;
  beforeAll(async () => {
    standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 5 });
    // standin.egressEnv: the stand-in is on loopback, so these tests alone allow it through the egress rules.
    s = await startConversationStack({
      // Short enough for the 4408 test to wait out, long enough that a loaded machine's client
      // always gets its start frame in first.
      PARLEY_SESSION_START_TIMEOUT_MS: '5000',
      PARLEY_SESSION_LIVE_CHECK_INTERVAL_MS: '300',
      ...standin.egressEnv,
    });
    scriptedAgent = await s.createAgent({ prompt: 'You are a shop assistant.', providerSettings: scripted(rules) });
  }, 180_000);
  afterAll(async () => {
    if (process.env.DUMP_LOGS === '1') console.log(s?.logs.filter((l) => l.startsWith('[voice-orchestrator]')).join('\n'));
    await s?.stop();
    await standin?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the live-conversation stack is not started (use it inside a test)');
    return value;
  };
  return {
    get s() {
      return started(s);
    },
    get standin() {
      return started(standin);
    },
    get scriptedAgent() {
      return started(scriptedAgent);
    },
    start: (agentId, options = {}) => startSession(started(s), agentId ?? started(scriptedAgent), options),
  };
}

/** startSession mints a session token for the agent, connects, sends the start frame and waits for ready. */
export async function startSession(s: ConversationStack, agentId: string, options: { subjectRef?: string } = {}) {
  const { token } = await s.createSession(agentId, options);
  const client = await s.connect();
  client.send({ type: 'start', token });
  const ready = await client.next((f) => f.type === 'ready');
  return { client, conversationId: ready.conversationId as string, ready };
}

/** conversationRow reads a conversation's row as stored in tenant-data. */
export async function conversationRow(id: string) {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<{ state: string; end_reason: string | null; subject_id: string | null }>(
      'select state, end_reason, subject_id from parley_tenant_data.conversations where id = $1',
      [id],
    );
    return rows[0];
  } finally {
    await pool.end();
  }
}

/** turns reads a conversation's stored transcript turns in order. */
export async function turns(conversationId: string) {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<{ seq: number; role: string; text_redacted: string; retention_class: string }>(
      'select seq, role, text_redacted, retention_class from parley_tenant_data.transcript_turns where conversation_id = $1 order by seq',
      [conversationId],
    );
    return rows;
  } finally {
    await pool.end();
  }
}
