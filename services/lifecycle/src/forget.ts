// The DSAR forget saga. Its steps are persisted on the job as they finish, each is idempotent, and
// a job whose worker died (SIGKILL, a lost pod) is taken over when its lease ends, so it resumes at
// the first unfinished step; a service that is down fails its step, and the job waits for the next
// attempt rather than finishing with a step missing. The subject key is shredded first: from then
// on the person's ciphertexts (in any table, and in backups once the KEK is rotated) cannot be read.
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { LIFTED_TIMEOUT_MS, withTenant } from '@parley/db';
import type { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import type { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type { Kysely } from 'kysely';
import type { LifecycleDb, PrivacyJob } from './db/tables.js';
import { sha256Hex } from './export.js';
import { finishForget, saveSteps } from './privacy.store.js';

/** FORGET_STEPS are the saga's steps in order. */
/**
 * ERASURE_CALL bounds a forget step's call to its owning service as that service bounds the
 * step's transaction (liftDbTimeouts): an erasure of a subject's whole history may rightly run
 * past the default 10 s deadline, and a step given up early would leave it running there.
 */
const ERASURE_CALL = { timeoutMs: LIFTED_TIMEOUT_MS } as const;

export const FORGET_STEPS = [
  'inventory',
  'shred_subject_key',
  'identity_sessions',
  'webhook_deliveries',
  'access_events',
  'tenant_data',
  'receipt',
] as const;

/** ForgetPeers are the RPCs the saga calls (allow-listed to lifecycle). */
export interface ForgetPeers {
  readonly tenantData: Pick<Client<typeof TenantDataService>, 'listConversations' | 'getSubject' | 'forgetSubject'>;
  readonly secrets: Pick<Client<typeof SecretsService>, 'shredSubjectKey' | 'forgetAccessEvents'>;
  readonly identity: Pick<Client<typeof IdentityService>, 'forgetSubjectSessions'>;
  readonly integrations: Pick<Client<typeof IntegrationsService>, 'forgetDeliveries'>;
  readonly audit: Pick<Client<typeof AuditService>, 'signStatement'>;
}

/** RECEIPT_SCHEMA names the deletion receipt's format. */
export const RECEIPT_SCHEMA = 'parley.deletion-receipt/v2';

type Steps = Record<string, unknown> & { done?: string[]; started?: string[] };

/** subjectConversationIds lists the ids of every conversation of a subject, page by page. */
export async function subjectConversationIds(
  tenantData: Pick<Client<typeof TenantDataService>, 'listConversations'>,
  tenantId: string,
  subjectId: string,
): Promise<string[]> {
  const ids: string[] = [];
  let pageToken = '';
  do {
    const r = await tenantData.listConversations({ tenantId, subjectId, pageSize: 500, pageToken });
    ids.push(...r.conversations.map((c) => c.id));
    pageToken = r.nextPageToken;
  } while (pageToken !== '');
  return ids;
}

// The subject's external reference, read while the subject still exists (this step runs before
// tenant_data's): sessions carry it, and the saga never stores it.
async function externalRefOf(tenantData: ForgetPeers['tenantData'], tenantId: string, subjectId: string): Promise<string> {
  try {
    return (await tenantData.getSubject({ tenantId, subjectId })).subject?.externalRef ?? '';
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.NotFound) return '';
    throw err;
  }
}

/** ForgetStepError says which step of the saga failed; cause is the peer's error. */
export class ForgetStepError extends Error {
  readonly step: string;
  constructor(step: string, cause: unknown) {
    super(`forget step ${step} failed`, { cause });
    this.name = 'ForgetStepError';
    this.step = step;
  }
}

/** ForgetDeps are what the saga needs. */
export interface ForgetDeps {
  readonly db: Kysely<LifecycleDb>;
  readonly peers: ForgetPeers;
}

/**
 * runForget runs (or resumes) a job claimed under `token` to its end and returns the finished job.
 * Each step is recorded as started before its work and as done after it: a step found started but
 * not done was interrupted (its worker died, or its call failed without a known outcome: its
 * service may have removed rows whose count was never recorded), and the receipt says so. signal
 * aborts between steps (the lease was lost).
 */
export async function runForget(deps: ForgetDeps, job: PrivacyJob, token: string, signal?: AbortSignal): Promise<PrivacyJob> {
  const tenantId = job.tenant_id;
  const subjectId = job.subject_id ?? undefined;
  const steps: Steps = { ...job.steps };
  const done = new Set<string>(steps.done ?? []);
  const started = new Set<string>(steps.started ?? []);
  const interrupted = new Set<string>((steps.interrupted as string[] | undefined) ?? []);
  const save = () => withTenant(deps.db, tenantId, (trx) => saveSteps(trx, job.id, token, steps));
  const order = (names: Set<string>) => FORGET_STEPS.filter((n) => names.has(n));
  const step = async (name: (typeof FORGET_STEPS)[number], work: () => Promise<Record<string, unknown>>): Promise<void> => {
    if (done.has(name)) return;
    signal?.throwIfAborted();
    if (started.has(name)) interrupted.add(name);
    started.add(name);
    steps.started = order(started);
    steps.interrupted = order(interrupted);
    await save();
    let result: Record<string, unknown>;
    try {
      result = await work();
    } catch (err) {
      throw new ForgetStepError(name, err);
    }
    signal?.throwIfAborted();
    Object.assign(steps, result);
    done.add(name);
    steps.done = order(done);
    await save();
  };
  // An unknown person runs the same steps with nothing to do, so the job looks the same either way.
  await step('inventory', async () => {
    if (subjectId === undefined) return { conversationIds: [] };
    return { conversationIds: await subjectConversationIds(deps.peers.tenantData, tenantId, subjectId) };
  });
  const conversationIds = (steps.conversationIds as string[] | undefined) ?? [];
  await step('shred_subject_key', async () => {
    if (subjectId === undefined) return { subjectKeyDestroyed: false };
    const r = await deps.peers.secrets.shredSubjectKey({ tenantId, subjectId });
    return { subjectKeyDestroyed: r.shredded || r.alreadyShredded };
  });
  await step('identity_sessions', async () => {
    if (subjectId === undefined) return { sessions: 0 };
    const ref = await externalRefOf(deps.peers.tenantData, tenantId, subjectId);
    // By reference (sessions the customer created for them) and by id (outbound calls placed to them).
    try {
      return {
        sessions: (await deps.peers.identity.forgetSubjectSessions({ tenantId, subjectRef: ref, subjectId }, ERASURE_CALL)).deleted,
      };
    } catch (err) {
      // An identity of the previous release knows no subject_id and refuses an empty reference: it
      // has no call sessions naming the person either (it never recorded one), so nothing is left.
      if (ref === '' && err instanceof ConnectError && err.code === Code.InvalidArgument) return { sessions: 0 };
      throw err;
    }
  });
  await step('webhook_deliveries', async () => {
    if (subjectId === undefined) return { webhookDeliveries: 0 };
    const r = await deps.peers.integrations.forgetDeliveries({ tenantId, conversationIds, subjectId }, ERASURE_CALL);
    return { webhookDeliveries: r.deleted };
  });
  await step('access_events', async () => {
    if (conversationIds.length === 0) return { accessEvents: 0 };
    return { accessEvents: (await deps.peers.secrets.forgetAccessEvents({ tenantId, conversationIds }, ERASURE_CALL)).deleted };
  });
  await step('tenant_data', async () => {
    if (subjectId === undefined)
      return { tenantData: { subjectDeleted: false, conversations: 0, transcriptTurns: 0, recordings: 0, recordingBlobs: 0 } };
    const r = await deps.peers.tenantData.forgetSubject({ tenantId, subjectId }, ERASURE_CALL);
    return {
      tenantData: {
        subjectDeleted: r.subjectDeleted,
        conversations: r.conversations,
        transcriptTurns: r.transcriptTurns,
        recordings: r.recordings,
        recordingBlobs: r.blobKeys.length,
      },
    };
  });
  signal?.throwIfAborted();
  // The receipt is built from what the steps persisted, once; a resumed run signs the same text.
  // It names the job, not the person, and holds no found/not-found flag: it goes to the operator
  // (privacy:run), who hands it to the person; a privacy:read reader never sees it.
  if (typeof steps.receipt !== 'string') {
    steps.receipt = JSON.stringify({
      schema: RECEIPT_SCHEMA,
      jobId: job.id,
      tenantId,
      requestedAt: job.created_at.toISOString(),
      completedAt: new Date().toISOString(),
      removed: [
        {
          service: 'secrets',
          step: 'shred_subject_key',
          what: "the subject's data key (crypto-shredding: every ciphertext under it is unreadable)",
          destroyed: steps.subjectKeyDestroyed === true,
        },
        {
          service: 'identity',
          step: 'identity_sessions',
          what: "session tokens issued with the person's reference",
          count: steps.sessions ?? 0,
        },
        {
          service: 'integrations',
          step: 'webhook_deliveries',
          what: 'webhook deliveries naming the person or their conversations',
          count: steps.webhookDeliveries ?? 0,
        },
        {
          service: 'secrets',
          step: 'access_events',
          what: "records of provider keys resolved for the person's conversations",
          count: steps.accessEvents ?? 0,
        },
        {
          service: 'tenant-data',
          step: 'tenant_data',
          what: 'subject record, conversations, transcript turns, recording references, guardrail state',
          counts: steps.tenantData ?? null,
        },
      ],
      // A step retried after an interrupted attempt may have removed rows in that attempt whose
      // count was never recorded: its count is a lower bound; the removal itself is complete.
      interrupted: steps.interrupted ?? [],
      kept: 'audit events about the person stay in the append-only audit log; they hold random ids only, which no longer lead to any record',
    });
    await save();
  }
  const receipt = steps.receipt as string;
  const sha256 = sha256Hex(receipt);
  const signed = await deps.peers.audit.signStatement({ tenantId, kind: 'deletion-receipt', sha256 }).catch((err: unknown) => {
    throw new ForgetStepError('receipt', err);
  });
  signal?.throwIfAborted();
  done.add('receipt');
  steps.done = order(done);
  steps.signedAt = signed.signedAt === undefined ? null : timestampDate(signed.signedAt).toISOString();
  // The inventory was only the saga's working list; the receipt says what was removed.
  delete steps.conversationIds;
  return withTenant(deps.db, tenantId, (trx) =>
    finishForget(trx, job.id, token, steps, { sha256, keyId: signed.keyId, signature: signed.signature, statement: signed.statement }),
  );
}
