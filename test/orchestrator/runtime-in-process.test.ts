// The conversation runtime run in this test process (as the voice-orchestrator, with its
// certificate) against real identity, tenant-data and secrets processes and the OpenAI-compatible
// stand-in: one stack for its concerns, each in a file of its own (keys.cases.ts,
// reply-windows.cases.ts).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { startPublicStack, type PublicStack } from '../edge/fixture.js';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { keysCases } from './keys.cases.js';
import { replyWindowsCases } from './reply-windows.cases.js';

let stack: PublicStack | undefined;
let standin: OpenAiStandin | undefined;
const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;

beforeAll(async () => {
  standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 1 });
  stack = await startPublicStack();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await standin?.stop();
});

const started = <T>(value: T | undefined): T => {
  if (value === undefined) throw new Error('the stack is not started (use it inside a test)');
  return value;
};

const runtime = {
  get stack() {
    return started(stack);
  },
  get standin() {
    return started(standin);
  },
  providerKey,
};

keysCases(runtime);
replyWindowsCases(runtime);
