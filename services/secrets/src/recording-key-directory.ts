import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { FailedPreconditionError, peerError } from '@parley/platform';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/** StoredRecordingKey is a recording's sealed key as tenant-data keeps it (never a plaintext key). */
export interface StoredRecordingKey {
  readonly recordingId: string;
  readonly wrappedKey: string;
}

/** RewrappedRecordingKey is a sealed recording key to write back, compare-and-set on the one read. */
export interface RewrappedRecordingKey extends StoredRecordingKey {
  readonly previousWrappedKey: string;
  readonly kekVersion: number;
}

/**
 * RecordingKeyDirectory reaches the keys of recordings without a subject, which tenant-data keeps
 * with their references (sealed under the KEK), for the KEK rewrap: below means wrapped with an
 * older KEK version or with one tenant-data has not recorded yet.
 */
export interface RecordingKeyDirectory {
  /** tenants lists the workspaces holding such keys below a KEK version, with how many. */
  tenants(below: number): Promise<{ tenantId: string; keys: number }[]>;
  /** page returns up to pageSize of a workspace's keys below a version, after a recording id, by id. */
  page(tenantId: string, below: number, after: string | undefined, pageSize: number): Promise<StoredRecordingKey[]>;
  /** save writes rewrapped keys back; answers how many rows changed. */
  save(tenantId: string, keys: readonly RewrappedRecordingKey[]): Promise<number>;
}

function mapError(err: unknown): unknown {
  // An older tenant-data keeps these keys out of reach: the rewrap cannot be complete, and saying
  // so stops a minimum-version raise that would make those recordings unreadable.
  if (ConnectError.from(err).code === Code.Unimplemented)
    return new FailedPreconditionError(
      "tenant-data does not serve the recording keys' rewrap yet (an older release); upgrade tenant-data first, then rewrap again",
    );
  return peerError(err, 'tenant-data', 'recording keys', 'the recording keys cannot be rewrapped');
}

/** tenantDataRecordingKeys asks tenant-data over mTLS (ListRecordingKeyTenants, ListRecordingKeys, SaveRecordingKeys). */
export function tenantDataRecordingKeys(client: Client<typeof TenantDataService>): RecordingKeyDirectory {
  return {
    async tenants(below) {
      try {
        const res = await client.listRecordingKeyTenants({ belowKekVersion: below }, { timeoutMs: 30_000 });
        return res.tenants.map((t) => ({ tenantId: t.tenantId, keys: Number(t.keys) }));
      } catch (err) {
        throw mapError(err);
      }
    },
    async page(tenantId, below, after, pageSize) {
      try {
        const res = await client.listRecordingKeys(
          { tenantId, belowKekVersion: below, afterRecordingId: after ?? '', pageSize },
          { timeoutMs: 30_000 },
        );
        return res.keys.map((k) => ({ recordingId: k.recordingId, wrappedKey: k.wrappedKey }));
      } catch (err) {
        throw mapError(err);
      }
    },
    async save(tenantId, keys) {
      try {
        const res = await client.saveRecordingKeys({ tenantId, keys: [...keys] }, { timeoutMs: 30_000 });
        return res.updated;
      } catch (err) {
        throw mapError(err);
      }
    },
  };
}
