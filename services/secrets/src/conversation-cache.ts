// A short-lived, replica-local cache of "this conversation is live, it is agent A's, and A
// references these secrets" (issue 15): a conversation's repeated resolves (provider keys, each
// tool call's connection credential) skip the round trip to tenant-data. Whether a conversation
// is live is still decided in Postgres: tenant-data's triggers NOTIFY every replica at commit when
// a live conversation ends (or is deleted) or an agent's secret_refs change, and the entry goes.
// What bounds a stale answer when a notification is missed is the entry's lifetime: entries live
// at most ttlMs, none is served or stored while the LISTEN connection is down, and losing it drops
// them all.
import { CONVERSATION_ACCESS_CHANNEL, createNotifiedCache, listenedCache, type ListenConfig } from '@parley/db';
import type { Logger } from '@parley/platform';
import type { ConversationDirectory, ConversationSecretRefs } from './conversation-directory.js';

/** MAX_ENTRIES bounds the cache (the oldest entries go first). */
const MAX_ENTRIES = 10_000;

/** CachedConversationDirectory is a ConversationDirectory that remembers live conversations for a short while. */
export interface CachedConversationDirectory extends ConversationDirectory {
  /** invalidate handles one notification payload of CONVERSATION_ACCESS_CHANNEL ('c/<tenant>/<conversation>' or 'a/<tenant>/<agent>'). */
  invalidate(payload: string): void;
  /** clear drops every entry (the LISTEN connection was lost or is back: notifications may have been missed). */
  clear(): void;
  /** size is how many entries are held (for tests). */
  readonly size: number;
}

/**
 * cachedConversationDirectory caches `inner`'s answers for live conversations for ttlMs, while
 * `listening()` says notifications arrive (createNotifiedCache). Refusals (ended, unknown,
 * another tenant's) are never cached, nor is an answer fetched while an invalidation arrived (it
 * may predate the end it announced). The telephony path's agent-only question is passed through.
 */
export function cachedConversationDirectory(
  inner: ConversationDirectory,
  options: { ttlMs: number; listening: () => boolean; now?: () => number },
): CachedConversationDirectory {
  const cache = createNotifiedCache<ConversationSecretRefs>({ ...options, maxEntries: MAX_ENTRIES });
  // The caller's signal cuts its own fetch, and ends its wait on another caller's fetch of the same conversation.
  const facts = (tenantId: string, conversationId: string, signal?: AbortSignal) =>
    cache.get(
      `${tenantId}/${conversationId}`,
      () => inner.getConversationSecretRefs(tenantId, conversationId, signal),
      (f) => f.state === 'live',
      signal,
    );
  return {
    async getConversation(tenantId, conversationId, signal) {
      const f = await facts(tenantId, conversationId, signal);
      return { agentId: f.agentId, state: f.state };
    },
    getAgentSecretRefs: (tenantId, agentId, signal) => inner.getAgentSecretRefs(tenantId, agentId, signal),
    getConversationSecretRefs: facts,
    invalidate(payload) {
      const [kind, tenantId, id] = payload.split('/');
      if (tenantId === undefined || id === undefined) cache.clear();
      else if (kind === 'c') cache.delete(`${tenantId}/${id}`);
      // An agent's secret_refs changed (or it was deleted): every cached conversation of it goes.
      else cache.deleteWhere((key, f) => key.startsWith(`${tenantId}/`) && f.agentId === id);
    },
    clear: () => cache.clear(),
    get size() {
      return cache.size;
    },
  };
}

/**
 * listenedConversationCache puts the cache in front of `inner` with its own LISTEN connection on
 * CONVERSATION_ACCESS_CHANNEL (application name parley-secrets-listen); with ttlMs 0 it returns
 * `inner` and opens no connection. Entries are served only while the listener hears its own heartbeat.
 */
export function listenedConversationCache(
  inner: ConversationDirectory,
  options: { ttlMs: number; listen: ListenConfig; logger?: Logger | undefined },
): { directory: ConversationDirectory; close(): Promise<void> } {
  const listened = listenedCache(
    {
      ...options,
      channel: CONVERSATION_ACCESS_CHANNEL,
      applicationName: 'parley-secrets-listen',
      lostMessage: 'conversation-end notifications lost; asking tenant-data on every resolve until the LISTEN connection is back',
    },
    (listening) => cachedConversationDirectory(inner, { ttlMs: options.ttlMs, listening }),
  );
  return listened === undefined
    ? { directory: inner, close: () => Promise.resolve() }
    : { directory: listened.cache, close: listened.close };
}
