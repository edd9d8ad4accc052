import { createClient, type Client, type Interceptor, type Transport } from '@connectrpc/connect';
import { AgentService } from '@parley/proto/parley/api/v1/agents_pb.js';
import { ApiKeyService } from '@parley/proto/parley/api/v1/api_keys_pb.js';
import { AccountService } from '@parley/proto/parley/api/v1/api_pb.js';
import { AuditService } from '@parley/proto/parley/api/v1/audit_pb.js';
import { CallService } from '@parley/proto/parley/api/v1/calls_pb.js';
import { ConnectionService } from '@parley/proto/parley/api/v1/connections_pb.js';
import { ConversationService } from '@parley/proto/parley/api/v1/conversations_pb.js';
import { MemberService } from '@parley/proto/parley/api/v1/members_pb.js';
import { PrivacyService } from '@parley/proto/parley/api/v1/privacy_pb.js';
import { RetentionService } from '@parley/proto/parley/api/v1/retention_pb.js';
import { SecretService } from '@parley/proto/parley/api/v1/secrets_pb.js';
import { SessionService } from '@parley/proto/parley/api/v1/sessions_pb.js';
import { WebhookService } from '@parley/proto/parley/api/v1/webhooks_pb.js';
import { WorkspaceService } from '@parley/proto/parley/api/v1/workspaces_pb.js';
import { authInterceptor, type TokenSource } from './auth.js';
import { toParleyApiError } from './errors.js';
import { retryInterceptor, type RetryOptions } from './retry.js';

/** ParleyClient has one typed Connect client per public service (parley.api.v1). */
export interface ParleyClient {
  readonly account: Client<typeof AccountService>;
  readonly agents: Client<typeof AgentService>;
  readonly apiKeys: Client<typeof ApiKeyService>;
  readonly audit: Client<typeof AuditService>;
  readonly calls: Client<typeof CallService>;
  readonly connections: Client<typeof ConnectionService>;
  readonly conversations: Client<typeof ConversationService>;
  readonly members: Client<typeof MemberService>;
  readonly privacy: Client<typeof PrivacyService>;
  readonly retention: Client<typeof RetentionService>;
  readonly secrets: Client<typeof SecretService>;
  readonly sessions: Client<typeof SessionService>;
  readonly webhooks: Client<typeof WebhookService>;
  /** workspaces is the deployment administrators' service (deployment:admin). */
  readonly workspaces: Client<typeof WorkspaceService>;
  /** transport is the transport every client uses (e.g. for a service this interface does not list yet). */
  readonly transport: Transport;
}

/** ParleyClientOptions build a client over any Connect transport (connect-node, connect-web). */
export interface ParleyClientOptions {
  /** credentials give each call its bearer token; omit for calls that need none. */
  readonly credentials?: TokenSource;
  /** retry tunes the retries on UNAVAILABLE (see retryInterceptor); `{ maxAttempts: 1 }` turns them off. */
  readonly retry?: RetryOptions;
  /** interceptors run inside Parley's (after the error mapping and retries, before auth). */
  readonly interceptors?: readonly Interceptor[];
  /**
   * transport makes the transport from the interceptors the client needs, e.g.
   * `(interceptors) => createConnectTransport({ baseUrl, interceptors })` with connect-web.
   */
  readonly transport: (interceptors: Interceptor[]) => Transport;
}

/** errorInterceptor turns every error of a call (and of a stream's messages) into the typed ParleyApiError of its code. */
export function errorInterceptor(): Interceptor {
  return (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw toParleyApiError(err, req.url);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (err) {
          throw toParleyApiError(err, req.url);
        }
      })(),
    };
  };
}

/** parleyInterceptors are the client's layers, outermost first: typed errors, retries, the caller's own, auth. */
export function parleyInterceptors(options: Omit<ParleyClientOptions, 'transport'>): Interceptor[] {
  return [
    errorInterceptor(),
    retryInterceptor(options.retry),
    ...(options.interceptors ?? []),
    ...(options.credentials === undefined ? [] : [authInterceptor(options.credentials)]),
  ];
}

/** createParleyClient makes the typed clients of the public API over the transport the options make. */
export function createParleyClient(options: ParleyClientOptions): ParleyClient {
  const transport = options.transport(parleyInterceptors(options));
  return {
    account: createClient(AccountService, transport),
    agents: createClient(AgentService, transport),
    apiKeys: createClient(ApiKeyService, transport),
    audit: createClient(AuditService, transport),
    calls: createClient(CallService, transport),
    connections: createClient(ConnectionService, transport),
    conversations: createClient(ConversationService, transport),
    members: createClient(MemberService, transport),
    privacy: createClient(PrivacyService, transport),
    retention: createClient(RetentionService, transport),
    secrets: createClient(SecretService, transport),
    sessions: createClient(SessionService, transport),
    webhooks: createClient(WebhookService, transport),
    workspaces: createClient(WorkspaceService, transport),
    transport,
  };
}
