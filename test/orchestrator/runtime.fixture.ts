// What the tests that run the conversation runtime in the test process (as the voice-orchestrator,
// with its certificate) share: a public stack and the OpenAI-compatible stand-in, a session minted
// for an agent that uses the stand-in's key, and the runtime's dependencies on that stack.
import { createLogger } from '@parley/platform';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { createPeers, createProviderFetch, loadOrchestratorConfig, type ConversationDeps } from '@parley/voice-orchestrator';
import type { PublicStack } from '../edge/fixture.js';
import type { OpenAiStandin } from '../src/openai-standin.js';

/** RuntimeStack is a public stack and an OpenAI-compatible stand-in for tests that run the conversation runtime in the test process. */
export interface RuntimeStack {
  readonly stack: PublicStack;
  readonly standin: OpenAiStandin;
  /** providerKey is the API key the stand-in accepts. */
  readonly providerKey: string;
}

/** runtimeSession stores the stand-in's key as a secret, creates the agent `agent(secretId)` describes, and mints a session token for it (origin https://app.example.com). */
export async function runtimeSession(
  runtime: RuntimeStack,
  secret: { name: string; providerKind: string },
  agent: (secretId: string) => Record<string, unknown>,
): Promise<string> {
  const { stack } = runtime;
  const owner = stack.bootstrap.apiKey;
  const put = await stack.call('/parley.api.v1.SecretService/PutSecret', { ...secret, value: runtime.providerKey }, owner);
  const secretId = (put.body.secret as { id: string }).id;
  const created = await stack.call('/parley.api.v1.AgentService/CreateAgent', agent(secretId), owner);
  const agentId = (created.body.agent as { id: string }).id;
  const session = await stack.call('/parley.api.v1.SessionService/CreateSession', { agentId, origin: 'https://app.example.com' }, owner);
  return session.body.token as string;
}

/** runtimeDeps are a conversation runtime's dependencies as the voice-orchestrator has them: its peer clients, a silent logger, no events, and provider calls that reach the stand-in. */
export async function runtimeDeps(runtime: RuntimeStack): Promise<ConversationDeps> {
  const { stack, standin } = runtime;
  return {
    peers: createPeers({
      identity: await stack.clientAs('voice-orchestrator', 'identity', IdentityService),
      tenantData: await stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService),
      secrets: await stack.clientAs('voice-orchestrator', 'secrets', SecretsService),
    }),
    logger: createLogger({ service: 'voice-orchestrator', version: 'test', level: 'silent' }),
    events: { emit: () => undefined },
    // The stand-in is on loopback: these tests alone allow it (and trust its CA).
    providerFetch: createProviderFetch(loadOrchestratorConfig(standin.egressEnv).egressPolicy, { ca: standin.caPem }),
    config: loadOrchestratorConfig({}),
  };
}
