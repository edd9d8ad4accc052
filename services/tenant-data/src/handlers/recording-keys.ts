import { listRecordingKeys, listRecordingKeyTenants, saveRecordingKeys } from '../recording.store.js';
import { blank, tenantScopes, type TenantDataDeps, type TenantDataHandlers } from './deps.js';

/**
 * recordingKeyHandlers let secrets' KEK rewrap reach the keys of recordings without a subject,
 * which are kept here with their reference (sealed under the KEK; tenant-data cannot open them):
 * which workspaces hold keys below a KEK version, a workspace's sealed keys page by page, and the
 * rewrapped keys written back. Only secrets may call them (policy.ts).
 */
export function recordingKeyHandlers(
  deps: TenantDataDeps,
): TenantDataHandlers<'listRecordingKeyTenants' | 'listRecordingKeys' | 'saveRecordingKeys'> {
  const { inTenant } = tenantScopes(deps);
  return {
    async listRecordingKeyTenants(req) {
      // No tenant: the one cross-tenant read, ids and counts only, through the definer function.
      const tenants = await listRecordingKeyTenants(deps.db, req.belowKekVersion);
      return { tenants: tenants.map((t) => ({ tenantId: t.tenantId, keys: BigInt(t.keys) })) };
    },

    async listRecordingKeys(req, ctx) {
      const keys = await inTenant(req.tenantId, ctx, (trx) =>
        listRecordingKeys(trx, req.belowKekVersion, blank(req.afterRecordingId), req.pageSize === 0 ? undefined : req.pageSize),
      );
      return { keys };
    },

    async saveRecordingKeys(req, ctx) {
      const updated = await inTenant(req.tenantId, ctx, (trx) => saveRecordingKeys(trx, req.keys));
      return { updated };
    },
  };
}
