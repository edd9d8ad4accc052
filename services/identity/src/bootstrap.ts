import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Client } from '@connectrpc/connect';
import { auditDetails, recordAuditEvent, systemActor } from '@parley/audit-outbox';
import { withTenant } from '@parley/db';
import type { Logger } from '@parley/platform';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type { Kysely } from 'kysely';
import { generateApiKey, hashApiKey, type ApiKeyEnvironment } from './api-key-format.js';
import { insertApiKey } from './api-key.store.js';
import type { IdentityDb } from './db/tables.js';
import { addMember } from './member.store.js';
import { WORKSPACE_SCOPES } from '@parley/scopes';
import { registerWorkspace } from './workspace.store.js';
import { SYSTEM_TENANT } from './system-tenant.js';

/** BootstrapRecord is what the bootstrap file holds (mode 0600). */
export interface BootstrapRecord {
  readonly tenantId: string;
  readonly memberId: string;
  readonly apiKey: string;
}

/** BootstrapDeps are what the dev bootstrap needs. */
export interface BootstrapDeps {
  readonly file: string;
  readonly db: Kysely<IdentityDb>;
  readonly tenantData: Pick<Client<typeof TenantDataService>, 'createWorkspace'>;
  readonly pepper: Buffer;
  readonly environment: ApiKeyEnvironment;
  readonly logger: Logger;
}

/** DevBootstrap is a bootstrap running in the background (startDevBootstrap). */
export interface DevBootstrap {
  /** done is true once the workspace exists (created now or found); readiness waits for it. */
  readonly done: boolean;
  /** stop ends the retries. */
  stop(): void;
}

/**
 * startDevBootstrap runs bootstrapDevWorkspace until it succeeds. In the dev stack tenant-data
 * starts alongside identity, so the first attempts may find it not serving yet: it retries
 * every retryMs, logging every tenth attempt, until it succeeds or is stopped.
 */
export function startDevBootstrap(deps: BootstrapDeps, retryMs = 500): DevBootstrap {
  let done = false;
  let stopped = false;
  void (async () => {
    for (let attempt = 1; !stopped; attempt++) {
      try {
        await bootstrapDevWorkspace(deps);
        done = true;
        return;
      } catch (err) {
        if (attempt % 10 === 0)
          deps.logger.warn({ err: err instanceof Error ? err.message : String(err), attempt }, 'dev bootstrap waiting for tenant-data');
        await new Promise((r) => setTimeout(r, retryMs));
      }
    }
  })();
  return {
    get done() {
      return done;
    },
    stop() {
      stopped = true;
    },
  };
}

/**
 * bootstrapDevWorkspace is for the one-machine dev stack only: when the file does not exist it
 * creates a workspace (through tenant-data), an owner member and an owner API key holding every
 * scope, and writes them to the file with mode 0600. The file is the only place the key exists
 * in plain text; the database has its hash.
 */
export async function bootstrapDevWorkspace(deps: BootstrapDeps): Promise<'created' | 'exists'> {
  if (existsSync(deps.file)) return 'exists';
  const tenantId = randomUUID();
  await deps.tenantData.createWorkspace({ tenantId, name: 'Dev workspace' });
  const generated = generateApiKey(tenantId, deps.environment);
  const record = await withTenant(deps.db, tenantId, async (trx) => {
    const owner = await addMember(trx, { email: 'owner@parley.localhost', displayName: 'Dev owner', role: 'owner' });
    const key = await insertApiKey(trx, {
      keyId: generated.keyId,
      environment: generated.environment,
      name: 'dev bootstrap owner key',
      secretHash: hashApiKey(deps.pepper, generated.key),
      scopes: [...WORKSPACE_SCOPES],
      createdByMemberId: owner.id,
      expiresAt: null,
    });
    const actor = systemActor('dev-bootstrap');
    await recordAuditEvent<IdentityDb>(trx, {
      tenantId,
      actor,
      action: 'member.add',
      target: { type: 'member', id: owner.id },
      details: auditDetails({ role: 'owner' }, ['role']),
    });
    await recordAuditEvent<IdentityDb>(trx, {
      tenantId,
      actor,
      action: 'api_key.create',
      target: { type: 'api_key', id: key.id },
      details: auditDetails({ scopes: WORKSPACE_SCOPES }, ['scopes']),
    });
    return { tenantId, memberId: owner.id, apiKey: generated.key } satisfies BootstrapRecord;
  });
  await withTenant(deps.db, SYSTEM_TENANT, (trx) => registerWorkspace(trx, tenantId, 'Dev workspace'));
  await mkdir(dirname(deps.file), { recursive: true });
  const tmp = `${deps.file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, deps.file);
  deps.logger.info({ tenant_id: tenantId, key_prefix: generated.prefix, file: deps.file }, 'dev workspace bootstrapped');
  return 'created';
}
