import { randomUUID } from 'node:crypto';
import type { ServiceImpl } from '@connectrpc/connect';
import { auditDetails, auditedGroupCommit, auditedTransactions, callingService, fromPrincipal } from '@parley/audit-outbox';
import { nextPageToken, pageRequestOf, requireUuid, withTenant } from '@parley/db';
import {
  decryptForSubject,
  encryptForSubject,
  sealSecret,
  type DataKeyCache,
  type DataKeySource,
  type KekProvider,
} from '@parley/envelope';
import {
  callerOf,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  requestTenant,
  type Principal,
  type WebhookEventEmitter,
} from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { scopedPrincipal, type Scope } from '@parley/scopes';
import type { Kysely } from 'kysely';
import { requireLiveConversation, type ConversationDirectory } from './conversation-directory.js';
import type { SecretsDatabase } from './db/tables.js';
import { openResolvedSecret } from './resolved-secret.js';
import { createAuditedSecret } from './secret-create.js';
import { hintOf, toSecretMetadata, validateName } from './secret-fields.js';
import { createConnectionCredentialHandlers } from './connection-credential.service.js';
import { createTelephonyCredentialHandlers } from './telephony-credential.service.js';
import { TOOL_PROVIDER_KIND } from './connection-credential.service.js';
import { createWebhookSecretHandlers, WEBHOOK_PROVIDER_KIND } from './webhook-secret.service.js';
import {
  addSecretVersion,
  currentVersions,
  deleteSecret,
  getSecret,
  listSecrets,
  recordAccess,
  secretKinds,
  type AccessEvent,
} from './secret.store.js';
import { createSubjectRetentionHandlers } from './access-event-retention.js';
import { activeSubjectKey, createRecordingKeyHandlers } from './recording-key.service.js';
import { requireActiveSubjectKey, shredSubjectKey } from './subject-key.store.js';

/** SecretsServiceDeps are the secrets service's dependencies, built by main.ts (or a test). */
export interface SecretsServiceDeps {
  readonly db: Kysely<SecretsDatabase>;
  readonly kek: KekProvider;
  /** keys lends data keys: a DataKeyCache, or uncached when PARLEY_DEK_CACHE=off. */
  readonly keys: DataKeySource;
  /** cache is the same DataKeyCache as keys (to wipe destroyed keys), if there is one. */
  readonly cache: DataKeyCache | undefined;
  readonly directory: ConversationDirectory;
  /**
   * liveDirectory asks tenant-data itself, never a cache (default: directory). IssueRecordingKey
   * goes by it: once per call, and a conversation that has just ended must get no key, though the
   * notification of its end may still be on its way to the cache.
   */
  readonly liveDirectory?: ConversationDirectory;
  /** versionGraceMs keeps a rotated-away version readable this long. */
  readonly versionGraceMs: number;
  /** onAudit is told after a transaction that recorded an audit event committed (wakes the outbox relay). */
  readonly onAudit?: () => void;
  /** events sends secret.rotated to the workspace's webhooks after the rotation committed. */
  readonly events?: WebhookEventEmitter;
}

/** WRITE_SCOPE is the principal scope PutSecret, RotateSecret and DeleteSecret need. */
export const WRITE_SCOPE: Scope = 'secrets:write';
/** READ_SCOPE is the principal scope ListSecrets and GetSecret need. */
export const READ_SCOPE: Scope = 'agents:read';
/**
 * PROVIDER_KINDS are the kinds an operator may put. Webhook signing secrets are not among them:
 * they are made, rotated and read only through integrations (WebhookService), so neither an
 * operator with secrets:write nor an agent's secret_refs can set or read one.
 */
export const PROVIDER_KINDS: readonly string[] = ['llm', 'stt', 'tts', 'telephony', 'tool'];

/** refuseWebhookSecret keeps the general secrets API off webhook signing secrets. */
function refuseWebhookSecret(row: { id: string; provider_kind: string }, what: string): void {
  if (row.provider_kind === WEBHOOK_PROVIDER_KIND) throw new PermissionDeniedError(`secret ${row.id} is a webhook signing secret; ${what}`);
}

const MAX_VALUE_BYTES = 16 * 1024;
/** RESOLVE_BATCH_MAX bounds how many resolves' records one group-committed transaction holds. */
const RESOLVE_BATCH_MAX = 64;
const MAX_SUBJECT_PLAINTEXT_BYTES = 1024 * 1024;
const MAX_LIST_PAGE = 200;

function setByOf(p: Principal): string {
  return `${p.kind}:${p.id}`;
}

function valueBytes(value: string, field: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length === 0 || value.trim().length === 0) {
    bytes.fill(0);
    throw new InvalidArgumentError(`${field} must not be empty`, { field });
  }
  if (bytes.length > MAX_VALUE_BYTES) {
    bytes.fill(0);
    throw new InvalidArgumentError(`${field} must be at most ${MAX_VALUE_BYTES} bytes`, { field });
  }
  return bytes;
}

function validateProviderKind(kind: string): string {
  if (!PROVIDER_KINDS.includes(kind))
    throw new InvalidArgumentError(`provider_kind must be one of ${PROVIDER_KINDS.join(', ')}`, { field: 'provider_kind' });
  return kind;
}

function validatePurpose(purpose: string): string {
  if (purpose.length > 200) throw new InvalidArgumentError('purpose must be at most 200 characters', { field: 'purpose' });
  return purpose;
}

/**
 * createSecretsService builds the RPC handlers. Values are sealed before any transaction opens
 * (a KEK call may take a while) and every plaintext buffer is wiped after use; no handler logs
 * or returns a value except ResolveForConversation's answer to the voice-orchestrator.
 */
export function createSecretsService(deps: SecretsServiceDeps): ServiceImpl<typeof SecretsService> {
  const { db, kek, keys } = deps;

  const audited = auditedTransactions(db, deps.onAudit);
  // Resolves of one tenant that arrive while its last batch commits share the next transaction.
  const recordResolves = auditedGroupCommit<SecretsDatabase, readonly AccessEvent[]>(db, (trx, batch) => recordAccess(trx, batch.flat()), {
    maxItems: RESOLVE_BATCH_MAX,
    what: 'resolve records',
    onAudit: deps.onAudit,
  });

  return {
    async putSecret(req, ctx) {
      const p = scopedPrincipal(ctx, WRITE_SCOPE);
      const name = validateName(req.name);
      const providerKind = validateProviderKind(req.providerKind);
      const plaintext = valueBytes(req.value, 'value');
      const id = randomUUID();
      try {
        const sealed = await sealSecret(kek, { tenantId: p.tenantId, secretId: id, version: 1 }, plaintext);
        const row = await audited(p.tenantId, (trx, record) =>
          createAuditedSecret(
            trx,
            record,
            fromPrincipal(p),
            { id, name, providerKind, hint: hintOf(req.value), setBy: setByOf(p) },
            sealed,
          ),
        );
        return { secret: toSecretMetadata(row) };
      } finally {
        plaintext.fill(0);
      }
    },

    async listSecrets(req, ctx) {
      const p = scopedPrincipal(ctx, READ_SCOPE);
      if (req.pageSize > MAX_LIST_PAGE)
        throw new InvalidArgumentError(`page_size must be at most ${MAX_LIST_PAGE}`, { field: 'page_size' });
      const page = await withTenant(db, p.tenantId, (trx) => listSecrets(trx, pageRequestOf(req)));
      return { secrets: page.items.map(toSecretMetadata), nextPageToken: nextPageToken(page) };
    },

    async getSecret(req, ctx) {
      const p = scopedPrincipal(ctx, READ_SCOPE);
      const row = await withTenant(db, p.tenantId, (trx) => getSecret(trx, req.secretId));
      return { secret: toSecretMetadata(row) };
    },

    async rotateSecret(req, ctx) {
      const p = scopedPrincipal(ctx, WRITE_SCOPE);
      const secretId = requireUuid(req.secretId, 'secret_id');
      const plaintext = valueBytes(req.value, 'value');
      try {
        const current = await withTenant(db, p.tenantId, (trx) => getSecret(trx, secretId));
        refuseWebhookSecret(current, 'rotate it with WebhookService/RotateWebhookSecret');
        if (req.expectedVersion !== 0 && req.expectedVersion !== current.current_version) {
          throw new FailedPreconditionError(
            `secret ${secretId} is at version ${current.current_version}, not ${req.expectedVersion}; read it again and retry`,
          );
        }
        const version = current.current_version + 1;
        const sealed = await sealSecret(kek, { tenantId: p.tenantId, secretId, version }, plaintext);
        const row = await audited(p.tenantId, async (trx, record) => {
          const rotated = await addSecretVersion(trx, {
            secretId,
            expectedVersion: current.current_version,
            sealed,
            hint: hintOf(req.value),
            setBy: setByOf(p),
            graceMs: deps.versionGraceMs,
          });
          await record({
            ...fromPrincipal(p),
            action: 'secret.rotate',
            target: { type: 'secret', id: rotated.id },
            details: auditDetails(
              {
                name: rotated.name,
                version: { from: current.current_version, to: rotated.current_version },
                previous_readable_seconds: Math.round(deps.versionGraceMs / 1000),
              },
              ['name', 'version', 'previous_readable_seconds'],
            ),
          });
          return rotated;
        });
        deps.events?.emit({ tenantId: p.tenantId, type: 'secret.rotated', data: { secret_id: row.id } });
        return { secret: toSecretMetadata(row) };
      } finally {
        plaintext.fill(0);
      }
    },

    async deleteSecret(req, ctx) {
      const p = scopedPrincipal(ctx, WRITE_SCOPE);
      const destroyed = await audited(p.tenantId, async (trx, record) => {
        const secret = await getSecret(trx, req.secretId);
        refuseWebhookSecret(secret, 'it goes with its endpoint (WebhookService/DeleteWebhookEndpoint)');
        const keysDestroyed = await deleteSecret(trx, secret.id);
        await record({
          ...fromPrincipal(p),
          action: 'secret.delete',
          target: { type: 'secret', id: secret.id },
          details: auditDetails({ name: secret.name, provider_kind: secret.provider_kind, versions_destroyed: keysDestroyed.length }, [
            'name',
            'provider_kind',
            'versions_destroyed',
          ]),
        });
        return keysDestroyed;
      });
      for (const wrapped of destroyed) deps.cache?.forget(wrapped);
      return {};
    },

    async secretsExist(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      if (req.secretIds.length < 1 || req.secretIds.length > 16)
        throw new InvalidArgumentError('secret_ids must name 1-16 secrets', { field: 'secret_ids' });
      const ids = req.secretIds.map((id) => requireUuid(id, 'secret_ids'));
      // A webhook signing secret is never an agent's or a connection's: one that named it would be handed it.
      const kinds = await withTenant(db, tenantId, (trx) => secretKinds(trx, ids));
      const unique = [...new Set(ids)];
      const missingIds = unique.filter((id) => kinds.get(id) === undefined || kinds.get(id) === WEBHOOK_PROVIDER_KIND);
      const wrongKindIds =
        req.providerKind === '' ? [] : unique.filter((id) => !missingIds.includes(id) && kinds.get(id) !== req.providerKind);
      return { missingIds, wrongKindIds };
    },

    async resolveForConversation(req, ctx) {
      // The allow-list admits only the voice-orchestrator; checked again here because handing
      // out plaintext is the one thing this service must never do for anyone else.
      const caller = callerOf(ctx);
      if (caller.service !== 'voice-orchestrator') throw new PermissionDeniedError('only the voice-orchestrator may resolve secrets');
      const tenantId = requestTenant(ctx, req.tenantId);
      const conversationId = requireUuid(req.conversationId, 'conversation_id');
      const agentId = requireUuid(req.agentId, 'agent_id');
      const wantedIds = req.secretIds.map((id) => requireUuid(id, 'secret_ids'));

      // One question to tenant-data (or its short-lived cache): the conversation's agent and
      // state with that agent's secret_refs. Nothing is read or opened unless the conversation
      // is the agent's and live.
      const conversation = await deps.directory.getConversationSecretRefs(tenantId, conversationId, ctx.signal);
      requireLiveConversation(conversation, conversationId, agentId, 'secrets');
      const refs = conversation.secretRefs;
      const purposesOf = new Map<string, string[]>();
      for (const [purpose, secretId] of Object.entries(refs)) purposesOf.set(secretId, [...(purposesOf.get(secretId) ?? []), purpose]);
      const wanted = wantedIds.length > 0 ? [...new Set(wantedIds)] : [...purposesOf.keys()];
      for (const id of wanted) {
        if (!purposesOf.has(id))
          throw new PermissionDeniedError(`agent ${agentId} does not reference secret ${id}; add it to the agent's secret_refs first`);
      }

      const actor = callingService(ctx);
      // The read is a transaction of its own and the opening happens outside any transaction; the
      // access and audit records of concurrent resolves are then committed together (group
      // commit), and nothing is answered before the transaction holding this resolve's records
      // committed: a plaintext handed out is a plaintext recorded.
      const rows = await withTenant(db, tenantId, (trx) => currentVersions(trx, wanted));
      const found = new Set(rows.map((r) => r.id));
      const missing = wanted.find((id) => !found.has(id));
      if (missing !== undefined)
        throw new NotFoundError(
          `secret ${missing}, referenced by agent ${agentId}, does not exist; put it again or fix the agent's secret_refs`,
        );
      for (const row of rows) {
        refuseWebhookSecret(row, 'it is never handed to a conversation');
        // A tool credential goes only where its connection points (integrations injects it, and
        // moving it needs secrets:write): an agent naming it as a provider key would send it elsewhere.
        if (row.provider_kind === TOOL_PROVIDER_KIND)
          throw new PermissionDeniedError(
            `secret ${row.id} is a connection's tool credential; it is never handed to a conversation: reference an llm, stt, tts or telephony secret in the agent's secret_refs`,
          );
      }
      const secrets = [];
      const events: AccessEvent[] = [];
      for (const row of rows) {
        const purposes = purposesOf.get(row.id) ?? [];
        secrets.push(await openResolvedSecret(keys, tenantId, row, purposes));
        events.push({ caller: caller.spiffeId, conversationId, agentId, secretId: row.id, secretVersion: row.version, purposes });
      }
      // One access event per plaintext handed out, committed with the access records.
      await recordResolves(
        tenantId,
        events,
        events.map((e) => ({
          tenantId,
          actor,
          action: 'secret.resolve',
          target: { type: 'secret', id: e.secretId },
          details: auditDetails(
            { conversation_id: e.conversationId, agent_id: e.agentId, version: e.secretVersion, purposes: e.purposes },
            ['conversation_id', 'agent_id', 'version', 'purposes'],
          ),
        })),
        // A resolve whose caller is gone is not recorded: nothing is handed out for it.
        ctx.signal,
      );
      return { secrets };
    },

    async encryptForSubject(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      const subjectId = requireUuid(req.subjectId, 'subject_id');
      const purpose = validatePurpose(req.purpose);
      if (req.plaintext.length > MAX_SUBJECT_PLAINTEXT_BYTES)
        throw new InvalidArgumentError('plaintext must be at most 1 MiB', { field: 'plaintext' });
      const wrappedKey = await activeSubjectKey(db, kek, tenantId, subjectId);
      const ciphertext = await encryptForSubject(keys, { wrappedKey }, { tenantId, subjectId, purpose }, req.plaintext);
      return { ciphertext };
    },

    async decryptForSubject(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      const subjectId = requireUuid(req.subjectId, 'subject_id');
      const purpose = validatePurpose(req.purpose);
      const wrappedKey = await withTenant(db, tenantId, (trx) => requireActiveSubjectKey(trx, subjectId));
      const plaintext = await decryptForSubject(keys, { wrappedKey }, { tenantId, subjectId, purpose }, req.ciphertext);
      return { plaintext };
    },

    async shredSubjectKey(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      const subjectId = requireUuid(req.subjectId, 'subject_id');
      const actor = callingService(ctx);
      const outcome = await audited(tenantId, async (trx, record) => {
        const result = await shredSubjectKey(trx, subjectId);
        // A repeated shred (a retried DSAR job) changes nothing and records nothing.
        if (result.changed) {
          await record({
            tenantId,
            actor,
            action: 'subject_key.shred',
            target: { type: 'subject', id: subjectId },
            details: auditDetails({ had_data_key: result.destroyedKey !== undefined }, ['had_data_key']),
          });
        }
        return result;
      });
      if (outcome.destroyedKey !== undefined) deps.cache?.forget(outcome.destroyedKey);
      return { shredded: outcome.destroyedKey !== undefined, alreadyShredded: !outcome.changed };
    },

    ...createSubjectRetentionHandlers(db),

    ...createRecordingKeyHandlers({ db, kek, keys, directory: deps.liveDirectory ?? deps.directory }),
    ...createWebhookSecretHandlers({ kek, keys, audited }),
    ...createConnectionCredentialHandlers({ keys, directory: deps.directory, audited }),
    ...createTelephonyCredentialHandlers({ keys, directory: deps.directory, audited }),
  };
}
