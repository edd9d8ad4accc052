import { CanceledError } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { cachedConversationDirectory } from './conversation-cache.js';
import type { ConversationDirectory, ConversationSecretRefs } from './conversation-directory.js';

const T = '00000000-0000-4000-8000-00000000000a';
const C = '00000000-0000-4000-8000-00000000000c';
const A = '00000000-0000-4000-8000-0000000000a1';

/** counting is a directory answering from `state` and counting the questions it was asked. */
function counting(state: { facts: ConversationSecretRefs; asked: number; during?: () => void }): ConversationDirectory {
  return {
    getConversation: () => Promise.reject(new Error('not used')),
    getAgentSecretRefs: () => Promise.resolve({}),
    async getConversationSecretRefs() {
      state.asked += 1;
      const answer = state.facts;
      state.during?.();
      return answer;
    },
  };
}

function world(options: { listening?: () => boolean } = {}) {
  let now = 1_000;
  const state = { facts: { agentId: A, state: 'live', secretRefs: { llm: 's1' } } as ConversationSecretRefs, asked: 0 } as {
    facts: ConversationSecretRefs;
    asked: number;
    during?: () => void;
  };
  const cache = cachedConversationDirectory(counting(state), { ttlMs: 500, listening: options.listening ?? (() => true), now: () => now });
  return { state, cache, advance: (ms: number) => (now += ms) };
}

describe('cachedConversationDirectory', () => {
  it("reuses a live conversation's answer for ttlMs, then asks again", async () => {
    const { state, cache, advance } = world();
    expect(await cache.getConversationSecretRefs(T, C)).toMatchObject({ state: 'live', secretRefs: { llm: 's1' } });
    expect(await cache.getConversation(T, C)).toEqual({ agentId: A, state: 'live' });
    expect(state.asked).toBe(1);
    advance(501);
    await cache.getConversationSecretRefs(T, C);
    expect(state.asked).toBe(2);
  });

  it("keeps answers per tenant: another tenant's question is asked, not served", async () => {
    const { state, cache } = world();
    await cache.getConversationSecretRefs(T, C);
    await cache.getConversationSecretRefs('00000000-0000-4000-8000-00000000000b', C);
    expect(state.asked).toBe(2);
  });

  it('never keeps an ended conversation', async () => {
    const { state, cache } = world();
    state.facts = { agentId: A, state: 'ended', secretRefs: {} };
    await cache.getConversationSecretRefs(T, C);
    await cache.getConversationSecretRefs(T, C);
    expect(state.asked).toBe(2);
    expect(cache.size).toBe(0);
  });

  it("drops a conversation at its end notification, and an agent's conversations when its secret_refs change", async () => {
    const { state, cache } = world();
    await cache.getConversationSecretRefs(T, C);
    cache.invalidate(`c/${T}/${C}`);
    state.facts = { agentId: A, state: 'ended', secretRefs: {} };
    expect((await cache.getConversationSecretRefs(T, C)).state).toBe('ended');
    state.facts = { agentId: A, state: 'live', secretRefs: { llm: 's1' } };
    cache.invalidate(`c/${T}/${C}`);
    await cache.getConversationSecretRefs(T, C);
    state.facts = { agentId: A, state: 'live', secretRefs: { llm: 's2' } };
    // Another agent's change leaves it; its own agent's change drops it.
    cache.invalidate(`a/${T}/00000000-0000-4000-8000-0000000000a2`);
    expect((await cache.getConversationSecretRefs(T, C)).secretRefs).toEqual({ llm: 's1' });
    cache.invalidate(`a/${T}/${A}`);
    expect((await cache.getConversationSecretRefs(T, C)).secretRefs).toEqual({ llm: 's2' });
  });

  it('does not keep an answer fetched while an end was announced (it may predate the end)', async () => {
    const { state, cache } = world();
    state.during = () => cache.invalidate(`c/${T}/${C}`);
    await cache.getConversationSecretRefs(T, C);
    state.during = undefined;
    await cache.getConversationSecretRefs(T, C);
    expect(state.asked).toBe(2);
  });

  it('neither serves nor keeps answers while the LISTEN connection is down', async () => {
    let listening = true;
    const { state, cache } = world({ listening: () => listening });
    await cache.getConversationSecretRefs(T, C);
    listening = false;
    await cache.getConversationSecretRefs(T, C);
    await cache.getConversationSecretRefs(T, C);
    expect(state.asked).toBe(3);
    expect(cache.size).toBe(0);
  });

  it("lets a caller waiting on another's fetch of the same conversation give up (CANCELED), while that fetch goes on for its caller", async () => {
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const fetchedWith: (AbortSignal | undefined)[] = [];
    const facts: ConversationSecretRefs = { agentId: A, state: 'live', secretRefs: { llm: 's1' } };
    const slow: ConversationDirectory = {
      getConversation: () => Promise.reject(new Error('not used')),
      getAgentSecretRefs: () => Promise.resolve({}),
      async getConversationSecretRefs(_tenantId, _conversationId, signal) {
        fetchedWith.push(signal);
        await answered;
        return facts;
      },
    };
    const cache = cachedConversationDirectory(slow, { ttlMs: 500, listening: () => true });
    const first = new AbortController();
    const firstCall = cache.getConversationSecretRefs(T, C, first.signal);
    // Two waiters join that fetch (one through getConversation); one of them gives up.
    const gone = new AbortController();
    let outcome: unknown;
    void cache.getConversation(T, C, gone.signal).then(
      (v) => (outcome = v),
      (err: unknown) => (outcome = err),
    );
    const staying = cache.getConversationSecretRefs(T, C, new AbortController().signal);
    gone.abort();
    await expect.poll(() => outcome).toBeInstanceOf(CanceledError);
    answer();
    expect(await firstCall).toEqual(facts);
    expect(await staying).toEqual(facts);
    // One question to tenant-data, cut by its own caller's signal only.
    expect(fetchedWith).toEqual([first.signal]);
  });
});
