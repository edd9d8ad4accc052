import type { JsonObject } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { auditDetails, auditedTransactions, fromPrincipal, noDetails } from '@parley/audit-outbox';
import { pageRequestOf, withTenant } from '@parley/db';
import { checkEgressTarget, type EgressLookup, type EgressPolicy } from '@parley/egress';
import { InvalidArgumentError, type Principal } from '@parley/platform';
import type { ConnectionOperation, IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { scopedPrincipal, type Scope } from '@parley/scopes';
import type { Kysely } from 'kysely';
import {
  createConnection,
  deleteConnection,
  getConnection,
  listConnections,
  updateConnection,
  type ConnectionInput,
  type ConnectionWithOperations,
} from './connection.store.js';
import type { IntegrationsDb } from './db/tables.js';

/** CONNECTIONS_SCOPE is the scope a principal needs to manage a workspace's connections. */
export const CONNECTIONS_SCOPE: Scope = 'connections:admin';
const MAX_LIST_PAGE = 200;

/** ConnectionAdminDeps are what the connection administration handlers need. */
export interface ConnectionAdminDeps {
  readonly db: Kysely<IntegrationsDb>;
  readonly egressPolicy: EgressPolicy;
  readonly lookup?: EgressLookup;
  readonly onAudit?: () => void;
}

const admin = (ctx: HandlerContext): Principal => scopedPrincipal(ctx, CONNECTIONS_SCOPE);

// The connection as administrators see it: the credential's secret id, never its value.
function toConnection({ connection: c, operations }: ConnectionWithOperations) {
  return {
    id: c.id,
    name: c.name,
    baseUrl: c.base_url,
    credentialSecretId: c.credential_secret_ref ?? '',
    credentialHeader: c.credential_header,
    description: c.description,
    operations: operations.map((o) => ({
      name: o.name,
      description: o.description,
      method: o.method ?? '',
      pathTemplate: o.path_template ?? '',
      argumentsSchema: o.input_schema as JsonObject,
      scope: o.scopes[0] ?? '',
    })),
    createdAt: timestampFromDate(c.created_at),
    updatedAt: timestampFromDate(c.updated_at),
  };
}

function inputOf(req: {
  name: string;
  baseUrl: string;
  credentialSecretId: string;
  credentialHeader: string;
  description: string;
  operations: ConnectionOperation[];
}): ConnectionInput {
  return {
    name: req.name,
    baseUrl: req.baseUrl,
    credentialSecretRef: req.credentialSecretId,
    credentialHeader: req.credentialHeader,
    description: req.description,
    operations: req.operations.map((o) => ({
      name: o.name,
      description: o.description,
      method: o.method.toUpperCase(),
      pathTemplate: o.pathTemplate,
      argumentsSchema: (o.argumentsSchema ?? {}) as Record<string, unknown>,
      scope: o.scope,
    })),
  };
}

/**
 * createConnectionAdminHandlers serves connection administration for a forwarded principal with
 * connections:admin: base URLs are checked with the egress rules before anything is saved (a
 * refusal is INVALID_ARGUMENT naming the rule; calls check again), and every change records its
 * audit event in the same transaction.
 */
export function createConnectionAdminHandlers(
  deps: ConnectionAdminDeps,
): Pick<
  ServiceImpl<typeof IntegrationsService>,
  'createConnection' | 'getConnection' | 'listConnections' | 'updateConnection' | 'deleteConnection'
> {
  const audited = auditedTransactions(deps.db, deps.onAudit);
  const checkBaseUrl = async (url: string): Promise<void> => {
    if (url === '') throw new InvalidArgumentError('base_url: must be an absolute https:// URL', { field: 'base_url' });
    const decision = await checkEgressTarget(url, {
      policy: deps.egressPolicy,
      ...(deps.lookup !== undefined ? { lookup: deps.lookup } : {}),
    });
    if (!decision.allowed)
      throw new InvalidArgumentError(`base_url: refused by egress rule ${decision.reason ?? ''}`, { field: 'base_url' });
  };
  return {
    async createConnection(req, ctx) {
      const p = admin(ctx);
      await checkBaseUrl(req.baseUrl);
      const saved = await audited(p.tenantId, async (trx, record) => {
        const created = await createConnection(trx, inputOf(req));
        await record({
          ...fromPrincipal(p),
          action: 'connection.create',
          target: { type: 'connection', id: created.connection.id },
          details: auditDetails({ name: created.connection.name, operations: created.operations.map((o) => o.name) }, [
            'name',
            'operations',
          ]),
        });
        return created;
      });
      return { connection: toConnection(saved) };
    },

    async getConnection(req, ctx) {
      const p = admin(ctx);
      return { connection: toConnection(await withTenant(deps.db, p.tenantId, (trx) => getConnection(trx, req.connectionId))) };
    },

    async listConnections(req, ctx) {
      const p = admin(ctx);
      if (req.pageSize > MAX_LIST_PAGE)
        throw new InvalidArgumentError(`page_size must be at most ${MAX_LIST_PAGE}`, { field: 'page_size' });
      const page = await withTenant(deps.db, p.tenantId, (trx) => listConnections(trx, pageRequestOf(req)));
      return { connections: page.items.map(toConnection), nextPageToken: page.nextCursor ?? '' };
    },

    async updateConnection(req, ctx) {
      const p = admin(ctx);
      await checkBaseUrl(req.baseUrl);
      const saved = await audited(p.tenantId, async (trx, record) => {
        const updated = await updateConnection(trx, req.connectionId, inputOf(req));
        await record({
          ...fromPrincipal(p),
          action: 'connection.update',
          target: { type: 'connection', id: updated.connection.id },
          details: auditDetails({ name: updated.connection.name, operations: updated.operations.map((o) => o.name) }, [
            'name',
            'operations',
          ]),
        });
        return updated;
      });
      return { connection: toConnection(saved) };
    },

    async deleteConnection(req, ctx) {
      const p = admin(ctx);
      await audited(p.tenantId, async (trx, record) => {
        await deleteConnection(trx, req.connectionId);
        await record({
          ...fromPrincipal(p),
          action: 'connection.delete',
          target: { type: 'connection', id: req.connectionId.toLowerCase() },
          details: noDetails(),
        });
      });
      return {};
    },
  };
}
