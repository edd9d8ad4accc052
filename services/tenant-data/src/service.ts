import type { JsonObject, MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { auditDetails, auditedTransactions, type RecordAudit } from '@parley/audit-outbox';
import { nextPageToken, pageRequestOf, requireUuid, withTenant, type TenantTransaction } from '@parley/db';
import { InvalidArgumentError, principalOf, requestTenant } from '@parley/platform';
import type {
  AgentSchema,
  ConversationSchema,
  RecordingSchema,
  SubjectSchema,
  TenantDataService,
  TranscriptTurnSchema,
  WorkspaceSchema,
} from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { agentChanged, agentCreated, agentDeleted, changeActor, policyReplaced, readActor } from './audit.js';
import { createAgent, deleteAgent, getAgent, listAgents, setGuardrailPolicy, updateAgent, type AgentPatch } from './agent.store.js';
import {
  appendTranscriptTurn,
  endConversation,
  getConversation,
  listConversations,
  listTranscriptTurns,
  startConversation,
} from './conversation.store.js';
import type { Agent, Conversation, Recording, Subject, TenantDataDb, TranscriptTurn, Workspace } from './db/tables.js';
import { runDryRun } from './guardrail-dry-run.js';
import { getGuardrailState, putGuardrailState } from './guardrail-state.store.js';
import { addRecording, listRecordings } from './recording.store.js';
import { requireOwnSecrets, type SecretDirectory } from './secret-directory.js';
import { createSubject, findSubjectByContact, findSubjectByExternalRef, getSubject } from './subject.store.js';
import { ensureWorkspaceCreated, getWorkspace } from './workspace.store.js';

type Trx = TenantTransaction<TenantDataDb>;

/** TenantDataDeps are what the handlers need; main.ts builds them from the configuration. */
export interface TenantDataDeps {
  /** db connects as parley_tenant_data (row-level security applies). */
  readonly db: Kysely<TenantDataDb>;
  /** subjectHashPepper keys the look-up hashes of subjects' phone numbers and e-mail addresses. */
  readonly subjectHashPepper: Uint8Array;
  /** secrets tells whether an agent's secret_refs name secrets of its tenant (the secrets service). */
  readonly secrets: SecretDirectory;
  /** onAudit is told after a transaction that recorded an audit event committed (wakes the outbox relay). */
  readonly onAudit?: () => void;
}

/** blank turns proto3's empty string (unset) into undefined. */
const blank = (value: string): string | undefined => (value === '' ? undefined : value);

const ts = (d: Date) => timestampFromDate(d);

function workspaceMessage(w: Workspace): MessageInitShape<typeof WorkspaceSchema> {
  return { id: w.id, name: w.name, createdAt: ts(w.created_at) };
}

function agentMessage(a: Agent): MessageInitShape<typeof AgentSchema> {
  return {
    id: a.id,
    tenantId: a.tenant_id,
    name: a.name,
    prompt: a.prompt,
    voice: a.voice as JsonObject,
    providerSettings: a.provider_settings as JsonObject,
    secretRefs: a.secret_refs,
    guardrailPolicy: a.guardrail_policy as unknown as JsonObject,
    policyVersion: a.policy_version,
    createdAt: ts(a.created_at),
    updatedAt: ts(a.updated_at),
  };
}

function subjectMessage(s: Subject): MessageInitShape<typeof SubjectSchema> {
  return {
    id: s.id,
    tenantId: s.tenant_id,
    externalRef: s.external_ref ?? '',
    hasPhone: s.phone_hash !== null,
    hasEmail: s.email_hash !== null,
    retentionClass: s.retention_class,
    createdAt: ts(s.created_at),
  };
}

function conversationMessage(c: Conversation): MessageInitShape<typeof ConversationSchema> {
  return {
    id: c.id,
    tenantId: c.tenant_id,
    agentId: c.agent_id,
    subjectId: c.subject_id ?? '',
    state: c.state,
    startedAt: ts(c.started_at),
    ...(c.ended_at === null ? {} : { endedAt: ts(c.ended_at) }),
    endReason: c.end_reason ?? '',
  };
}

function turnMessage(t: TranscriptTurn): MessageInitShape<typeof TranscriptTurnSchema> {
  return { conversationId: t.conversation_id, seq: t.seq, role: t.role, textRedacted: t.text_redacted, createdAt: ts(t.created_at) };
}

function recordingMessage(r: Recording): MessageInitShape<typeof RecordingSchema> {
  return {
    id: r.id,
    conversationId: r.conversation_id,
    blobKey: r.blob_key,
    durationMs: r.duration_ms,
    dataClass: r.data_class,
    createdAt: ts(r.created_at),
  };
}

/**
 * createTenantDataService builds the handlers of parley.tenantdata.v1.TenantDataService. Every
 * handler runs in one withTenant transaction for the request's tenant (requestTenant: a forwarded
 * principal's own, else tenant_id), so row-level security scopes it and a failed call writes
 * nothing. Another tenant's ids are NOT_FOUND, like unknown ones.
 */
export function createTenantDataService(deps: TenantDataDeps): ServiceImpl<typeof TenantDataService> {
  const { db, subjectHashPepper: pepper } = deps;

  const inTransaction = auditedTransactions(db, deps.onAudit);

  /** inTenant runs fn in the transaction of the request's tenant. */
  const inTenant = <T>(tenantId: string, ctx: HandlerContext, fn: (trx: Trx) => Promise<T>): Promise<T> =>
    withTenant(db, requestTenant(ctx, tenantId), fn);

  /** audited is inTenant for a handler that records audit events, each through `record` in the same transaction. */
  const audited = <T>(
    tenantId: string,
    ctx: HandlerContext,
    fn: (trx: Trx, record: RecordAudit, tenant: string) => Promise<T>,
  ): Promise<T> => {
    const tenant = requestTenant(ctx, tenantId);
    return inTransaction(tenant, (trx, record) => fn(trx, record, tenant));
  };

  return {
    async createWorkspace(req, ctx) {
      const tenantId = req.tenantId === '' ? randomUUID() : req.tenantId;
      const workspace = await audited(tenantId, ctx, async (trx, record, tenant) => {
        const { workspace: w, created } = await ensureWorkspaceCreated(trx, { name: req.name });
        // A retried bootstrap finds its workspace: one creation, one event.
        if (created) {
          await record({
            ...changeActor(ctx, tenant),
            action: 'workspace.create',
            target: { type: 'workspace', id: w.id },
            details: auditDetails({ name: w.name }, ['name']),
          });
        }
        return w;
      });
      return { workspace: workspaceMessage(workspace) };
    },

    async getWorkspace(req, ctx) {
      return { workspace: workspaceMessage(await inTenant(req.tenantId, ctx, (trx) => getWorkspace(trx))) };
    },

    async createAgent(req, ctx) {
      await requireOwnSecrets(deps.secrets, requestTenant(ctx, req.tenantId), req.secretRefs);
      const agent = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const created = await createAgent(trx, {
          name: req.name,
          prompt: req.prompt,
          ...(req.voice === undefined ? {} : { voice: req.voice }),
          ...(req.providerSettings === undefined ? {} : { providerSettings: req.providerSettings }),
          secretRefs: req.secretRefs,
          ...(req.guardrailPolicy === undefined ? {} : { guardrailPolicy: req.guardrailPolicy }),
        });
        await record({
          ...changeActor(ctx, tenant),
          action: 'agent.create',
          target: { type: 'agent', id: created.id },
          details: agentCreated(created),
        });
        return created;
      });
      return { agent: agentMessage(agent) };
    },

    async getAgent(req, ctx) {
      return { agent: agentMessage(await inTenant(req.tenantId, ctx, (trx) => getAgent(trx, req.agentId))) };
    },

    async listAgents(req, ctx) {
      const page = await inTenant(req.tenantId, ctx, (trx) => listAgents(trx, pageRequestOf(req)));
      return { agents: page.items.map(agentMessage), nextPageToken: nextPageToken(page) };
    },

    async updateAgent(req, ctx) {
      if (!req.replaceSecretRefs && Object.keys(req.secretRefs).length > 0) {
        throw new InvalidArgumentError(
          'secret_refs is set but replace_secret_refs is false: set replace_secret_refs to replace the whole map',
          { field: 'replace_secret_refs' },
        );
      }
      if (req.replaceSecretRefs) await requireOwnSecrets(deps.secrets, requestTenant(ctx, req.tenantId), req.secretRefs);
      const patch: AgentPatch = {
        ...(req.name === undefined ? {} : { name: req.name }),
        ...(req.prompt === undefined ? {} : { prompt: req.prompt }),
        ...(req.voice === undefined ? {} : { voice: req.voice }),
        ...(req.providerSettings === undefined ? {} : { providerSettings: req.providerSettings }),
        ...(req.replaceSecretRefs ? { secretRefs: req.secretRefs } : {}),
      };
      const agent = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const before = await getAgent(trx, req.agentId, { forUpdate: true });
        const after = await updateAgent(trx, before.id, patch);
        await record({
          ...changeActor(ctx, tenant),
          action: 'agent.update',
          target: { type: 'agent', id: after.id },
          details: agentChanged(before, after),
        });
        return after;
      });
      return { agent: agentMessage(agent) };
    },

    async deleteAgent(req, ctx) {
      await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const agent = await getAgent(trx, req.agentId, { forUpdate: true });
        await deleteAgent(trx, agent.id);
        await record({
          ...changeActor(ctx, tenant),
          action: 'agent.delete',
          target: { type: 'agent', id: agent.id },
          details: agentDeleted(agent),
        });
      });
      return {};
    },

    async setGuardrailPolicy(req, ctx) {
      if (req.guardrailPolicy === undefined) {
        throw new InvalidArgumentError('guardrail_policy is required: send the whole policy document ({"version": 1, ...})', {
          field: 'guardrail_policy',
        });
      }
      const policy = req.guardrailPolicy;
      const expected = req.expectedPolicyVersion === 0 ? undefined : req.expectedPolicyVersion;
      const agent = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const before = await getAgent(trx, req.agentId, { forUpdate: true });
        const after = await setGuardrailPolicy(trx, before.id, policy, expected);
        await record({
          ...changeActor(ctx, tenant),
          action: 'guardrail_policy.set',
          target: { type: 'agent', id: after.id },
          details: policyReplaced(before, after),
        });
        return after;
      });
      return { agent: agentMessage(agent) };
    },

    async testGuardrailPolicy(req, ctx) {
      const source = req.policy;
      const tenantId = requestTenant(ctx, req.tenantId);
      const agent = await inTenant(tenantId, ctx, (trx) =>
        source.case === 'agentId' ? getAgent(trx, source.value) : Promise.resolve(undefined),
      );
      if (agent === undefined && source.case !== 'guardrailPolicy') {
        throw new InvalidArgumentError('agent_id or guardrail_policy is required: name a stored agent or send a policy document', {
          field: 'agent_id',
        });
      }
      return runDryRun({
        document: agent?.guardrail_policy ?? source.value,
        documentField: 'guardrail_policy',
        policyVersion: agent?.policy_version ?? 0,
        now: req.now === undefined ? undefined : timestampDate(req.now),
        timeZone: req.timeZone,
        tenantId,
        state: req.state,
        events: req.events,
      });
    },

    async createSubject(req, ctx) {
      const subject = await inTenant(req.tenantId, ctx, (trx) =>
        createSubject(
          trx,
          {
            ...(blank(req.externalRef) === undefined ? {} : { externalRef: req.externalRef }),
            ...(blank(req.phone) === undefined ? {} : { phone: req.phone }),
            ...(blank(req.email) === undefined ? {} : { email: req.email }),
          },
          pepper,
        ),
      );
      return { subject: subjectMessage(subject) };
    },

    async getSubject(req, ctx) {
      return { subject: subjectMessage(await inTenant(req.tenantId, ctx, (trx) => getSubject(trx, req.subjectId))) };
    },

    async findSubject(req, ctx) {
      const given = (['external_ref', 'phone', 'email'] as const).filter((f) => (f === 'external_ref' ? req.externalRef : req[f]) !== '');
      if (given.length !== 1) {
        throw new InvalidArgumentError(
          `give exactly one of external_ref, phone, email (got ${given.length === 0 ? 'none' : given.join(', ')})`,
          { field: 'external_ref' },
        );
      }
      const subject = await inTenant(req.tenantId, ctx, (trx) => {
        if (req.externalRef !== '') return findSubjectByExternalRef(trx, req.externalRef);
        return findSubjectByContact(trx, req.phone !== '' ? { phone: req.phone } : { email: req.email }, pepper);
      });
      return { subject: subjectMessage(subject) };
    },

    async startConversation(req, ctx) {
      const conversation = await inTenant(req.tenantId, ctx, (trx) =>
        startConversation(trx, {
          agentId: req.agentId,
          ...(blank(req.subjectId) === undefined ? {} : { subjectId: req.subjectId }),
          ...(blank(req.conversationId) === undefined ? {} : { conversationId: req.conversationId }),
        }),
      );
      return { conversation: conversationMessage(conversation) };
    },

    async getConversation(req, ctx) {
      return { conversation: conversationMessage(await inTenant(req.tenantId, ctx, (trx) => getConversation(trx, req.conversationId))) };
    },

    async listConversations(req, ctx) {
      const page = await inTenant(req.tenantId, ctx, (trx) =>
        listConversations(trx, {
          ...pageRequestOf(req),
          ...(blank(req.agentId) === undefined ? {} : { agentId: req.agentId }),
          ...(blank(req.subjectId) === undefined ? {} : { subjectId: req.subjectId }),
          // An unknown state is refused by the store's validation (INVALID_ARGUMENT naming it).
          ...(blank(req.state) === undefined ? {} : { state: req.state as 'live' | 'ended' }),
          ...(req.startedAfter === undefined ? {} : { startedAfter: timestampDate(req.startedAfter) }),
          ...(req.startedBefore === undefined ? {} : { startedBefore: timestampDate(req.startedBefore) }),
        }),
      );
      return { conversations: page.items.map(conversationMessage), nextPageToken: nextPageToken(page) };
    },

    async endConversation(req, ctx) {
      // An operator ending a call (forwarded by the edge) is a privileged action: one audit event in
      // the same transaction. The orchestrator ending its own conversations records none.
      const operator = principalOf(ctx);
      if (operator === undefined) {
        const conversation = await inTenant(req.tenantId, ctx, (trx) => endConversation(trx, req.conversationId, blank(req.endReason)));
        return { conversation: conversationMessage(conversation) };
      }
      const conversation = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const ended = await endConversation(trx, req.conversationId, blank(req.endReason));
        await record({
          ...changeActor(ctx, tenant),
          action: 'conversation.end',
          target: { type: 'conversation', id: ended.id },
          // The reason is the operator's free text: recorded as set, not its words.
          details: auditDetails({ end_reason: ended.end_reason }, []),
        });
        return ended;
      });
      return { conversation: conversationMessage(conversation) };
    },

    async appendTranscriptTurn(req, ctx) {
      const turn = await inTenant(req.tenantId, ctx, (trx) =>
        appendTranscriptTurn(trx, req.conversationId, { role: req.role as TranscriptTurn['role'], textRedacted: req.textRedacted }),
      );
      return { turn: turnMessage(turn) };
    },

    async getGuardrailState(req, ctx) {
      const state = await inTenant(req.tenantId, ctx, (trx) =>
        getGuardrailState(trx, { conversationId: req.conversationId, subjectId: req.subjectId }),
      );
      return state === undefined ? { found: false } : { found: true, state: state as unknown as JsonObject };
    },

    async putGuardrailState(req, ctx) {
      if (req.state === undefined)
        throw new InvalidArgumentError('state is required: the guardrail state ({"version": 1, "conversation": …, "person": …})', {
          field: 'state',
        });
      const state = req.state;
      await inTenant(req.tenantId, ctx, (trx) =>
        putGuardrailState(trx, { conversationId: req.conversationId, subjectId: req.subjectId }, state),
      );
      return {};
    },

    async listTranscriptTurns(req, ctx) {
      // An access event per page read: the turns are redacted, but still what the end user said.
      const page = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const turns = await listTranscriptTurns(trx, req.conversationId, pageRequestOf(req));
        const conversationId = requireUuid(req.conversationId, 'conversation_id');
        await record({
          ...readActor(ctx, tenant),
          action: 'transcript.read',
          target: { type: 'conversation', id: conversationId },
          details: auditDetails(
            { turns: turns.items.length, first_seq: turns.items[0]?.seq ?? null, more: turns.nextCursor !== undefined },
            ['turns', 'first_seq', 'more'],
          ),
        });
        return turns;
      });
      return { turns: page.items.map(turnMessage), nextPageToken: nextPageToken(page) };
    },

    async addRecording(req, ctx) {
      const recording = await inTenant(req.tenantId, ctx, (trx) =>
        addRecording(trx, {
          conversationId: req.conversationId,
          blobKey: req.blobKey,
          durationMs: req.durationMs,
          dataClass: req.dataClass as Recording['data_class'],
        }),
      );
      return { recording: recordingMessage(recording) };
    },

    async listRecordings(req, ctx) {
      // One access event per recording listed: each reference is what lets its audio be fetched.
      const page = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const recordings = await listRecordings(trx, req.conversationId, pageRequestOf(req));
        const acting = readActor(ctx, tenant);
        for (const r of recordings.items) {
          await record({
            ...acting,
            action: 'recording.read',
            target: { type: 'recording', id: r.id },
            details: auditDetails({ conversation_id: r.conversation_id, data_class: r.data_class }, ['conversation_id', 'data_class']),
          });
        }
        return recordings;
      });
      return { recordings: page.items.map(recordingMessage), nextPageToken: nextPageToken(page) };
    },
  };
}
