import { withTenant } from '@parley/db';
import {
  addRecording,
  appendTranscriptTurn,
  createAgent,
  createSubject,
  createWorkspace,
  putGuardrailState,
  recordGuardrailDecision,
  recordTurns,
  startConversation,
  type TenantDataDb,
} from '@parley/tenant-data';
import type { Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';

/** SEED_PEPPER is the contact-hash pepper the tenant-data seed uses (tests look subjects up with it). */
export const SEED_PEPPER = Buffer.alloc(32, 7);

/** SEED_RECORDING_KEY is the seed's recording key as secrets seals one (conversation:v2:<base64url JSON>) at KEK version 1. */
export const SEED_RECORDING_KEY = `conversation:v2:${Buffer.from(
  JSON.stringify({ c: 'c2VlZA', n: 'bm9uY2U', w: 'local:v1:AAAA', v: 1 }),
).toString('base64url')}`;

/** TenantDataSeed holds the ids the store tests use to reach across tenants. */
export interface TenantDataSeed {
  agentId: string;
  conversationId: string;
  subjectId: string;
}

/** seedTenantData creates one row in every tenant-data table for a tenant, through the stores. */
export async function seedTenantData(db: Kysely<unknown>, tenant: string): Promise<TenantDataSeed> {
  return withTenant(db as Kysely<TenantDataDb>, tenant, async (trx) => {
    await createWorkspace(trx, { name: `workspace ${tenant.slice(0, 8)}` });
    const agent = await createAgent(trx, { name: 'support', prompt: 'Be kind.', secretRefs: { llm: randomUUID() } });
    const subject = await createSubject(
      trx,
      { externalRef: `crm-${tenant}`, phone: '+49 151 1234 5678', email: 'Ada@Example.com' },
      SEED_PEPPER,
    );
    const conversation = await startConversation(trx, { agentId: agent.id, subjectId: subject.id });
    await appendTranscriptTurn(trx, conversation.id, { seq: 0, role: 'user', textRedacted: 'my number is [PHONE]' });
    await addRecording(trx, {
      conversationId: conversation.id,
      blobKey: `rec/${tenant}/0.opus`,
      durationMs: 1200,
      dataClass: 'audio_redacted',
    });
    // A recording with its own key, sealed at KEK version 1 (the form secrets seals it in, with
    // stand-in ciphertext): what list_recording_key_tenants counts.
    await addRecording(trx, {
      conversationId: conversation.id,
      blobKey: `recordings/${tenant}/${conversation.id}/0.pra`,
      durationMs: 1200,
      dataClass: 'audio_redacted',
      wrappedKey: SEED_RECORDING_KEY,
    });
    await putGuardrailState(
      trx,
      { conversationId: conversation.id, subjectId: subject.id },
      {
        version: 1,
        conversation: {
          startedAt: 0,
          turns: 1,
          toolCallsThisTurn: 0,
          misunderstandings: 0,
          consecutiveFailures: 0,
          policyHits: 0,
          topics: {},
          ended: false,
        },
        person: { contactAttempts: [], topicMentions: { upsell: [0] } },
      },
    );
    await recordGuardrailDecision(trx, {
      conversationId: conversation.id,
      turn: 1,
      rule: 'no_go:medical',
      action: 'replace',
      checked: 'assistant',
    });
    // A keyed turn record with nothing in it: only its idempotency key is stored (turn_record_keys).
    await recordTurns(trx, [{ conversationId: conversation.id, turns: [], decisions: [], recordId: randomUUID() }]);
    await trx
      .insertInto('recording_blob_deletions')
      .values({ blob_key: `recordings/${tenant}/${conversation.id}/gone.pra` })
      .execute();
    return { agentId: agent.id, conversationId: conversation.id, subjectId: subject.id };
  });
}
