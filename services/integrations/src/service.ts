import type { JsonObject } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { requireUuid, withTenant } from '@parley/db';
import { checkEgressTarget, type EgressLookup, type EgressPolicy } from '@parley/egress';
import { FailedPreconditionError, InvalidArgumentError, principalOf } from '@parley/platform';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import type { Kysely } from 'kysely';
import type { IntegrationsDb } from './db/tables.js';
import { createConnectionAdminHandlers, type ConnectionAdminDeps } from './connection-admin.service.js';
import { describeConnectionTools } from './connection.store.js';
import { emitEvent } from './events.js';
import { callTool, recordToolRefusal, type ToolCallDeps } from './tool-call.js';
import { retentionHandlers } from './retention.service.js';
import { createWebhookAdminHandlers, type WebhookAdminDeps } from './webhook-admin.service.js';

// A guardrail policy grants at most 64 tools.
const MAX_DESCRIBED_TOOLS = 64;

/** IntegrationsServiceDeps are what the handlers need; they do no I/O of their own. */
export interface IntegrationsServiceDeps {
  readonly db: Kysely<IntegrationsDb>;
  readonly egressPolicy: EgressPolicy;
  /** webhookMaxAgeMs is how long a delivery is retried before it is dead. */
  readonly webhookMaxAgeMs: number;
  /** onEnqueued is told when deliveries were queued (wakes the delivery worker). */
  readonly onEnqueued?: () => void;
  /** lookup replaces the system resolver (tests). */
  readonly lookup?: EgressLookup;
  /** issueSecret has the secrets service make a signing secret (endpoint administration). */
  readonly issueSecret: WebhookAdminDeps['issueSecret'];
  /** onAudit is told when a change recorded an audit event (wakes the outbox relay). */
  readonly onAudit?: () => void;
  /** credentialSecrets checks a connection's credential reference when it is saved (needs the secrets service). */
  readonly credentialSecrets?: ConnectionAdminDeps['credentialSecrets'];
  /** toolCalls makes CallTool work (needs tenant-data and secrets); without it CallTool is FAILED_PRECONDITION. */
  readonly toolCalls?: Omit<ToolCallDeps, 'db' | 'onAudit'>;
}

/** createIntegrationsService builds the handlers of parley.integrations.v1.IntegrationsService. */
export function createIntegrationsService(deps: IntegrationsServiceDeps): ServiceImpl<typeof IntegrationsService> {
  return {
    async checkEgressTarget(req) {
      if (req.url === '') throw new InvalidArgumentError('url: must be an absolute https:// URL', { field: 'url' });
      const decision = await checkEgressTarget(req.url, {
        policy: deps.egressPolicy,
        ...(deps.lookup !== undefined ? { lookup: deps.lookup } : {}),
      });
      return { allowed: decision.allowed, reason: decision.reason ?? '' };
    },

    async emitEvent(req, ctx) {
      // A forwarded principal fixes the tenant; tenant_id in the body is for service-to-service calls.
      const principal = principalOf(ctx);
      const tenantId = requireUuid(principal?.tenantId ?? req.tenantId, 'tenant_id');
      if (principal !== undefined && req.tenantId !== '' && req.tenantId.toLowerCase() !== tenantId) {
        throw new InvalidArgumentError("tenant_id: differs from the caller's workspace; leave it empty", { field: 'tenant_id' });
      }
      const event = {
        eventId: req.eventId,
        type: req.type,
        occurredAt: req.occurredAt === undefined ? new Date() : timestampDate(req.occurredAt),
        data: req.data,
      };
      const deliveries = await withTenant(deps.db, tenantId, (trx) => emitEvent(trx, event, deps.webhookMaxAgeMs));
      if (deliveries.length > 0) deps.onEnqueued?.();
      return { deliveries: deliveries.length };
    },

    async callTool(req) {
      const toolCalls = deps.toolCalls;
      if (toolCalls === undefined) {
        throw new FailedPreconditionError(
          'tool calls need the tenant-data and secrets services; set PARLEY_TENANT_DATA_URL and PARLEY_SECRETS_URL',
        );
      }
      const result = await callTool(
        { ...toolCalls, db: deps.db, ...(deps.onAudit !== undefined ? { onAudit: deps.onAudit } : {}) },
        {
          tenantId: req.tenantId,
          conversationId: req.conversationId,
          agentId: req.agentId,
          tool: req.tool,
          arguments: req.arguments ?? {},
        },
      );
      return result;
    },

    async recordToolRefusal(req) {
      const recorded = await recordToolRefusal(
        { db: deps.db, ...(deps.onAudit !== undefined ? { onAudit: deps.onAudit } : {}) },
        { tenantId: req.tenantId, conversationId: req.conversationId, agentId: req.agentId, tool: req.tool, rule: req.rule },
      );
      return { recorded };
    },

    async describeTools(req) {
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      if (req.names.length < 1 || req.names.length > MAX_DESCRIBED_TOOLS)
        throw new InvalidArgumentError(`names must list 1-${MAX_DESCRIBED_TOOLS} tool names`, { field: 'names' });
      const rows = await withTenant(deps.db, tenantId, (trx) => describeConnectionTools(trx, req.names));
      return {
        tools: rows.map((r) => ({ name: r.name, description: r.description, argumentsSchema: r.input_schema as JsonObject })),
      };
    },

    ...createWebhookAdminHandlers(deps),
    ...createConnectionAdminHandlers(deps),
    ...retentionHandlers(deps.db),
  };
}
