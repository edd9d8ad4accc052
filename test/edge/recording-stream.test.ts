// Reading a recording as a stream through the public API (ConversationService/StreamRecording):
// tenant-data decrypts the blob chunk by chunk and sends the WAV in pieces, the edge passes them
// on, and the unary GetRecording refuses a recording above its cap, pointing at the stream.
import { execFile } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParleyClient } from '@parley/client';
import { createParleyNodeClient } from '@parley/client/node';
import { recordingFrame, recordingHeader, recordingWav } from '@parley/conversation';
import { sealRecording } from '@parley/envelope';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, startPublicStack, type PublicStack } from './fixture.js';
import { callAudio, storeRecording } from './recording.fixture.js';
import { runParley } from '../cli/run-parley.js';

const RATE = 16_000;
/** READ_CAP is this stack's PARLEY_RECORDING_READ_MAX_BYTES: a few seconds of audio. */
const READ_CAP = 64 * 1024;
/**
 * INTERNAL_DEADLINE_MS is this stack's PARLEY_INTERNAL_DEADLINE_MS at the edge, shorter than the
 * 10 s default so that a reader pausing past it costs the test seconds, not a quarter minute.
 */
const INTERNAL_DEADLINE_MS = 3_000;

let stack: PublicStack;
let blobDir: string;
let client: ParleyClient;

beforeAll(async () => {
  blobDir = await mkdtemp(join(tmpdir(), 'parley-recording-stream-'));
  stack = await startPublicStack({
    'tenant-data': { PARLEY_BLOB_DIR: blobDir, PARLEY_RECORDING_READ_MAX_BYTES: String(READ_CAP) },
    edge: { PARLEY_INTERNAL_DEADLINE_MS: String(INTERNAL_DEADLINE_MS) },
  });
  client = createParleyNodeClient({ baseUrl: stack.publicUrl, apiKey: stack.bootstrap.apiKey, ca: stack.ca, retry: { maxAttempts: 1 } });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await rm(blobDir, { recursive: true, force: true });
});

async function streamed(conversationId: string, recordingId: string) {
  const pieces: Buffer[] = [];
  let recording: { id: string; sizeBytes: bigint } | undefined;
  let error: unknown;
  try {
    for await (const res of client.conversations.streamRecording({ conversationId, recordingId })) {
      if (res.recording !== undefined) recording ??= res.recording;
      pieces.push(Buffer.from(res.wav));
    }
  } catch (err) {
    error = err;
  }
  return { pieces, recording, error, wav: Buffer.concat(pieces) };
}

async function readEvents(recordingId: string): Promise<number> {
  const res = await stack.call(
    '/parley.api.v1.AuditService/ListEvents',
    { filter: { action: 'recording.read', targetId: recordingId } },
    stack.bootstrap.apiKey,
  );
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return ((res.body.events as unknown[] | undefined) ?? []).length;
}

/** cliEnv is the environment a `parley` CLI run against this stack gets (its own HOME and config). */
const cliEnv = () => ({
  HOME: blobDir,
  PARLEY_CONFIG_DIR: join(blobDir, 'config'),
  PARLEY_URL: stack.publicUrl,
  PARLEY_CA: stack.pki.paths.caCert,
  PARLEY_API_KEY: stack.bootstrap.apiKey,
});

describe('streamed recording reads', () => {
  it('streams a recording above the unary cap in pieces of at most 64 KiB, the same WAV, as one audited read; GetRecording refuses it naming the stream', async () => {
    const rec = await storeRecording(stack, blobDir, callAudio(6, RATE));
    expect(rec.sizeBytes).toBeGreaterThan(READ_CAP * 2);

    const unary = await stack.call(
      '/parley.api.v1.ConversationService/GetRecording',
      { conversationId: rec.conversationId, recordingId: rec.recordingId },
      stack.bootstrap.apiKey,
    );
    expect(unary.status).toBe(400);
    expect(unary.body).toMatchObject({ code: 'failed_precondition' });
    expect(String(unary.body.message)).toMatch(/above the 65536 bytes one GetRecording answers .*StreamRecording/);

    const read = await streamed(rec.conversationId, rec.recordingId);
    expect(read.error).toBeUndefined();
    expect(read.recording).toMatchObject({ id: rec.recordingId, sizeBytes: BigInt(rec.sizeBytes) });
    expect(read.pieces.length).toBeGreaterThan(4);
    expect(Math.max(...read.pieces.map((p) => p.length))).toBeLessThanOrEqual(64 * 1024);
    expect(read.wav.equals(Buffer.from(recordingWav(rec.plaintext)))).toBe(true);
    await pollUntil(async () => (await readEvents(rec.recordingId)) === 1, 20_000);

    // The CLI reads it through the stream into a file of its own (mode 0600).
    const out = join(blobDir, 'call.wav');
    const run = await runParley(['conversations', 'recording', rec.conversationId, rec.recordingId, '--out', out], { env: cliEnv() });
    expect(run.code, run.stderr).toBe(0);
    expect((await readFile(out)).equals(read.wav)).toBe(true);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    await pollUntil(async () => (await readEvents(rec.recordingId)) === 2, 20_000);
  });

  it("keeps streaming a long recording to a slow reader past the internal calls' default deadline", async () => {
    // Large enough that the hops' flow-control windows and buffers cannot hold it all, so
    // tenant-data's stream to the edge stays open while the reader pauses for longer than the
    // internal client's default deadline: with the edge's stream given that deadline instead of
    // the long-read one, 20 s of audio (a 0.6 MB WAV) was already cut off, 5 s (0.16 MB) was not;
    // five minutes (a 9.6 MB WAV) leaves a wide margin.
    const rec = await storeRecording(stack, blobDir, callAudio(300, 8_000));
    expect(rec.sizeBytes).toBeGreaterThan(4.5 * 1024 * 1024);
    const pieces: Buffer[] = [];
    let expected: Buffer | undefined;
    for await (const res of client.conversations.streamRecording({ conversationId: rec.conversationId, recordingId: rec.recordingId })) {
      pieces.push(Buffer.from(res.wav));
      if (expected === undefined) {
        // The pause, used to lay out the expected WAV.
        const resumeAt = Date.now() + INTERNAL_DEADLINE_MS + 1_500;
        expected = Buffer.from(recordingWav(rec.plaintext));
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, resumeAt - Date.now())));
      }
    }
    expect(expected).toBeDefined();
    expect(Buffer.concat(pieces).equals(expected!)).toBe(true);
  }, 120_000);

  it('gives a short recording the same WAV through GetRecording and through the stream', async () => {
    const rec = await storeRecording(stack, blobDir, callAudio(1, 8_000));
    expect(rec.sizeBytes).toBeLessThan(READ_CAP);
    const unary = await stack.call(
      '/parley.api.v1.ConversationService/GetRecording',
      { conversationId: rec.conversationId, recordingId: rec.recordingId },
      stack.bootstrap.apiKey,
    );
    expect(unary.status, JSON.stringify(unary.body)).toBe(200);
    const read = await streamed(rec.conversationId, rec.recordingId);
    expect(read.wav.equals(Buffer.from(unary.body.wav as string, 'base64'))).toBe(true);
  });

  it('refuses GetRecording of a short blob whose WAV is above the cap (sparse frames), and streams it', async () => {
    // One sample every 100 ms for 30 s: 3 KB of plaintext, 1.9 MB of WAV.
    const sparse = Buffer.concat([
      recordingHeader(RATE),
      ...Array.from({ length: 300 }, (_, i) => recordingFrame('caller', i * 100, Int16Array.of(1_000))),
    ]);
    const rec = await storeRecording(stack, blobDir, sparse);
    expect(rec.sizeBytes).toBeLessThan(READ_CAP);
    const unary = await stack.call(
      '/parley.api.v1.ConversationService/GetRecording',
      { conversationId: rec.conversationId, recordingId: rec.recordingId },
      stack.bootstrap.apiKey,
    );
    expect(unary.status).toBe(400);
    expect(unary.body).toMatchObject({ code: 'failed_precondition' });
    expect(String(unary.body.message)).toMatch(
      /is 29\d{3} ms long, at least \d+ bytes of WAV, above the 65536 bytes one GetRecording answers .*StreamRecording/,
    );
    const read = await streamed(rec.conversationId, rec.recordingId);
    expect(read.error).toBeUndefined();
    expect(read.wav.equals(Buffer.from(recordingWav(sparse)))).toBe(true);
  });

  it('refuses GetRecording of audio that lays out past its stored duration, without laying it out', async () => {
    // The reference says 200 ms; a frame at 1.5 s would stretch the layout past it.
    const plaintext = Buffer.concat([
      recordingHeader(8_000),
      recordingFrame('caller', 0, new Int16Array(160).fill(500)),
      recordingFrame('agent', 1_500, new Int16Array(160).fill(-500)),
    ]);
    const rec = await storeRecording(stack, blobDir, plaintext, { durationMs: 200 });
    const unary = await stack.call(
      '/parley.api.v1.ConversationService/GetRecording',
      { conversationId: rec.conversationId, recordingId: rec.recordingId },
      stack.bootstrap.apiKey,
    );
    expect(unary.status).toBe(400);
    expect(unary.body).toMatchObject({ code: 'failed_precondition' });
    expect(String(unary.body.message)).toMatch(/audio runs past its stored duration of 200 ms.*StreamRecording/);
    expect(await readEvents(rec.recordingId)).toBe(0);
  });

  it('stops reading the blob once the caller cancels the stream, and frees its read slot', async () => {
    const rec = await storeRecording(stack, blobDir, callAudio(6, RATE));
    const path = join(blobDir, rec.blobKey);
    const blob = await readFile(path);
    // The blob becomes a pipe this test writes: tenant-data reads it as slowly as the test writes,
    // and a reader that closes it shows up here as EPIPE.
    await rm(path);
    await promisify(execFile)('mkfifo', ['-m', '600', path]);
    const tenantData = await stack.clientAs('edge', 'tenant-data', TenantDataService);
    const caller = new AbortController();
    const stream = (async () => {
      for await (const res of tenantData.streamRecordingAudio(
        { tenantId: stack.bootstrap.tenantId, conversationId: rec.conversationId, recordingId: rec.recordingId },
        { signal: caller.signal },
      ))
        void res;
    })();
    stream.catch(() => undefined);
    const pipe = await open(path, 'w');
    let written = 0;
    let error: unknown;
    try {
      // A quarter of the blob, then the caller gives up while tenant-data is on its first pass.
      for (; written < blob.length / 4; written += 16 * 1024) await pipe.write(blob.subarray(written, written + 16 * 1024));
      caller.abort();
      const until = Date.now() + 15_000;
      // The rest, slowly: a read that goes on takes it all; a read that stopped closes the pipe.
      while (written < blob.length && Date.now() < until) {
        await pipe.write(blob.subarray(written, written + 4 * 1024));
        written += 4 * 1024;
        await new Promise((r) => setTimeout(r, 20));
      }
    } catch (err) {
      error = err;
    } finally {
      await pipe.close().catch(() => undefined);
      await rm(path, { force: true });
    }
    expect((error as NodeJS.ErrnoException | undefined)?.code).toBe('EPIPE');
    expect(written).toBeLessThan(blob.length);
    await expect(stream).rejects.toThrow();
    expect(await readEvents(rec.recordingId)).toBe(0);
    // Its slot is free again: the replica's other reads go on.
    const other = await storeRecording(stack, blobDir, callAudio(1, 8_000));
    for (let i = 0; i < 5; i++) expect((await streamed(other.conversationId, other.recordingId)).error).toBeUndefined();
  });

  it('streams a format-1 blob within the read cap and refuses a larger one with FAILED_PRECONDITION, holding no more of it', async () => {
    /** asFormat1 re-seals a stored recording in format 1 (one AES-GCM message), as recordings were before chunking. */
    const asFormat1 = async (rec: Awaited<ReturnType<typeof storeRecording>>) => {
      const scope = { tenantId: stack.bootstrap.tenantId, conversationId: rec.conversationId, recordingId: rec.recordingId };
      await writeFile(join(blobDir, rec.blobKey), sealRecording(rec.dataKey, scope, rec.plaintext), { mode: 0o600 });
    };
    const small = await storeRecording(stack, blobDir, callAudio(1, 8_000));
    await asFormat1(small);
    const read = await streamed(small.conversationId, small.recordingId);
    expect(read.error).toBeUndefined();
    expect(read.wav.equals(Buffer.from(recordingWav(small.plaintext)))).toBe(true);

    const large = await storeRecording(stack, blobDir, callAudio(3, RATE));
    await asFormat1(large);
    const refused = await streamed(large.conversationId, large.recordingId);
    expect(refused.pieces).toEqual([]);
    expect((refused.error as { code?: unknown }).code).toBe(9); // FAILED_PRECONDITION
    expect(String((refused.error as Error).message)).toMatch(/stored in format 1 .*larger than the 65536 bytes a read may hold at once/);
    expect(await readEvents(large.recordingId)).toBe(0);
  });

  it('sends no audio of a blob cut short and records no read (the CLI leaves no file); a malformed id is INVALID_ARGUMENT', async () => {
    const rec = await storeRecording(stack, blobDir, callAudio(4, RATE));
    await truncate(join(blobDir, rec.blobKey), rec.sizeBytes - 100);
    const read = await streamed(rec.conversationId, rec.recordingId);
    expect(read.pieces).toEqual([]);
    // FAILED_PRECONDITION (the stored audio does not authenticate), never a stack trace.
    expect((read.error as { code?: unknown }).code).toBe(9);
    expect(String((read.error as Error).message)).not.toMatch(/at .*\.js:\d+/);
    expect(await readEvents(rec.recordingId)).toBe(0);
    // The CLI leaves no partial file behind.
    const out = join(blobDir, 'cut.wav');
    const run = await runParley(['conversations', 'recording', rec.conversationId, rec.recordingId, '--out', out], { env: cliEnv() });
    expect(run.code).not.toBe(0);
    await expect(stat(out)).rejects.toThrow(/ENOENT/);

    const bad = await streamed(rec.conversationId, 'not-a-uuid');
    expect((bad.error as { code?: unknown }).code).toBe(3); // INVALID_ARGUMENT
  });
});
