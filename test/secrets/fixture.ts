// The world every secrets test runs in: a throwaway database, the secrets and tenant-data
// processes with the Vault stand-in (harness.ts), clients as the edge and the orchestrator, and
// the helpers the tests share (principals, leak checks, scenes in tenant-data's own schema).
import { randomUUID } from 'node:crypto';
import { ConnectError, type Client, type Code } from '@connectrpc/connect';
import { withTenant } from '@parley/db';
import { principalHeaders, type Principal } from '@parley/platform';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { SecretsDatabase } from '@parley/secrets';
import { createAgent, ensureWorkspace, startConversation, type TenantDataDb } from '@parley/tenant-data';
import { adminPool, createMigratedDatabase, readOutbox, serviceDb, serviceUrl, type OutboxEvent } from '@parley/test/pg';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { startSecretsStack, type SecretsStack } from './harness.js';

/** MAX_USES is the data-key cache's use limit in these tests. */
export const MAX_USES = 4;

/** principal is an operator of a tenant as the edge forwards it. */
export function principal(tenantId: string, scopes: readonly string[] = ['secrets:write', 'agents:read']): Principal {
  return { tenantId, kind: 'member', id: `operator-${tenantId.slice(0, 8)}`, scopes, source: '127.0.0.1', userAgent: 'vitest' };
}

/** as is the call options of a call forwarded by the edge for a tenant's operator. */
export const as = (tenantId: string, scopes?: readonly string[]) => ({ headers: principalHeaders(principal(tenantId, scopes)) });

/** codeOf runs a call and returns its gRPC code and message, or 'ok'. */
export async function codeOf(p: Promise<unknown>): Promise<{ code: Code | 'ok'; message: string }> {
  try {
    await p;
    return { code: 'ok', message: '' };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
}

/** forms lists the marker and the encodings a leak could take: base64 at every alignment, base64url, hex. */
function forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const out = [value, bytes.toString('hex')];
  for (let offset = 0; offset < 3; offset++) {
    const b64 = bytes.subarray(offset).toString('base64').replace(/=+$/, '');
    out.push(b64.slice(0, -4), Buffer.from(b64, 'base64').toString('base64url').slice(0, -4));
  }
  return out;
}

/** leaks lists the forms of value found in haystack. */
export function leaks(haystack: string, value: string): string[] {
  const lower = haystack.toLowerCase();
  return forms(value).filter((f) => (/^[0-9a-f]+$/.test(f) ? lower.includes(f) : haystack.includes(f)));
}

/** Scene is a live conversation of an agent that references secrets. */
export interface Scene {
  readonly tenantId: string;
  readonly agentId: string;
  readonly conversationId: string;
}

/** SecretsWorld is the running stack and what the tests do with it. */
export interface SecretsWorld {
  readonly stack: SecretsStack;
  readonly admin: pg.Pool;
  readonly tenantDb: Kysely<TenantDataDb>;
  readonly secretsDb: Kysely<SecretsDatabase>;
  readonly edge: Client<typeof SecretsService>;
  readonly orchestrator: Client<typeof SecretsService>;
  /** scene creates a workspace, an agent referencing secretRefs and a live conversation, in tenant-data's own schema. */
  scene(tenantId: string, secretRefs: Record<string, string>): Promise<Scene>;
  /** put stores a secret as the tenant's operator and returns its id. */
  put(tenantId: string, name: string, value: string, providerKind?: string): Promise<string>;
  /** resolve asks for a scene's secrets, by default as the orchestrator. */
  resolve(
    s: Scene,
    secretIds?: string[],
    client?: Client<typeof SecretsService>,
  ): ReturnType<Client<typeof SecretsService>['resolveForConversation']>;
  /** outbox reads a tenant's audit outbox rows of one action, oldest first (no audit service runs here, so they stay). */
  outbox(tenantId: string, action: string): Promise<OutboxEvent[]>;
  stop(): Promise<void>;
}

/**
 * startSecretsWorld starts the stack on a database of its own: the KEK test rewraps every stored
 * key and the dump test reads every table, so rows left by other test files (sealed under another
 * KEK) must not be in view.
 */
export async function startSecretsWorld(): Promise<SecretsWorld> {
  const database = await createMigratedDatabase();
  const baseUrl = database.url;
  const stack = await startSecretsStack({
    databaseUrls: { secrets: serviceUrl('secrets', baseUrl), tenantData: serviceUrl('tenant-data', baseUrl) },
    env: {
      PARLEY_DEK_CACHE_MAX_USES: String(MAX_USES),
      // Long enough that a loaded machine's next call after a rotation still meets the retired
      // version (the sweep runs every 300 ms); short enough for the sweep test to wait out.
      PARLEY_SECRET_VERSION_GRACE_MS: '5000',
      PARLEY_SECRETS_MAINTENANCE_INTERVAL_MS: '300',
      // A conversation's cached answer outlives any notification delay of a loaded machine, so a
      // change seen in time can only have come through tenant-data's notification.
      PARLEY_SECRETS_CONVERSATION_CACHE_MS: '30000',
    },
  });
  const admin = adminPool(2, baseUrl);
  const tenantDb = serviceDb<TenantDataDb>('tenant-data', { baseUrl });
  const secretsDb = serviceDb<SecretsDatabase>('secrets', { baseUrl });
  const edge = await stack.clientAs('edge', SecretsService);
  const orchestrator = await stack.clientAs('voice-orchestrator', SecretsService);
  return {
    stack,
    admin,
    tenantDb,
    secretsDb,
    edge,
    orchestrator,
    scene: (tenantId, secretRefs) =>
      withTenant(tenantDb, tenantId, async (trx) => {
        await ensureWorkspace(trx, { name: `workspace ${tenantId.slice(0, 8)}` });
        const agent = await createAgent(trx, { name: `agent-${randomUUID().slice(0, 8)}`, secretRefs });
        const conversation = await startConversation(trx, { agentId: agent.id });
        return { tenantId, agentId: agent.id, conversationId: conversation.id };
      }),
    put: async (tenantId, name, value, providerKind = 'llm') =>
      (await edge.putSecret({ name, providerKind, value }, as(tenantId))).secret?.id ?? '',
    resolve: (s, secretIds = [], client = orchestrator) =>
      client.resolveForConversation({ tenantId: s.tenantId, conversationId: s.conversationId, agentId: s.agentId, secretIds }),
    outbox: (tenantId, action) => readOutbox(admin, 'secrets', tenantId, action),
    async stop() {
      await stack.stop();
      await admin.end();
      await tenantDb.destroy();
      await secretsDb.destroy();
      await database.drop();
    },
  };
}
