import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { auditDetails, auditedTransactions, fromPrincipal, noDetails } from '@parley/audit-outbox';
import { pageRequestOf, withTenant } from '@parley/db';
import { checkEgressTarget, type EgressLookup, type EgressPolicy } from '@parley/egress';
import { InvalidArgumentError, type Principal } from '@parley/platform';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { scopedPrincipal, type Scope } from '@parley/scopes';
import type { Kysely } from 'kysely';
import type { IntegrationsDb, WebhookDelivery, WebhookEndpoint } from './db/tables.js';
import { listDeliveries, replayDelivery } from './delivery.store.js';
import { isWebhookEventType, WEBHOOK_EVENT_TYPES } from './events.js';
import type { WebhookSecretIssuer } from './signing-secrets.js';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getWebhookEndpoint,
  listWebhookEndpoints,
  rotateEndpointSecret,
} from './webhook-endpoint.store.js';

/** WEBHOOKS_SCOPE is the scope a principal needs to manage a workspace's webhooks. */
export const WEBHOOKS_SCOPE: Scope = 'webhooks:admin';
const DEFAULT_OVERLAP_SECONDS = 86_400;
const MAX_OVERLAP_SECONDS = 604_800;
const MAX_LIST_PAGE = 200;

/** WebhookAdminDeps are what the endpoint administration handlers need. */
export interface WebhookAdminDeps {
  readonly db: Kysely<IntegrationsDb>;
  readonly egressPolicy: EgressPolicy;
  readonly issueSecret: WebhookSecretIssuer;
  /** webhookMaxAgeMs is the fresh maximum age a replayed delivery gets. */
  readonly webhookMaxAgeMs: number;
  readonly onAudit?: () => void;
  readonly onEnqueued?: () => void;
  readonly lookup?: EgressLookup;
}

/** admin is the forwarded principal, checked for webhooks:admin again here (the edge checked it first). */
const admin = (ctx: HandlerContext): Principal => scopedPrincipal(ctx, WEBHOOKS_SCOPE);

function toEndpoint(row: WebhookEndpoint) {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    eventTypes: row.event_types,
    enabled: row.enabled,
    createdAt: timestampFromDate(row.created_at),
    ...(row.previous_secret_expires_at === null ? {} : { previousSecretExpiresAt: timestampFromDate(row.previous_secret_expires_at) }),
  };
}

// The delivery log as operators see it: state and the last attempt's outcome, never the payload.
function toDelivery(row: WebhookDelivery) {
  return {
    id: row.id,
    endpointId: row.endpoint_id,
    eventId: row.event_id,
    eventType: row.event_type,
    state: row.state,
    attempts: row.attempts,
    lastStatusCode: row.last_status_code ?? 0,
    lastLatencyMs: row.last_latency_ms ?? 0,
    lastError: row.last_error ?? '',
    nextAttemptAt: timestampFromDate(row.next_attempt_at),
    createdAt: timestampFromDate(row.created_at),
    ...(row.delivered_at === null ? {} : { deliveredAt: timestampFromDate(row.delivered_at) }),
  };
}

function checkPageSize(pageSize: number): void {
  if (pageSize > MAX_LIST_PAGE) throw new InvalidArgumentError(`page_size must be at most ${MAX_LIST_PAGE}`, { field: 'page_size' });
}

/**
 * createWebhookAdminHandlers serves endpoint administration for a forwarded principal with
 * webhooks:admin: URLs are checked with the egress rules before anything is saved (a refusal is
 * INVALID_ARGUMENT naming the rule), secrets are made by the secrets service and shown once, and
 * every change records its audit event in the same transaction.
 */
export function createWebhookAdminHandlers(
  deps: WebhookAdminDeps,
): Pick<
  ServiceImpl<typeof IntegrationsService>,
  | 'createWebhookEndpoint'
  | 'listWebhookEndpoints'
  | 'getWebhookEndpoint'
  | 'deleteWebhookEndpoint'
  | 'rotateWebhookSecret'
  | 'listWebhookDeliveries'
  | 'replayWebhookDelivery'
> {
  const audited = auditedTransactions(deps.db, deps.onAudit);
  return {
    async createWebhookEndpoint(req, ctx) {
      const p = admin(ctx);
      for (const type of req.eventTypes) {
        if (!isWebhookEventType(type)) {
          throw new InvalidArgumentError(`event_types: "${type}" is not a webhook event (one of ${WEBHOOK_EVENT_TYPES.join(', ')})`, {
            field: 'event_types',
          });
        }
      }
      const decision = await checkEgressTarget(req.url, {
        policy: deps.egressPolicy,
        ...(deps.lookup !== undefined ? { lookup: deps.lookup } : {}),
      });
      if (!decision.allowed) throw new InvalidArgumentError(`url: refused by egress rule ${decision.reason ?? ''}`, { field: 'url' });
      // The secret is made first: if saving fails, an unused sealed secret remains, never an endpoint without one.
      const secret = await deps.issueSecret(p.tenantId, `webhook-${randomUUID()}`);
      const row = await audited(p.tenantId, async (trx, record) => {
        const created = await createWebhookEndpoint(trx, {
          url: req.url,
          eventTypes: req.eventTypes,
          description: req.description,
          signingSecretRef: secret.secretId,
        });
        await record({
          ...fromPrincipal(p),
          action: 'webhook_endpoint.create',
          target: { type: 'webhook_endpoint', id: created.id },
          details: auditDetails({ event_types: created.event_types }, ['event_types']),
        });
        return created;
      });
      return { endpoint: toEndpoint(row), signingSecret: secret.value };
    },

    async listWebhookEndpoints(req, ctx) {
      const p = admin(ctx);
      checkPageSize(req.pageSize);
      const page = await withTenant(deps.db, p.tenantId, (trx) => listWebhookEndpoints(trx, pageRequestOf(req)));
      return { endpoints: page.items.map(toEndpoint), nextPageToken: page.nextCursor ?? '' };
    },

    async getWebhookEndpoint(req, ctx) {
      const p = admin(ctx);
      const row = await withTenant(deps.db, p.tenantId, (trx) => getWebhookEndpoint(trx, req.endpointId));
      return { endpoint: toEndpoint(row) };
    },

    async listWebhookDeliveries(req, ctx) {
      const p = admin(ctx);
      checkPageSize(req.pageSize);
      const filter = {
        ...(req.endpointId === '' ? {} : { endpointId: req.endpointId }),
        ...(req.state === '' ? {} : { state: req.state }),
      };
      const page = await withTenant(deps.db, p.tenantId, (trx) => listDeliveries(trx, filter, pageRequestOf(req)));
      return { deliveries: page.items.map(toDelivery), nextPageToken: page.nextCursor ?? '' };
    },

    async deleteWebhookEndpoint(req, ctx) {
      const p = admin(ctx);
      await audited(p.tenantId, async (trx, record) => {
        await deleteWebhookEndpoint(trx, req.endpointId);
        await record({
          ...fromPrincipal(p),
          action: 'webhook_endpoint.delete',
          target: { type: 'webhook_endpoint', id: req.endpointId.toLowerCase() },
          details: noDetails(),
        });
      });
      return {};
    },

    async rotateWebhookSecret(req, ctx) {
      const p = admin(ctx);
      const overlap = req.overlapSeconds === 0 ? DEFAULT_OVERLAP_SECONDS : req.overlapSeconds;
      if (overlap > MAX_OVERLAP_SECONDS) {
        throw new InvalidArgumentError(`overlap_seconds must be at most ${MAX_OVERLAP_SECONDS}`, { field: 'overlap_seconds' });
      }
      // An unknown endpoint is refused before a secret is issued for it (found by test/fuzz: a
      // NOT_FOUND answer used to leave a new sealed secret behind).
      await withTenant(deps.db, p.tenantId, (trx) => getWebhookEndpoint(trx, req.endpointId));
      const secret = await deps.issueSecret(p.tenantId, `webhook-${randomUUID()}`);
      const row = await audited(p.tenantId, async (trx, record) => {
        const rotated = await rotateEndpointSecret(trx, req.endpointId, secret.secretId, new Date(Date.now() + overlap * 1000));
        await record({
          ...fromPrincipal(p),
          action: 'webhook_secret.rotate',
          target: { type: 'webhook_endpoint', id: rotated.id },
          details: auditDetails({ overlap_seconds: overlap }, ['overlap_seconds']),
        });
        return rotated;
      });
      return { endpoint: toEndpoint(row), signingSecret: secret.value };
    },

    async replayWebhookDelivery(req, ctx) {
      const p = admin(ctx);
      const row = await audited(p.tenantId, async (trx, record) => {
        const replayed = await replayDelivery(trx, req.deliveryId, new Date(Date.now() + deps.webhookMaxAgeMs));
        await record({
          ...fromPrincipal(p),
          action: 'webhook_delivery.replay',
          target: { type: 'webhook_delivery', id: replayed.id },
          details: auditDetails({ endpoint_id: replayed.endpoint_id }, ['endpoint_id']),
        });
        return replayed;
      });
      deps.onEnqueued?.();
      return { state: row.state };
    },
  };
}
