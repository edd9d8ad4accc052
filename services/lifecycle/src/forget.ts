// The DSAR forget saga. Its steps are persisted on the job as they finish, each is idempotent, and
// a job whose worker died (SIGKILL, a lost pod) is taken over when its lease ends, so it resumes at
// the first unfinished step; a service that is down fails its step, and the job waits for the next
// attempt rather than finishing with a step missing. The subject key is shredded first: from then
// on the person's ciphertexts (in any table, and in backups once the KEK is rotated) cannot be read.
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { withTenant } from '@parley/db';
import type { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type { Kysely } from 'kysely';
import type { LifecycleDb, PrivacyJob } from './db/tables.js';
import { sha256Hex } from './export.js';
import { finishForget, saveSteps } from './privacy.store.js';

/** FORGET_STEPS are the saga's steps in order. */
export const FORGET_STEPS = ['inventory', 'shred_subject_key', 'webhook_deliveries', 'tenant_data', 'receipt'] as const;

/** ForgetPeers are the RPCs the saga calls (allow-listed to lifecycle). */
export interface ForgetPeers {
  readonly tenantData: Pick<Client<typeof TenantDataService>, 'listConversations' | 'forgetSubject'>;
  readonly secrets: Pick<Client<typeof SecretsService>, 'shredSubjectKey'>;
  readonly integrations: Pick<Client<typeof IntegrationsService>, 'forgetDeliveries'>;
  readonly audit: Pick<Client<typeof AuditService>, 'signStatement'>;
}

/** RECEIPT_SCHEMA names the deletion receipt's format. */
export const RECEIPT_SCHEMA = 'parley.deletion-receipt/v1';

type Steps = Record<string, unknown> & { done?: string[] };

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

/** runForget runs (or resumes) a claimed forget job to its end and returns the finished job. */
export async function runForget(
  deps: { readonly db: Kysely<LifecycleDb>; readonly peers: ForgetPeers },
  job: PrivacyJob,
): Promise<PrivacyJob> {
  const tenantId = job.tenant_id;
  const subjectId = job.subject_id ?? undefined;
  const steps: Steps = { ...job.steps };
  const done = new Set<string>(steps.done ?? []);
  const step = async (name: string, work: () => Promise<Record<string, unknown>>): Promise<void> => {
    if (done.has(name)) return;
    Object.assign(steps, await work());
    done.add(name);
    steps.done = FORGET_STEPS.filter((s) => done.has(s));
    await withTenant(deps.db, tenantId, (trx) => saveSteps(trx, job.id, steps));
  };
  await step('inventory', async () => {
    if (subjectId === undefined) return { conversationIds: [] };
    return { conversationIds: await subjectConversationIds(deps.peers.tenantData, tenantId, subjectId) };
  });
  const conversationIds = (steps.conversationIds as string[] | undefined) ?? [];
  await step('shred_subject_key', async () => {
    if (subjectId === undefined) return { subjectKeyDestroyed: false };
    const r = await deps.peers.secrets.shredSubjectKey({ tenantId, subjectId });
    return { subjectKeyDestroyed: r.shredded || steps.subjectKeyDestroyed === true };
  });
  await step('webhook_deliveries', async () => {
    if (subjectId === undefined) return { webhookDeliveries: 0 };
    const r = await deps.peers.integrations.forgetDeliveries({ tenantId, conversationIds, subjectId });
    return { webhookDeliveries: r.deleted };
  });
  await step('tenant_data', async () => {
    if (subjectId === undefined) return { tenantData: null };
    const r = await deps.peers.tenantData.forgetSubject({ tenantId, subjectId });
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
  // The receipt is built from what the steps persisted, once; a resumed run signs the same text.
  if (typeof steps.receipt !== 'string') {
    steps.receipt = JSON.stringify({
      schema: RECEIPT_SCHEMA,
      jobId: job.id,
      tenantId,
      // The subject's id is a random UUID: it names the person to the workspace that knows them, to nobody else.
      subjectId: subjectId ?? null,
      subjectFound: subjectId !== undefined,
      requestedAt: job.created_at.toISOString(),
      completedAt: new Date().toISOString(),
      removed: [
        {
          service: 'secrets',
          what: "the subject's data key (crypto-shredding: every ciphertext under it is unreadable)",
          destroyed: steps.subjectKeyDestroyed === true,
        },
        {
          service: 'integrations',
          what: 'webhook deliveries naming the person or their conversations',
          count: steps.webhookDeliveries ?? 0,
        },
        {
          service: 'tenant-data',
          what: 'subject record, conversations, transcript turns, recording references, guardrail state',
          counts: steps.tenantData ?? null,
        },
      ],
      kept: 'audit events about the person stay in the append-only audit log; they hold ids only',
    });
    await withTenant(deps.db, tenantId, (trx) => saveSteps(trx, job.id, steps));
  }
  const receipt = steps.receipt as string;
  const sha256 = sha256Hex(receipt);
  const signed = await deps.peers.audit.signStatement({ tenantId, kind: 'deletion-receipt', sha256 });
  done.add('receipt');
  steps.done = FORGET_STEPS.filter((s) => done.has(s));
  steps.signedAt = signed.signedAt === undefined ? null : timestampDate(signed.signedAt).toISOString();
  // The inventory was only the saga's working list; the receipt says what was removed.
  delete steps.conversationIds;
  return withTenant(deps.db, tenantId, (trx) =>
    finishForget(trx, job.id, steps, { sha256, keyId: signed.keyId, signature: signed.signature, statement: signed.statement }),
  );
}
