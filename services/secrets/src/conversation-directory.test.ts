// The tenant-data directory during a rolling upgrade: against a tenant-data of the previous release
// (a Connect router serving only GetConversation and GetAgent, so GetConversationSecretRefs is
// UNIMPLEMENTED, as an old pod answers), a resolve's facts come from the older RPCs.
import { Code, createClient, createRouterTransport } from '@connectrpc/connect';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { describe, expect, it } from 'vitest';
import { tenantDataDirectory } from './conversation-directory.js';

const tenantId = '00000000-0000-7000-8000-00000000000a';
const live = '00000000-0000-7000-8000-0000000000c1';
const ended = '00000000-0000-7000-8000-0000000000c2';
const agentId = '00000000-0000-7000-8000-0000000000a1';

/** server is a tenant-data with or without GetConversationSecretRefs (an older release); calls lists what it was asked. */
function server(withNewRpc: boolean) {
  const calls: string[] = [];
  const transport = createRouterTransport(({ service }) =>
    service(TenantDataService, {
      getConversation(req) {
        calls.push('getConversation');
        return { conversation: { id: req.conversationId, agentId, state: req.conversationId === live ? 'live' : 'ended' } };
      },
      getAgent(req) {
        calls.push('getAgent');
        return { agent: { id: req.agentId, secretRefs: { llm: 'secret-1' } } };
      },
      ...(withNewRpc
        ? {
            getConversationSecretRefs() {
              calls.push('getConversationSecretRefs');
              return { agentId, state: 'live', secretRefs: { llm: 'secret-1' } };
            },
          }
        : {}),
    }),
  );
  return { client: createClient(TenantDataService, transport), calls };
}

describe('tenantDataDirectory', () => {
  it('asks GetConversationSecretRefs alone when tenant-data serves it', async () => {
    const { client, calls } = server(true);
    expect(await tenantDataDirectory(client).getConversationSecretRefs(tenantId, live)).toEqual({
      agentId,
      state: 'live',
      secretRefs: { llm: 'secret-1' },
    });
    expect(calls).toEqual(['getConversationSecretRefs']);
  });

  it('falls back to GetConversation and GetAgent on an older tenant-data, and keeps asking those for a minute', async () => {
    const { client, calls } = server(false);
    let clock = 1_000_000;
    const directory = tenantDataDirectory(client, () => clock);
    expect(await directory.getConversationSecretRefs(tenantId, live)).toEqual({ agentId, state: 'live', secretRefs: { llm: 'secret-1' } });
    // An ended conversation's refs are not asked for (none are answered unless live).
    expect(await directory.getConversationSecretRefs(tenantId, ended)).toEqual({ agentId, state: 'ended', secretRefs: {} });
    expect(calls).toEqual(['getConversation', 'getAgent', 'getConversation']);
    // After a minute the new RPC is tried again (the upgrade may be over).
    clock += 61_000;
    calls.length = 0;
    await directory.getConversationSecretRefs(tenantId, live);
    expect(calls).toEqual(['getConversation', 'getAgent']);
  });

  it("cuts its question to tenant-data when the caller's signal aborts", async () => {
    const transport = createRouterTransport(({ service }) =>
      service(TenantDataService, {
        // Answers only when the caller has gone: the answer must not be waited for.
        getConversationSecretRefs: (_req, ctx) =>
          new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve({ agentId, state: 'live', secretRefs: {} }))),
      }),
    );
    const caller = new AbortController();
    const asked = tenantDataDirectory(createClient(TenantDataService, transport)).getConversationSecretRefs(tenantId, live, caller.signal);
    caller.abort();
    // Cut by the caller (CANCELED), not by the call's own 5 s deadline.
    const err = await asked.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.cause).toMatchObject({ code: Code.Canceled });
  });
});
