// @parley/audit as a library: the chain and its verifier (for the offline verifier, tests and
// benchmarks), the checkpoint signer, the store and the handlers. The process is main.ts.
export * from './chain.js';
export * from './export-format.js';
export { loadAuditConfig, type AuditConfig } from './config.js';
export { checkpointTenant, startCheckpointTimer, type CheckpointDeps, type CheckpointTimerOptions } from './checkpoint-timer.js';
export { resolveRange, verifyTenantRange } from './chain-range.js';
export { createChainAppender, type ChainAppender, type ChainWriter } from './chain-appender.js';
export { createAuditService, toNewEvent, MAX_APPEND_BATCH, type AuditServiceDeps } from './service.js';
export {
  SealedKeyCheckpointSigner,
  type CheckpointPublicKey,
  type CheckpointSigner,
  type SealedKeyCheckpointSignerOptions,
} from './signer.js';
export { verifyExport, type ExportVerification, type VerifyExportOptions } from './verify-export.js';
export * from './witness.js';
export * from './db/tables.js';
export * from './chain.store.js';
export * from './event.store.js';
