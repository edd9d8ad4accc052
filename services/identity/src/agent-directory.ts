import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { CONVERSATION_ACCESS_CHANNEL, createNotifiedCache, listenedCache, type ListenConfig } from '@parley/db';
import { peerError, type Logger } from '@parley/platform';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/**
 * AgentDirectory answers, from tenant-data (the owner of agents), the one question identity asks
 * about agents: does this workspace have this agent, so that a session may be made for it.
 */
export interface AgentDirectory {
  /** requireAgent resolves when the tenant has the agent; NotFound when it has not. */
  requireAgent(tenantId: string, agentId: string, signal?: AbortSignal): Promise<void>;
  /** requireSubject resolves when the tenant has the end user (a call session's person); NotFound when it has not. Never cached: a forgotten person is refused at once. */
  requireSubject(tenantId: string, subjectId: string, signal?: AbortSignal): Promise<void>;
}

/** UNCHECKED_SUBJECT_WARN_MS is the least time between two warnings that subjects go unchecked. */
const UNCHECKED_SUBJECT_WARN_MS = 60_000;

/**
 * tenantDataAgentDirectory asks tenant-data over mTLS (GetAgent) on every call (cachedAgentDirectory
 * goes in front of it). `logger` gets a warning (at most one a minute) while subjects go unchecked.
 */
export function tenantDataAgentDirectory(
  client: Pick<Client<typeof TenantDataService>, 'getAgent' | 'getSubject'>,
  options: { logger?: Logger; now?: () => number } = {},
): AgentDirectory {
  const now = options.now ?? Date.now;
  let lastWarned = -Infinity;
  let unwarned = 0;
  return {
    async requireAgent(tenantId, agentId, signal) {
      try {
        await client.getAgent({ tenantId, agentId }, signal === undefined ? {} : { signal });
      } catch (err) {
        throw peerError(err, 'tenant-data', `agent ${agentId}`, `no session can be made for agent ${agentId}`);
      }
    },
    async requireSubject(tenantId, subjectId, signal) {
      try {
        await client.getSubject({ tenantId, subjectId }, signal === undefined ? {} : { signal });
      } catch (err) {
        // A tenant-data of the previous release does not let identity ask (PERMISSION_DENIED):
        // during a rolling upgrade the call is answered unchecked, as it was before, not dropped.
        // A lasting PERMISSION_DENIED after the upgrade is a broken allow-list, not an old pod: warn.
        if (err instanceof ConnectError && err.code === Code.PermissionDenied) {
          unwarned += 1;
          if (now() - lastWarned >= UNCHECKED_SUBJECT_WARN_MS) {
            lastWarned = now();
            options.logger?.warn(
              { unchecked_subjects: unwarned, err: err.rawMessage },
              'tenant-data refused GetSubject (an older tenant-data, or its allow-list): call sessions are made without checking their subject',
            );
            unwarned = 0;
          }
          return;
        }
        throw peerError(err, 'tenant-data', `subject ${subjectId}`, `no call session can be made for subject ${subjectId}`);
      }
    },
  };
}

/** MAX_CACHED_AGENTS bounds the agent cache (the oldest entries go first). */
const MAX_CACHED_AGENTS = 10_000;

/**
 * cachedAgentDirectory remembers, for ttlMs and while `listening()` says notifications arrive,
 * that a tenant has an agent (createNotifiedCache): a workspace's next sessions skip the round trip
 * to tenant-data. Only "it exists" is kept (a new agent is found at once); `invalidate` handles
 * tenant-data's CONVERSATION_ACCESS_CHANNEL notifications, where 'a/<tenant>/<agent>' announces,
 * at the commit, that the agent was deleted (or its secret_refs changed): it is asked again.
 */
export function cachedAgentDirectory(
  inner: AgentDirectory,
  options: { ttlMs: number; listening: () => boolean; now?: () => number },
): AgentDirectory & { invalidate(payload: string): void; clear(): void } {
  const cache = createNotifiedCache<true>({ ...options, maxEntries: MAX_CACHED_AGENTS });
  return {
    async requireAgent(tenantId, agentId, signal) {
      await cache.get(
        `${tenantId}/${agentId}`,
        async () => {
          await inner.requireAgent(tenantId, agentId, signal);
          return true;
        },
        () => true,
        signal,
      );
    },
    requireSubject: (tenantId, subjectId, signal) => inner.requireSubject(tenantId, subjectId, signal),
    invalidate(payload) {
      const [kind, tenantId, id] = payload.split('/');
      if (tenantId === undefined || id === undefined) cache.clear();
      else if (kind === 'a') cache.delete(`${tenantId}/${id}`);
    },
    clear: () => cache.clear(),
  };
}

/**
 * listenedAgentCache puts cachedAgentDirectory in front of `inner` with its own LISTEN connection
 * (application name parley-identity-listen); with ttlMs 0 it returns `inner` and opens no connection.
 */
export function listenedAgentCache(
  inner: AgentDirectory,
  options: { ttlMs: number; listen: ListenConfig; logger?: Logger | undefined },
): { directory: AgentDirectory; close(): Promise<void> } {
  const listened = listenedCache(
    {
      ...options,
      channel: CONVERSATION_ACCESS_CHANNEL,
      applicationName: 'parley-identity-listen',
      lostMessage: 'agent notifications lost; asking tenant-data on every CreateSession until the LISTEN connection is back',
    },
    (listening) => cachedAgentDirectory(inner, { ttlMs: options.ttlMs, listening }),
  );
  return listened === undefined
    ? { directory: inner, close: () => Promise.resolve() }
    : { directory: listened.cache, close: listened.close };
}
