// Recording blobs and tenant-data's transactions: a real tenant-data process over mTLS on the
// run's Postgres, with the S3 stand-in as its blob store. A purge deletes its rows, commits, and
// only then deletes the blobs (a few at a time); a blob the store failed to delete stays queued
// and the next purge deletes it. GetRecording reads the reference in a short transaction and
// fetches the blob outside it, so a slow object store holds no transaction open.
import { randomUUID } from 'node:crypto';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { Code } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { startS3Standin, type S3Standin } from '../src/s3-standin.js';
import { failure, startTenantData, type TenantData, type TenantDataProcess } from './fixture.js';

let s3: S3Standin;
let td: TenantDataProcess;
let orchestrator: TenantData;
let lifecycle: TenantData;
let edge: TenantData;
const tenant = randomUUID();
let agentId = '';

beforeAll(async () => {
  s3 = await startS3Standin();
  td = await startTenantData({
    PARLEY_BLOB_STORE: 's3',
    PARLEY_S3_BUCKET: s3.bucket,
    PARLEY_S3_REGION: s3.region,
    PARLEY_S3_ENDPOINT: s3.endpoint,
    PARLEY_S3_ACCESS_KEY_ID: s3.accessKeyId,
    PARLEY_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    PARLEY_S3_REQUEST_TIMEOUT_MS: '5000',
  });
  orchestrator = await td.clientAs('voice-orchestrator');
  lifecycle = await td.clientAs('lifecycle');
  edge = await td.clientAs('edge');
  await (await td.clientAs('identity')).createWorkspace({ tenantId: tenant, name: 'blobs' });
  agentId = (await edge.createAgent({ tenantId: tenant, name: 'recorder' })).agent?.id ?? '';
});

afterAll(async () => {
  await td?.stop();
  await s3?.stop();
});

/** recorded stores a recording reference (and an object for it in the stand-in) and answers the blob key. */
async function recorded(wrappedKey = 'conversation:v2:c2VhbGVk'): Promise<{ id: string; conversationId: string; blobKey: string }> {
  const conversationId = (await orchestrator.startConversation({ tenantId: tenant, agentId })).conversation?.id ?? '';
  const id = randomUUID();
  const blobKey = `recordings/${tenant}/${conversationId}/${id}.pra`;
  s3.objects.set(blobKey, Buffer.from([2, 0, 0, 0, 0]));
  await orchestrator.addRecording({
    tenantId: tenant,
    conversationId,
    id,
    blobKey,
    durationMs: 1_000,
    sizeBytes: 5n,
    wrappedKey,
    dataClass: 'audio_full',
  });
  return { id, conversationId, blobKey };
}

const purge = (dataClass = 'recording', options: { signal?: AbortSignal } = {}) =>
  lifecycle.purgeExpired(
    {
      tenantId: tenant,
      dataClass,
      before: timestampFromDate(new Date(Date.now() + 60_000)),
      heldConversationIds: [],
      heldSubjectIds: [],
      limit: 100,
    },
    options,
  );

/** queueUndeletable stores n recordings and purges them while the store is down, so their blobs stay queued. */
async function queueUndeletable(n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) keys.push((await recorded()).blobKey);
  s3.unavailable = true;
  try {
    expect((await failure(purge())).code).toBe(Code.Unavailable);
  } finally {
    s3.unavailable = false;
  }
  return keys;
}

/** sealedAt is a recording key in the form secrets seals it (conversation:v2:<base64url JSON>) at KEK version `v`. */
const sealedAt = (v: number, tag: string) =>
  `conversation:v2:${Buffer.from(JSON.stringify({ c: tag, n: 'bm9uY2U=', w: `local:v${v}:${tag}`, v })).toString('base64url')}`;

const deleteRequests = () => s3.requests.filter((r) => r.operation === 'DeleteObject').length;
const held = (operation: string) => s3.held.get(operation) ?? 0;

/** ownTcpPorts lists the local ports of a process's TCP sockets (Linux /proc): its database connections among them. */
async function ownTcpPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m !== null) inodes.add(m[1]!);
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    const lines = (await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '')).split('\n').slice(1);
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

describe('recording blobs', () => {
  it('deletes blobs after the purge commits, and a blob the store failed to delete at the next purge', async () => {
    const first = await recorded();
    const second = await recorded();
    s3.unavailable = true;
    let refused;
    try {
      refused = await failure(purge());
    } finally {
      s3.unavailable = false;
    }
    expect(refused.code).toBe(Code.Unavailable);
    expect(refused.message).toMatch(/2 recording blob\(s\) could not be deleted .* stay queued/);
    // The rows are gone (committed), the blobs are still there and queued.
    expect(await td.rows('recordings', tenant)).toBe(0);
    expect(s3.objects.has(first.blobKey) && s3.objects.has(second.blobKey)).toBe(true);
    const { rows: queued } = await td.admin.query<{ blob_key: string; attempts: number }>(
      'select blob_key, attempts from parley_tenant_data.recording_blob_deletions where tenant_id = $1 order by blob_key',
      [tenant],
    );
    expect(queued).toEqual([first.blobKey, second.blobKey].sort().map((blob_key) => ({ blob_key, attempts: 1 })));

    // The next purge (with nothing new to delete) deletes what is queued.
    expect((await purge()).deleted).toBe(0);
    expect(s3.objects.has(first.blobKey) || s3.objects.has(second.blobKey)).toBe(false);
    expect(await td.rows('recording_blob_deletions', tenant)).toBe(0);
  });

  it('an undeletable blob fails only the recording purge: the other classes purge, and each failure is logged once, at warn, by name and key', async () => {
    const [key] = await queueUndeletable(1);
    s3.unavailable = true;
    try {
      // The queue is only the recording class's: transcripts and metadata purge through an outage.
      expect((await purge('transcript')).deleted).toBe(0);
      expect(typeof (await purge('conversation_metadata')).deleted).toBe('number');
      expect((await failure(purge('recording'))).code).toBe(Code.Unavailable);
    } finally {
      s3.unavailable = false;
    }
    expect(await td.rows('recording_blob_deletions', tenant)).toBe(1);
    const warned = () =>
      td
        .logLines(40)
        .filter((l) => l.includes('"recording blobs could not be deleted from the blob store; they stay queued"') && l.includes(key!))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    // Both failed purges (queueUndeletable's and this one) logged: the process writes its lines in
    // order, so whatever it logged for the first failure is in the tail by now.
    await pollUntil(async () => warned().length === 2, 10_000);
    expect(warned().at(-1)).toMatchObject({ level: 'warn', key, failed: 1, error: 'ServiceUnavailable', status: 503 });
    expect(JSON.stringify(warned())).not.toContain(s3.secretAccessKey);
    // The service's warn line is the only one: the kernel logs no error line for the refused call.
    expect(td.logLines(40).filter((l) => l.includes('PurgeExpired'))).toEqual([]);
    expect((await purge()).deleted).toBe(0);
    expect(await td.rows('recording_blob_deletions', tenant)).toBe(0);
  });

  it('reports the deletion queue on /metrics: how many blobs wait and how long the oldest has, over every workspace', async () => {
    const sample = async (name: string) => {
      const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(await td.metrics());
      return match === null ? undefined : Number(match[1]);
    };
    await queueUndeletable(3);
    // Other test files' workspaces share the database (and may have blobs queued): at least these three.
    await pollUntil(async () => ((await sample('parley_recording_blob_deletions_pending')) ?? 0) >= 3, 30_000);
    // The oldest entry's age, in seconds, grows while nothing is deleted.
    await pollUntil(async () => ((await sample('parley_recording_blob_deletions_oldest_age')) ?? 0) >= 1, 30_000);
    // Drained: the queue of this workspace is empty, and the gauge counts none of its blobs.
    expect((await purge()).deleted).toBe(0);
    expect(await td.rows('recording_blob_deletions', tenant)).toBe(0);
  });

  it('stops starting deletes once the caller has gone, so a retried purge during an outage does not stack loops', async () => {
    await queueUndeletable(12);
    const before = deleteRequests();
    s3.stallMs = 3_000;
    try {
      // Lifecycle gives up while four deletes are in flight (it goes once the store holds them, not
      // after a fixed time a loaded machine may spend before the deletes start); the four finish,
      // no further one starts.
      const gone = new AbortController();
      const purging = failure(purge('recording', { signal: gone.signal }));
      await pollUntil(async () => held('DeleteObject') === 4, 30_000);
      gone.abort();
      expect((await purging).code).toBe(Code.Canceled);
      await pollUntil(async () => held('DeleteObject') === 0, 30_000);
      // Room for a wrong fifth delete to reach the store (it would be held there, then counted).
      await new Promise((r) => setTimeout(r, 2_000));
      expect([deleteRequests() - before, held('DeleteObject')]).toEqual([4, 0]);
    } finally {
      s3.stallMs = 0;
    }
    // What was not tried stays queued, untouched, for the next purge (the four deleted leave the
    // queue once tenant-data has written so).
    await pollUntil(async () => (await td.rows('recording_blob_deletions', tenant)) <= 8, 30_000);
    expect(await td.rows('recording_blob_deletions', tenant)).toBe(8);
    expect((await purge()).deleted).toBe(0);
    expect(await td.rows('recording_blob_deletions', tenant)).toBe(0);
  });

  it('runs at most four recording reads at once on a replica, refusing the next at once, and frees a slot when a read ends', async () => {
    const recs = await Promise.all(Array.from({ length: 5 }, () => recorded()));
    const readOf = (rec: { id: string; conversationId: string }) =>
      failure(edge.readRecordingAudio({ tenantId: tenant, conversationId: rec.conversationId, recordingId: rec.id }));
    s3.stallMs = 4_000;
    try {
      const slow = recs.slice(0, 4).map(readOf);
      // The four are waiting on the object store now.
      await pollUntil(async () => held('GetObject') === 4, 30_000);
      const refused = await readOf(recs[4]!);
      expect(refused.code).toBe(Code.ResourceExhausted);
      expect(refused.message).toMatch(/already reading 4 recordings at once; try again/);
      // At once: refused while the store still holds all four reads, not after one ended.
      expect(held('GetObject')).toBe(4);
      // The four end (their sealed keys are not secrets': they fail after the read, not for want of a slot).
      for (const r of await Promise.all(slow)) expect(r.code).not.toBe(Code.ResourceExhausted);
    } finally {
      s3.stallMs = 0;
    }
    expect((await readOf(recs[4]!)).code).not.toBe(Code.ResourceExhausted);
  });

  it('holds no transaction open while the object store is slow to answer a read', async () => {
    const rec = await recorded();
    s3.stallMs = 4_000;
    try {
      const read = failure(edge.readRecordingAudio({ tenantId: tenant, conversationId: rec.conversationId, recordingId: rec.id }));
      // The GET is waiting on the stand-in now.
      await pollUntil(async () => held('GetObject') === 1, 30_000);
      // Other test files' stacks share this database and role, and a starved process of theirs can
      // sit inside a transaction for a while on a loaded machine: only this process's connections
      // (by their client port) count.
      const ports = await ownTcpPorts(td.service.pid!);
      const { rows } = await td.admin.query<{ state: string | null }>(
        `select state from pg_stat_activity where usename = 'parley_tenant_data' and client_port = any($1::int[])`,
        [ports],
      );
      expect(held('GetObject')).toBe(1); // still waiting while we looked
      // tenant-data's pool is connected, and none of its connections is inside a transaction.
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.filter((r) => r.state?.startsWith('idle in transaction'))).toEqual([]);
      // The sealed key here is not secrets' (this test needs the read in flight, not its audio).
      expect((await read).code).not.toBe(Code.Unknown);
    } finally {
      s3.stallMs = 0;
    }
  });

  it('saves a page of rewrapped recording keys at once, compare-and-set per row; a new recording carries its KEK version from the start', async () => {
    const secrets = await td.clientAs('secrets');
    const recs = [await recorded(sealedAt(1, 'a')), await recorded(sealedAt(1, 'b')), await recorded(sealedAt(1, 'c'))];
    const unknownForm = await recorded();
    const mine = new Set([...recs.map((r) => r.id), unknownForm.id]);
    const belowOf = async (version: number) =>
      (await secrets.listRecordingKeys({ tenantId: tenant, belowKekVersion: version, pageSize: 500 })).keys
        .map((k) => k.recordingId)
        .filter((id) => mine.has(id))
        .sort();
    const below = () => belowOf(2);
    // AddRecording read version 1 from the sealed keys; the key it cannot read has none (below any).
    expect(await below()).toEqual([...recs.map((r) => r.id), unknownForm.id].sort());
    expect(await belowOf(1)).toEqual([unknownForm.id]);

    const res = await secrets.saveRecordingKeys({
      tenantId: tenant,
      keys: [
        { recordingId: recs[0]!.id, previousWrappedKey: sealedAt(1, 'a'), wrappedKey: sealedAt(2, 'a'), kekVersion: 2 },
        // Changed meanwhile (the read was stale): left alone.
        { recordingId: recs[1]!.id, previousWrappedKey: sealedAt(1, 'stale'), wrappedKey: sealedAt(2, 'b'), kekVersion: 2 },
        { recordingId: recs[2]!.id, previousWrappedKey: sealedAt(1, 'c'), wrappedKey: sealedAt(2, 'c'), kekVersion: 2 },
      ],
    });
    expect(res.updated).toBe(2);
    expect(await below()).toEqual([recs[1]!.id, unknownForm.id].sort());

    // One bad key refuses the whole page before anything is written.
    await expect(
      secrets.saveRecordingKeys({
        tenantId: tenant,
        keys: [
          { recordingId: recs[1]!.id, previousWrappedKey: sealedAt(1, 'b'), wrappedKey: sealedAt(2, 'b'), kekVersion: 2 },
          { recordingId: unknownForm.id, previousWrappedKey: 'conversation:v2:c2VhbGVk', wrappedKey: 'subject:v1:AAAA', kekVersion: 2 },
        ],
      }),
    ).rejects.toThrow(/keys\[1\]\.wrapped_key must be a recording key sealed by secrets/);
    expect(await below()).toEqual([recs[1]!.id, unknownForm.id].sort());
  });
});
