// Witnesses: every signed checkpoint is also published outside the database, so that a database
// superuser who rolls back a chain's tail (events, checkpoints and head together) leaves a chain
// that verifies on its own but no longer matches what was witnessed.
import { appendFile, readFile } from 'node:fs/promises';
import type { WebhookEventEmitter } from '@parley/platform';
import type { ChainCheckpoint } from './chain.js';

/** CheckpointWitness receives each checkpoint after the transaction that stored it committed. */
export interface CheckpointWitness {
  /** name says which witness failed in a log line. */
  readonly name: string;
  publish(checkpoint: ChainCheckpoint): Promise<void>;
}

/** AuditCheckpointEvent is the `audit.checkpoint` event a hook receives (the integrations service's webhooks will deliver it). */
export interface AuditCheckpointEvent {
  type: 'audit.checkpoint';
  checkpoint: ChainCheckpoint;
}

/** CheckpointHook is called with every `audit.checkpoint` event. */
export type CheckpointHook = (event: AuditCheckpointEvent) => Promise<void>;

/** hookWitness turns a hook into a witness. */
export function hookWitness(hook: CheckpointHook, name = 'audit.checkpoint hook'): CheckpointWitness {
  return { name, publish: (checkpoint) => hook({ type: 'audit.checkpoint', checkpoint }) };
}

/**
 * webhookWitness sends every signed checkpoint to the tenant's webhooks as the `audit.checkpoint`
 * event (through the integrations service), so a workspace can keep its own witness of its chain:
 * the sequence number, the chain hash at it, the signing key and the Ed25519 signature; never an
 * event's contents. The emitter never throws and never waits; a lost emit is logged by it.
 */
export function webhookWitness(events: WebhookEventEmitter): CheckpointWitness {
  return hookWitness(async ({ checkpoint }) => {
    events.emit({
      tenantId: checkpoint.tenantId,
      type: 'audit.checkpoint',
      at: new Date(checkpoint.signedAt),
      data: { seq: String(checkpoint.seq), hash: checkpoint.hash, key_id: checkpoint.keyId, signature: checkpoint.signature },
    });
  }, 'audit.checkpoint webhooks');
}

/**
 * FileCheckpointWitness appends one NDJSON line per checkpoint (the export's checkpoint line) to a
 * file opened in append mode (O_APPEND: each line lands whole at the end, also with several
 * writers). Keep it where the database's administrators cannot rewrite it: another volume, host
 * or an append-only (chattr +a) file, shipped to log storage.
 */
export class FileCheckpointWitness implements CheckpointWitness {
  readonly name: string;

  constructor(private readonly path: string) {
    this.name = `witness file ${path}`;
  }

  /** publish appends the checkpoint's line. */
  publish(checkpoint: ChainCheckpoint): Promise<void> {
    return appendFile(this.path, `${JSON.stringify({ type: 'checkpoint', ...checkpoint })}\n`, { flag: 'a', mode: 0o640 });
  }
}

/** publishToWitnesses publishes one checkpoint to every witness; a failing witness is logged and does not stop the others. */
export async function publishToWitnesses(
  witnesses: readonly CheckpointWitness[],
  checkpoint: ChainCheckpoint,
  logger: { error(fields: object, message: string): void },
): Promise<void> {
  await Promise.all(
    witnesses.map(async (w) => {
      try {
        await w.publish(checkpoint);
      } catch (err) {
        logger.error(
          { witness: w.name, tenantId: checkpoint.tenantId, seq: checkpoint.seq, err: err instanceof Error ? err.message : String(err) },
          'a signed checkpoint was not published to a witness',
        );
      }
    }),
  );
}

/** readWitnessFile reads a witness file's checkpoints, of one tenant when given (other lines and blank lines are skipped). */
export async function readWitnessFile(path: string, tenantId?: string): Promise<ChainCheckpoint[]> {
  const text = await readFile(path, 'utf8');
  const checkpoints: ChainCheckpoint[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '' || (tenantId !== undefined && !line.includes(tenantId))) continue;
    let parsed: { type?: unknown } & Partial<ChainCheckpoint>;
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      throw new Error(`${path} line ${i + 1} is not JSON`);
    }
    if (parsed.type !== 'checkpoint' || (tenantId !== undefined && parsed.tenantId !== tenantId)) continue;
    const { type: _t, ...cp } = parsed;
    checkpoints.push(cp as ChainCheckpoint);
  }
  return checkpoints;
}
