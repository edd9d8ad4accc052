import type { JsonObject } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { auditDetails, auditedTransactions, fromPrincipal, noDetails } from '@parley/audit-outbox';
import { pageRequestOf, withTenant } from '@parley/db';
import { checkEgressTarget, type EgressLookup, type EgressPolicy } from '@parley/egress';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  isUuid,
  NotFoundError,
  PermissionDeniedError,
  type Principal,
} from '@parley/platform';
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
import type { CredentialSecretCheck } from './connection-credentials.js';
import type { IntegrationsDb } from './db/tables.js';

/** CONNECTIONS_SCOPE is the scope a principal needs to manage a workspace's connections. */
export const CONNECTIONS_SCOPE: Scope = 'connections:admin';
/**
 * CREDENTIAL_SCOPE is needed as well to decide where a credential goes: to give a connection a
 * credential, change it, or move a connection that has one to another origin. With
 * connections:admin alone, an operator could send any tool secret to a server of their own.
 */
export const CREDENTIAL_SCOPE: Scope = 'secrets:write';
const MAX_LIST_PAGE = 200;

/** ConnectionAdminDeps are what the connection administration handlers need. */
export interface ConnectionAdminDeps {
  readonly db: Kysely<IntegrationsDb>;
  readonly egressPolicy: EgressPolicy;
  readonly lookup?: EgressLookup;
  readonly onAudit?: () => void;
  /** credentialSecrets checks a credential reference with the secrets service (absent: a connection with a credential is FAILED_PRECONDITION). */
  readonly credentialSecrets?: CredentialSecretCheck;
}

/** CredentialPlacement is where a connection sends its credential: the base URL and the secret reference (null: none). */
interface CredentialPlacement {
  readonly base_url: string;
  readonly credential_secret_ref: string | null;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/**
 * credentialMove says what a change does that decides where a credential goes (undefined: nothing):
 * a credential given, replaced, or taken along to another origin. Removing one moves nothing.
 */
function credentialMove(current: CredentialPlacement | undefined, next: CredentialPlacement): string | undefined {
  if (next.credential_secret_ref === null) return undefined;
  if (current === undefined || current.credential_secret_ref === null) return 'giving a connection a credential';
  if (current.credential_secret_ref !== next.credential_secret_ref.toLowerCase()) return "changing a connection's credential";
  if (originOf(current.base_url) !== originOf(next.base_url)) return 'moving a connection that has a credential to another origin';
  return undefined;
}

/** requireCredentialScope refuses a credential move by a principal without CREDENTIAL_SCOPE, saying what it needs. */
function requireCredentialScope(p: Principal, move: string | undefined): void {
  if (move === undefined || p.scopes.includes(CREDENTIAL_SCOPE)) return;
  throw new PermissionDeniedError(
    `${move} needs the "${CREDENTIAL_SCOPE}" scope as well as "${CONNECTIONS_SCOPE}", because it decides where the credential is sent; ask someone who holds both, or keep the credential and the base URL's origin as they are`,
  );
}

function credentialRefOf(value: string): string | null {
  if (value === '') return null;
  if (!isUuid(value))
    throw new InvalidArgumentError('credential_secret_id: must be a UUID (8-4-4-4-12 hex digits)', { field: 'credential_secret_id' });
  return value.toLowerCase();
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
  // The credential must be a tool secret of the workspace when saved (it is checked again at every call).
  const checkCredential = async (tenantId: string, secretRef: string | null): Promise<void> => {
    if (secretRef === null) return;
    if (deps.credentialSecrets === undefined)
      throw new FailedPreconditionError('a connection with a credential needs the secrets service to check it; set PARLEY_SECRETS_URL');
    const status = await deps.credentialSecrets(tenantId, secretRef);
    if (status === 'missing')
      throw new NotFoundError(
        `credential_secret_id: no secret ${secretRef} in this workspace; put the credential with SecretService.PutSecret (provider_kind "tool") and use the id it returns`,
      );
    if (status === 'wrong_kind')
      throw new InvalidArgumentError(
        `credential_secret_id: secret ${secretRef} is not of provider kind "tool"; a connection sends only tool secrets, so put its credential as one`,
        { field: 'credential_secret_id' },
      );
  };
  return {
    async createConnection(req, ctx) {
      const p = admin(ctx);
      const secretRef = credentialRefOf(req.credentialSecretId);
      requireCredentialScope(p, credentialMove(undefined, { base_url: req.baseUrl, credential_secret_ref: secretRef }));
      await checkBaseUrl(req.baseUrl);
      await checkCredential(p.tenantId, secretRef);
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
      const secretRef = credentialRefOf(req.credentialSecretId);
      const next = { base_url: req.baseUrl, credential_secret_ref: secretRef };
      // Read first to refuse early and check a new credential outside the transaction; decided again on the locked row.
      const current = await withTenant(deps.db, p.tenantId, (trx) => getConnection(trx, req.connectionId));
      requireCredentialScope(p, credentialMove(current.connection, next));
      await checkBaseUrl(req.baseUrl);
      if (secretRef !== current.connection.credential_secret_ref) await checkCredential(p.tenantId, secretRef);
      let move: string | undefined;
      const saved = await audited(p.tenantId, async (trx, record) => {
        const updated = await updateConnection(trx, req.connectionId, inputOf(req), (change) => {
          move = credentialMove(change.current, change.next);
          requireCredentialScope(p, move);
        });
        await record({
          ...fromPrincipal(p),
          action: 'connection.update',
          target: { type: 'connection', id: updated.connection.id },
          details: auditDetails(
            {
              name: updated.connection.name,
              operations: updated.operations.map((o) => o.name),
              auth_destination_changed: move !== undefined,
            },
            ['name', 'operations', 'auth_destination_changed'],
          ),
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
