// The DSAR export: everything Parley holds about one person, collected from each owning service
// through its internal RPCs (lifecycle reads no other schema), as one JSON document with a
// manifest of sources; its SHA-256 is signed by the audit checkpoint key, and it is kept sealed
// until its one download.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { Client } from '@connectrpc/connect';
import { SEALED_PREFIX, transcriptPurpose } from '@parley/conversation';
import type { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/** EXPORT_SCHEMA names the bundle's format (documented in README, "DSAR export bundle"). */
export const EXPORT_SCHEMA = 'parley.dsar-export/v1';

/** ExportPeers are the RPCs an export reads through (mTLS clients; allow-listed to lifecycle). */
export interface ExportPeers {
  readonly tenantData: Pick<
    Client<typeof TenantDataService>,
    'getSubject' | 'listConversations' | 'listTranscriptTurns' | 'listRecordings'
  >;
  readonly secrets: Pick<Client<typeof SecretsService>, 'decryptForSubject'>;
  readonly integrations: Pick<Client<typeof IntegrationsService>, 'listDeliveriesFor'>;
  readonly audit: Pick<Client<typeof AuditService>, 'listEvents' | 'signStatement'>;
}

const iso = (t: Timestamp | undefined): string | null => (t === undefined ? null : timestampDate(t).toISOString());

async function allPages<T>(fetch: (pageToken: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let token = '';
  do {
    const page = await fetch(token);
    out.push(...page.items);
    token = page.next;
  } while (token !== '');
  return out;
}

/** ManifestEntry says what one source contributed. */
export interface ManifestEntry {
  readonly source: string;
  readonly rpc: string;
  readonly contents: string;
  readonly count: number;
}

/** ExportBundle is the document (see README for every field). */
export interface ExportBundle {
  readonly schema: typeof EXPORT_SCHEMA;
  readonly jobId: string;
  readonly tenantId: string;
  readonly generatedAt: string;
  readonly subjectFound: boolean;
  readonly subject: Record<string, unknown> | null;
  readonly contactRecords: Record<string, unknown> | null;
  readonly consentRecords: readonly unknown[];
  readonly conversations: readonly Record<string, unknown>[];
  readonly webhookDeliveries: readonly Record<string, unknown>[];
  readonly auditEvents: readonly Record<string, unknown>[];
  readonly manifest: readonly ManifestEntry[];
}

/**
 * collectExport gathers one subject's data (subjectId undefined: nobody matched; the bundle is
 * then empty, and still signed, so that an unknown person and a known one look alike to the
 * requester's systems).
 */
export async function collectExport(
  peers: ExportPeers,
  tenantId: string,
  jobId: string,
  subjectId: string | undefined,
  now: Date = new Date(),
): Promise<ExportBundle> {
  const empty: ExportBundle = {
    schema: EXPORT_SCHEMA,
    jobId,
    tenantId,
    generatedAt: now.toISOString(),
    subjectFound: false,
    subject: null,
    contactRecords: null,
    consentRecords: [],
    conversations: [],
    webhookDeliveries: [],
    auditEvents: [],
    manifest: [],
  };
  if (subjectId === undefined) return empty;
  const { subject } = await peers.tenantData.getSubject({ tenantId, subjectId });
  if (subject === undefined) return empty;
  const conversations = await allPages(async (pageToken) => {
    const r = await peers.tenantData.listConversations({ tenantId, subjectId, pageSize: 500, pageToken });
    return { items: r.conversations, next: r.nextPageToken };
  });
  let turnsCount = 0;
  let decrypted = 0;
  let recordingsCount = 0;
  const conversationDocs: Record<string, unknown>[] = [];
  for (const c of conversations) {
    const turns = await allPages(async (pageToken) => {
      const r = await peers.tenantData.listTranscriptTurns({ tenantId, conversationId: c.id, pageSize: 500, pageToken });
      return { items: r.turns, next: r.nextPageToken };
    });
    const transcript = [];
    for (const t of turns) {
      let text = t.textRedacted;
      if (text.startsWith(SEALED_PREFIX)) {
        const opened = await peers.secrets.decryptForSubject({
          tenantId,
          subjectId,
          purpose: transcriptPurpose(c.id),
          ciphertext: Buffer.from(text.slice(SEALED_PREFIX.length), 'base64'),
        });
        text = Buffer.from(opened.plaintext).toString('utf8');
        decrypted++;
      }
      transcript.push({ seq: t.seq, role: t.role, text, createdAt: iso(t.createdAt) });
    }
    turnsCount += transcript.length;
    const recordings = await allPages(async (pageToken) => {
      const r = await peers.tenantData.listRecordings({ tenantId, conversationId: c.id, pageSize: 500, pageToken });
      return { items: r.recordings, next: r.nextPageToken };
    });
    recordingsCount += recordings.length;
    conversationDocs.push({
      id: c.id,
      agentId: c.agentId,
      state: c.state,
      startedAt: iso(c.startedAt),
      endedAt: iso(c.endedAt),
      endReason: c.endReason,
      transcript,
      recordings: recordings.map((r) => ({
        id: r.id,
        blobKey: r.blobKey,
        durationMs: r.durationMs,
        sizeBytes: Number(r.sizeBytes),
        keyRef: r.keyRef,
        retentionClass: r.retentionClass,
        dataClass: r.dataClass,
        createdAt: iso(r.createdAt),
      })),
    });
  }
  const { deliveries } = await peers.integrations.listDeliveriesFor({
    tenantId,
    conversationIds: conversations.map((c) => c.id),
    subjectId,
  });
  // Events about the person or one of their conversations (one filter per target).
  const auditEvents: Record<string, unknown>[] = [];
  for (const targetId of [subjectId, ...conversations.map((c) => c.id)]) {
    const events = await allPages(async (pageToken) => {
      const r = await peers.audit.listEvents({ tenantId, filter: { targetId }, pageSize: 500, pageToken });
      return { items: r.events, next: r.nextPageToken };
    });
    for (const e of events) {
      const ev = e.event;
      if (ev === undefined) continue;
      auditEvents.push({
        seq: Number(e.seq),
        id: ev.id,
        occurredAt: iso(ev.occurredAt),
        actorKind: ev.actorKind,
        actorId: ev.actorId,
        action: ev.action,
        targetType: ev.targetType,
        targetId: ev.targetId,
        outcome: ev.outcome,
      });
    }
  }
  return {
    ...empty,
    subjectFound: true,
    subject: {
      id: subject.id,
      externalRef: subject.externalRef,
      createdAt: iso(subject.createdAt),
      // Whether the workspace keeps them off its outbound calls is data about them too (only when it does).
      ...(subject.doNotContact ? { doNotContactSince: iso(subject.doNotContactSince) } : {}),
    },
    contactRecords: {
      phoneOnFile: subject.hasPhone,
      emailOnFile: subject.hasEmail,
      note: 'Parley keeps no phone number or e-mail address, only keyed hashes used to find the person',
    },
    conversations: conversationDocs,
    webhookDeliveries: deliveries.map((d) => ({
      id: d.id,
      endpointId: d.endpointId,
      eventType: d.eventType,
      state: d.state,
      payload: d.payload,
      createdAt: iso(d.createdAt),
    })),
    auditEvents,
    manifest: [
      { source: 'tenant-data', rpc: 'GetSubject', contents: 'the subject record', count: 1 },
      { source: 'tenant-data', rpc: 'ListConversations', contents: 'conversations', count: conversations.length },
      { source: 'tenant-data', rpc: 'ListTranscriptTurns', contents: 'transcript turns', count: turnsCount },
      { source: 'secrets', rpc: 'DecryptForSubject', contents: "turns decrypted with the subject's key", count: decrypted },
      { source: 'tenant-data', rpc: 'ListRecordings', contents: 'recording references', count: recordingsCount },
      {
        source: 'integrations',
        rpc: 'ListDeliveriesFor',
        contents: 'webhook deliveries naming the person or their conversations',
        count: deliveries.length,
      },
      {
        source: 'audit',
        rpc: 'ListEvents',
        contents: 'audit and access events about the person or their conversations',
        count: auditEvents.length,
      },
      { source: 'consent', rpc: '-', contents: 'Parley keeps no consent records of its own', count: 0 },
    ],
  };
}

/** sha256Hex is the hex SHA-256 of a text. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function bundleKey(exportKey: Buffer, jobId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', exportKey, Buffer.from(jobId, 'utf8'), 'parley dsar export bundle v1', 32));
}

/** sealBundle encrypts a bundle with AES-256-GCM under a key derived from the export key and the job id; the tenant and job are bound as AAD. */
export function sealBundle(exportKey: Buffer, tenantId: string, jobId: string, bundle: string): { ciphertext: Buffer; nonce: Buffer } {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', bundleKey(exportKey, jobId), nonce);
  cipher.setAAD(Buffer.from(`${tenantId}/${jobId}`, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(bundle, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { ciphertext, nonce };
}

/** openBundle decrypts what sealBundle sealed (throws when it was altered or moved). */
export function openBundle(exportKey: Buffer, tenantId: string, jobId: string, sealed: { ciphertext: Buffer; nonce: Buffer }): string {
  const decipher = createDecipheriv('aes-256-gcm', bundleKey(exportKey, jobId), sealed.nonce);
  decipher.setAAD(Buffer.from(`${tenantId}/${jobId}`, 'utf8'));
  decipher.setAuthTag(sealed.ciphertext.subarray(sealed.ciphertext.length - 16));
  return Buffer.concat([decipher.update(sealed.ciphertext.subarray(0, sealed.ciphertext.length - 16)), decipher.final()]).toString('utf8');
}

function tokenMac(exportKey: Buffer, tenantId: string, jobId: string, expiresAtMs: number): Buffer {
  const key = Buffer.from(hkdfSync('sha256', exportKey, Buffer.alloc(0), 'parley dsar download token v1', 32));
  return createHmac('sha256', key).update(`${tenantId}/${jobId}/${expiresAtMs}`).digest();
}

/** downloadToken mints a download token for a job, valid until expiresAt: `<expiry ms>.<HMAC-SHA256, base64url>`. */
export function downloadToken(exportKey: Buffer, tenantId: string, jobId: string, expiresAt: Date): string {
  const ms = expiresAt.getTime();
  return `${ms}.${tokenMac(exportKey, tenantId, jobId, ms).toString('base64url')}`;
}

/** checkDownloadToken tells whether a token was minted for this job and has not expired. */
export function checkDownloadToken(exportKey: Buffer, tenantId: string, jobId: string, token: string, now: Date = new Date()): boolean {
  const m = /^(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (m === null) return false;
  const ms = Number(m[1]);
  if (ms < now.getTime()) return false;
  const given = Buffer.from(m[2]!, 'base64url');
  const expected = tokenMac(exportKey, tenantId, jobId, ms);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
