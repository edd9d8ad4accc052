import { timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { Client, ServiceImpl } from '@connectrpc/connect';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type { TenantTransaction } from '@parley/db';
import type { Logger, WebhookEventEmitter } from '@parley/platform';
import type { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import type { SessionTokenVerifier } from '@parley/session-token';
import type { Kysely } from 'kysely';
import type { AgentDirectory } from '../agent-directory.js';
import type { IdentityConfig } from '../config.js';
import type { IdentityDb } from '../db/tables.js';
import type { SigningKeyRing } from '../signing-keys.js';

/** IdentityDeps are what the identity handlers need. */
export interface IdentityDeps {
  readonly db: Kysely<IdentityDb>;
  readonly config: IdentityConfig;
  readonly ring: SigningKeyRing;
  readonly verifier: SessionTokenVerifier;
  /** agents tells whether a workspace has an agent (tenant-data owns agents). */
  readonly agents: AgentDirectory;
  /** workspaces creates a workspace in tenant-data (deployment administration). */
  readonly workspaces?: Pick<Client<typeof TenantDataService>, 'createWorkspace'>;
  readonly logger: Logger;
  /** onAudit is told after a transaction with an audit event committed (wakes the outbox relay). */
  readonly onAudit?: () => void;
  /** events sends api_key.revoked to the workspace's webhooks after the revocation committed. */
  readonly events?: WebhookEventEmitter;
}

/** Trx is a tenant transaction on identity's schema. */
export type Trx = TenantTransaction<IdentityDb>;

/** IdentityHandlers are the handlers of some of IdentityService's methods; service.ts puts the areas together. */
export type IdentityHandlers<K extends keyof ServiceImpl<typeof IdentityService>> = Pick<ServiceImpl<typeof IdentityService>, K>;

/** timestampOf is a nullable column as an optional protobuf Timestamp. */
export const timestampOf = (d: Date | null | undefined): Timestamp | undefined =>
  d === null || d === undefined ? undefined : timestampFromDate(d);
