import { auditDetails, recordAuditEvent, type AuditActor } from '@parley/audit-outbox';
import { withTenant } from '@parley/db';
import {
  rewrapAllDataKeys,
  rewrapWrappedKeys,
  type DataKeyCache,
  type EnvelopeLogger,
  type KekProvider,
  type KekVersions,
} from '@parley/envelope';
import type { Kysely } from 'kysely';
import type { SecretsDatabase } from './db/tables.js';
import { countKeysBelow, destroyExpiredVersions, listKeyTenants, saveRewrappedKeys, staleWrappedKeys } from './maintenance.store.js';
import type { RecordingKeyDirectory, RewrappedRecordingKey } from './recording-key-directory.js';
import { decodeSealed, encodeSealed } from './recording-key.service.js';

/** MaintenanceDeps are what the KEK rewrap and the version sweep work with. */
export interface MaintenanceDeps {
  readonly db: Kysely<SecretsDatabase>;
  readonly kek: KekProvider;
  readonly cache: DataKeyCache | undefined;
  readonly logger: EnvelopeLogger;
  readonly rewrapBatchSize: number;
  /**
   * recordingKeys reaches the keys of recordings without a subject, kept in tenant-data (sealed
   * under the KEK). Undefined only where no tenant-data is configured: the rewrap then covers
   * secrets' own keys alone.
   */
  readonly recordingKeys?: RecordingKeyDirectory | undefined;
}

/** RewrapReport is what a rewrap run over every tenant did and what is left. */
export interface RewrapReport {
  /** targetVersion is the latest KEK version the run rewrapped to. */
  readonly targetVersion: number;
  readonly tenants: number;
  readonly rewrapped: number;
  /** remaining counts stored keys still below targetVersion (0 after a complete run), recording keys included. */
  readonly remaining: number;
  /** recordingKeysRemaining is the part of remaining that are recordings' own keys kept in tenant-data. */
  readonly recordingKeysRemaining: number;
}

/**
 * rewrapStoredKeys rewraps every stored data key (secret versions and subject keys, of every
 * tenant) that is below the latest KEK version. Progress lives in the rows (kek_version), so an
 * interrupted run (signal, crash, KEK outage) is finished by running it again.
 */
export async function rewrapStoredKeys(deps: MaintenanceDeps, signal?: AbortSignal): Promise<RewrapReport> {
  const { latestVersion } = await deps.kek.readKekVersions();
  const tenants = await listKeyTenants(deps.db);
  let rewrapped = 0;
  let remaining = 0;
  for (const tenantId of tenants) {
    signal?.throwIfAborted();
    const progress = await rewrapAllDataKeys(deps.kek, {
      records: staleWrappedKeys(deps.db, tenantId, latestVersion, deps.rewrapBatchSize),
      save: async (batch) => {
        await saveRewrappedKeys(deps.db, tenantId, batch);
      },
      batchSize: deps.rewrapBatchSize,
      ...(signal === undefined ? {} : { signal }),
      onProgress: (p) =>
        deps.logger.info(
          { tenant_id: tenantId, target_version: p.targetVersion, rewrapped: rewrapped + p.rewrapped, batches: p.batches },
          'kek rewrap progress',
        ),
    });
    rewrapped += progress.rewrapped;
    remaining += await countKeysBelow(deps.db, tenantId, latestVersion);
  }
  const recordings = await rewrapRecordingKeys(deps, latestVersion, signal);
  rewrapped += recordings.rewrapped;
  remaining += recordings.remaining;
  const tenantCount = new Set([...tenants, ...recordings.tenants]).size;
  if (rewrapped > 0 || remaining > 0) {
    deps.logger.info(
      { target_version: latestVersion, tenants: tenantCount, rewrapped, remaining, recording_keys_remaining: recordings.remaining },
      remaining === 0 ? 'kek rewrap complete' : 'kek rewrap incomplete',
    );
  }
  return { targetVersion: latestVersion, tenants: tenantCount, rewrapped, remaining, recordingKeysRemaining: recordings.remaining };
}

/**
 * rewrapRecordingKeys rewraps the keys of recordings without a subject, which tenant-data keeps
 * sealed under the KEK (`conversation:v2:`): a workspace at a time, a page at a time, each key's
 * KEK-wrapped data key rewrapped inside the KEK provider (Vault transit's rewrap: no plaintext key
 * leaves it, none is seen here) and written back compare-and-set on the sealed key read. Keys
 * already at the target version get that version recorded, so they are not asked for again.
 * Returns what it rewrapped, what is still below (0 after a complete run) and the workspaces seen.
 */
export async function rewrapRecordingKeys(
  deps: MaintenanceDeps,
  targetVersion: number,
  signal?: AbortSignal,
): Promise<{ rewrapped: number; remaining: number; tenants: string[] }> {
  const directory = deps.recordingKeys;
  if (directory === undefined) return { rewrapped: 0, remaining: 0, tenants: [] };
  const tenants = (await directory.tenants(targetVersion)).map((t) => t.tenantId);
  let rewrapped = 0;
  for (const tenantId of tenants) {
    let after: string | undefined;
    for (;;) {
      signal?.throwIfAborted();
      const page = await directory.page(tenantId, targetVersion, after, deps.rewrapBatchSize);
      const current: RewrappedRecordingKey[] = [];
      const stale: { recordingId: string; wrappedKey: string; sealed: ReturnType<typeof decodeSealed> }[] = [];
      for (const k of page) {
        let sealed: ReturnType<typeof decodeSealed>;
        try {
          sealed = decodeSealed(k.wrappedKey);
        } catch {
          // Stays below (counted as remaining): a key that is not ours is never rewritten.
          deps.logger.info({ tenant_id: tenantId, recording_id: k.recordingId }, 'kek rewrap skipped a recording key it cannot read');
          continue;
        }
        if (sealed.kekVersion >= targetVersion) current.push({ ...k, previousWrappedKey: k.wrappedKey, kekVersion: sealed.kekVersion });
        else stale.push({ ...k, sealed });
      }
      const next = await rewrapWrappedKeys(
        deps.kek,
        stale.map((k) => k.sealed.wrappedDataKey),
      );
      const batch = [
        ...current,
        ...stale.map((k, i) => {
          const done = next[i] as { wrappedKey: string; kekVersion: number };
          const wrappedKey = encodeSealed({ ...k.sealed, wrappedDataKey: done.wrappedKey, kekVersion: done.kekVersion });
          return { recordingId: k.recordingId, previousWrappedKey: k.wrappedKey, wrappedKey, kekVersion: done.kekVersion };
        }),
      ];
      if (batch.length > 0) await directory.save(tenantId, batch);
      rewrapped += stale.length;
      if (stale.length > 0)
        deps.logger.info({ tenant_id: tenantId, target_version: targetVersion, rewrapped }, 'kek rewrap progress (recording keys)');
      const last = page.at(-1);
      if (last === undefined || page.length < deps.rewrapBatchSize) break;
      after = last.recordingId;
    }
  }
  const remaining = (await directory.tenants(targetVersion)).reduce((n, t) => n + t.keys, 0);
  return { rewrapped, remaining, tenants };
}

/** RotationReport is the outcome of rotateKekAndRewrap. */
export interface RotationReport extends RewrapReport {
  readonly versions: KekVersions;
}

/**
 * rotateKekAndRewrap adds a KEK version, rewraps every stored key to it and, when asked and only
 * if nothing is left below it, raises the minimum decryption version so old KEK versions stop
 * working. New data keys use the new version at once; nothing stops serving meanwhile. With
 * `auditActor`, every tenant holding wrapped keys gets a `kek.rotate` audit event (see recordKekRotation).
 */
export async function rotateKekAndRewrap(
  deps: MaintenanceDeps,
  options: { raiseMinDecryptionVersion: boolean; signal?: AbortSignal; auditActor?: AuditActor },
): Promise<RotationReport> {
  const before = await deps.kek.readKekVersions();
  const rotated = await deps.kek.rotateKek();
  deps.logger.info({ latest_version: rotated.latestVersion }, 'kek rotated');
  if (options.auditActor !== undefined) await recordKekRotation(deps, options.auditActor, before.latestVersion, rotated.latestVersion);
  return finishRewrap(deps, options);
}

/**
 * recordKekRotation writes a `kek.rotate` event into the outbox of every tenant that holds
 * wrapped keys: the KEK is shared, but each tenant's keys are the ones rewrapped, and the audit
 * log is per tenant. The rotation itself happened in the KEK provider, so there is no database
 * change to share a transaction with; the events are written right after it, before the rewrap,
 * so an interrupted rewrap still leaves the rotation on record. A running replica's relay
 * delivers them.
 */
export async function recordKekRotation(
  deps: Pick<MaintenanceDeps, 'db' | 'kek' | 'recordingKeys'>,
  actor: AuditActor,
  fromVersion: number,
  toVersion: number,
): Promise<number> {
  // The tenants whose keys the rewrap is about to reach: secrets' own, and those whose recordings'
  // own keys tenant-data keeps (all below the new version, which nothing is wrapped with yet).
  const recordingTenants = deps.recordingKeys === undefined ? [] : (await deps.recordingKeys.tenants(toVersion)).map((t) => t.tenantId);
  const tenants = [...new Set([...(await listKeyTenants(deps.db)), ...recordingTenants])];
  for (const tenantId of tenants) {
    await withTenant(deps.db, tenantId, (trx) =>
      recordAuditEvent<SecretsDatabase>(trx, {
        tenantId,
        actor,
        action: 'kek.rotate',
        target: { type: 'kek', id: `v${toVersion}` },
        details: auditDetails({ kek_version: { from: fromVersion, to: toVersion }, provider: deps.kek.kind }, ['kek_version', 'provider']),
      }),
    );
  }
  return tenants.length;
}

/** finishRewrap rewraps what is left (after a rotation, or to resume one) and optionally raises the minimum version. */
export async function finishRewrap(
  deps: MaintenanceDeps,
  options: { raiseMinDecryptionVersion: boolean; signal?: AbortSignal },
): Promise<RotationReport> {
  const report = await rewrapStoredKeys(deps, options.signal);
  let versions = await deps.kek.readKekVersions();
  if (options.raiseMinDecryptionVersion && report.remaining === 0 && versions.minDecryptionVersion < report.targetVersion) {
    versions = await deps.kek.raiseMinDecryptionVersion(report.targetVersion);
    // Cached data keys stay valid (the data key itself did not change); nothing to wipe.
    deps.logger.info({ min_decryption_version: versions.minDecryptionVersion }, 'kek minimum decryption version raised');
  }
  return { ...report, versions };
}

/** sweepRetiredVersions destroys every tenant's retired secret versions whose grace period has ended. */
export async function sweepRetiredVersions(deps: MaintenanceDeps): Promise<number> {
  let destroyed = 0;
  for (const tenantId of await listKeyTenants(deps.db)) {
    const keys = await destroyExpiredVersions(deps.db, tenantId);
    for (const key of keys) deps.cache?.forget(key);
    destroyed += keys.length;
  }
  if (destroyed > 0) deps.logger.info({ destroyed }, 'retired secret versions destroyed');
  return destroyed;
}
