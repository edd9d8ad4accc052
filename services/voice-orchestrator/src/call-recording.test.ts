import { randomBytes } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import type { BlobStore } from '@parley/blob-store';
import { layoutRecording, type RecordingSettings } from '@parley/conversation';
import { openRecordingChunks } from '@parley/envelope';
import { metrics, type Meter, type MeterProvider } from '@opentelemetry/api';
import { afterAll, describe, expect, it } from 'vitest';
import { CallRecording, consentGiven, type CallRecordingDeps } from './call-recording.js';
import { RecordingBudget } from './recording-budget.js';

describe('consentGiven', () => {
  it('takes a plain yes, said, typed or keyed, and nothing else', () => {
    for (const yes of ['Yes', 'yes, that is fine.', 'Yeah', 'sure', 'OK', 'okay then', 'I agree', '1'])
      expect(consentGiven(yes), yes).toBe(true);
    for (const no of ['No', 'no thanks', 'yesterday I called', 'not okay', '2', '#', '', 'why?']) expect(consentGiven(no), no).toBe(false);
  });

  it('takes a yes that is qualified or taken back as a no', () => {
    for (const no of [
      'I do not agree',
      'Of course not',
      'Okay, no thanks',
      "Sure, but don't record me",
      'yes I would rather not',
      "OK I don't want that",
      'sure, without recording please',
      "yeah I won't",
    ])
      expect(consentGiven(no), no).toBe(false);
  });
});

/** outcomes counts what parley.recordings was told, through a meter provider that keeps each add (set as the global one). */
const outcomes = new Map<string, number>();
const countingMeter = {
  createCounter: (name: string) => ({
    add: (n: number, attrs?: Record<string, string>) => {
      if (name !== 'parley.recordings') return;
      const key = String(attrs?.['parley.recording.outcome']);
      outcomes.set(key, (outcomes.get(key) ?? 0) + n);
    },
  }),
} as unknown as Meter;
metrics.setGlobalMeterProvider({ getMeter: () => countingMeter } satisfies MeterProvider);
afterAll(() => metrics.disable());

describe('CallRecording', () => {
  const tenantId = '00000000-0000-7000-8000-00000000000a';
  const conversationId = '00000000-0000-7000-8000-00000000000b';

  /** memoryBlobs is a blob store in memory that records each writer call, so a test sees what was written when. */
  function memoryBlobs() {
    const objects = new Map<string, Buffer>();
    const writes: { key: string; bytes: number }[] = [];
    const store: BlobStore = {
      kind: 'file',
      put: (key, bytes) => Promise.resolve(void objects.set(key, Buffer.from(bytes))),
      get: (key) => Promise.resolve(objects.get(key)),
      delete: (key) => Promise.resolve(void objects.delete(key)),
      read: (key) => Promise.resolve(objects.has(key) ? [objects.get(key)!] : undefined),
      writer(key) {
        const pieces: Buffer[] = [];
        return {
          bufferedBytes: 0,
          write: (bytes) => Promise.resolve(void (pieces.push(Buffer.from(bytes)), writes.push({ key, bytes: bytes.length }))),
          complete: () => Promise.resolve((objects.set(key, Buffer.concat(pieces)), Buffer.concat(pieces).length)),
          abort: () => Promise.resolve(void (pieces.length = 0)),
        };
      },
    };
    return { objects, writes, store };
  }

  function recordingWith(
    addRecording: () => Promise<void>,
    options: {
      budget?: RecordingBudget;
      consent?: boolean;
      chunkBytes?: number;
      maxBytes?: number;
      shutdown?: AbortSignal;
      blobs?: ReturnType<typeof memoryBlobs>;
    } = {},
  ) {
    const blobs = options.blobs ?? memoryBlobs();
    const dataKey = randomBytes(32);
    const deps = {
      peers: {
        issueRecordingKey: () => Promise.resolve({ dataKey: Buffer.from(dataKey), wrappedKey: 'conversation:v2:x' }),
        addRecording,
      },
      blobs: blobs.store,
      log: { warn: () => undefined, error: () => undefined } as unknown as CallRecordingDeps['log'],
      maxBytes: options.maxBytes ?? 1 << 20,
      budget: options.budget ?? new RecordingBudget(1 << 20),
      ...(options.chunkBytes === undefined ? {} : { chunkBytes: options.chunkBytes }),
      ...(options.shutdown === undefined ? {} : { shutdown: options.shutdown }),
    } satisfies CallRecordingDeps;
    const settings = { announcement: 'This call is recorded.', ...(options.consent ? { consent: { prompt: 'ok?' } } : {}) };
    const recording = new CallRecording(deps, settings as RecordingSettings, 16_000);
    recording.prepareKey(tenantId, conversationId, undefined);
    return { recording, blobs, dataKey };
  }

  async function plaintextOf(blob: Buffer, dataKey: Buffer, recordingId: string): Promise<Buffer> {
    const out: Buffer[] = [];
    for await (const c of openRecordingChunks(dataKey, { tenantId, conversationId, recordingId }, [blob])) out.push(c);
    return Buffer.concat(out);
  }

  it('seals and writes the audio chunk by chunk during the call, so it holds about one chunk', async () => {
    const { recording, blobs, dataKey } = recordingWith(() => Promise.resolve(), { chunkBytes: 8_192 });
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 40; i++) {
      recording.caller(new Int16Array(320).fill(i));
      recording.agent(new Int16Array(320).fill(-i));
      // Frames come on their own turns of the event loop: a sealed chunk is written before the next frame.
      await new Promise((r) => setImmediate(r));
      expect(recording.heldBytes).toBeLessThan(8_192 + 2 * 660);
    }
    await new Promise((r) => setImmediate(r));
    // Written while the call goes on, before store().
    expect(blobs.writes.length).toBeGreaterThan(3);
    const stored = await recording.store(tenantId, conversationId);
    const blob = blobs.objects.get(`recordings/${tenantId}/${conversationId}/${recording.recordingId}.pra`)!;
    expect(stored).toMatchObject({ recordingId: recording.recordingId, sizeBytes: blob.length, stopped: undefined });
    expect(stored!.durationMs).toBeGreaterThanOrEqual(790);
    expect(blob[0]).toBe(2);
    const plaintext = await plaintextOf(blob, dataKey, recording.recordingId);
    const tracks = layoutRecording(plaintext);
    expect(tracks.caller.length).toBeGreaterThanOrEqual(40 * 320);
    expect(tracks.agent.includes(-39)).toBe(true);
    expect(recording.heldBytes).toBe(0);
    expect(outcomes.get('stored')).toBe(1);
  });

  it('holds the audio until consent and writes nothing when it is refused', async () => {
    const { recording, blobs } = recordingWith(() => Promise.resolve(), { consent: true, chunkBytes: 1_024 });
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 10; i++) recording.caller(new Int16Array(320).fill(7));
    expect(blobs.writes).toEqual([]);
    recording.consent(false);
    expect(recording.heldBytes).toBe(0);
    expect(await recording.store(tenantId, conversationId)).toBeUndefined();
    expect(blobs.objects.size).toBe(0);
    expect(outcomes.get('declined')).toBe(1);
  });

  it('stops at the replica budget, stores what it had, and gives the budget back', async () => {
    const budget = new RecordingBudget(4_096);
    const { recording, blobs } = recordingWith(() => Promise.resolve(), { budget, consent: true });
    await new Promise((r) => setImmediate(r));
    // Consent not given yet: the audio is held in memory, until the budget is spent.
    for (let i = 0; i < 20; i++) recording.caller(new Int16Array(320).fill(3));
    expect(recording.stopped).toBe('over_budget');
    expect(budget.usedBytes).toBeLessThanOrEqual(4_096);
    recording.consent(true);
    const stored = await recording.store(tenantId, conversationId);
    expect(stored?.stopped).toBe('over_budget');
    expect(stored!.durationMs).toBeGreaterThan(0);
    expect(blobs.objects.size).toBe(1);
    expect(budget.usedBytes).toBe(0);
    expect(outcomes.get('over_budget')).toBe(1);
  });

  it('stops at its own size limit', async () => {
    const { recording } = recordingWith(() => Promise.resolve(), { maxBytes: 2_000 });
    for (let i = 0; i < 10; i++) recording.caller(new Int16Array(320));
    expect(recording.truncated).toBe(true);
    expect((await recording.store(tenantId, conversationId))?.stopped).toBe('size_limit');
    expect(outcomes.get('size_limit')).toBe(1);
  });

  it('retries the reference through a short tenant-data outage instead of losing the recording', async () => {
    let attempts = 0;
    const { recording, blobs } = recordingWith(() =>
      ++attempts < 3 ? Promise.reject(new ConnectError('tenant-data away', Code.Unavailable)) : Promise.resolve(),
    );
    recording.caller(new Int16Array(1600).fill(1000));
    const stored = await recording.store(tenantId, conversationId);
    expect(attempts).toBe(3);
    expect(stored?.recordingId).toBe(recording.recordingId);
    expect(blobs.objects.size).toBe(1);
  });

  it('gives up at once on a refusal and deletes the blob no reference points at', async () => {
    let attempts = 0;
    const { recording, blobs } = recordingWith(() => {
      attempts++;
      return Promise.reject(new ConnectError('bad recording', Code.InvalidArgument));
    });
    recording.caller(new Int16Array(1600).fill(1000));
    await expect(recording.store(tenantId, conversationId)).rejects.toThrow(/bad recording/);
    expect(attempts).toBe(1);
    expect(blobs.objects.size).toBe(0);
    expect(outcomes.get('failed')).toBe(1);
  });

  it("gives up a recording whose upload is still completing when the replica's shutdown wait runs out: aborted, counted failed, no reference", async () => {
    const blobs = memoryBlobs();
    const aborted: string[] = [];
    const stalled = blobs.store.writer.bind(blobs.store);
    // An object store that takes the parts but never answers the completion (S3 slow at shutdown).
    blobs.store.writer = (key) => ({
      ...stalled(key),
      complete: () => new Promise<number>(() => undefined),
      abort: () => Promise.resolve(void aborted.push(key)),
    });
    let added = 0;
    const shutdown = new AbortController();
    const { recording } = recordingWith(
      () => {
        added++;
        return Promise.resolve();
      },
      { shutdown: shutdown.signal, blobs },
    );
    recording.caller(new Int16Array(1600).fill(1000));
    const failedBefore = outcomes.get('failed') ?? 0;
    const storing = recording.store(tenantId, conversationId);
    const started = performance.now();
    setTimeout(() => shutdown.abort(), 50);
    await expect(storing).rejects.toThrow(/shutting down .*PARLEY_RECORDING_SHUTDOWN_WAIT_MS/);
    expect(performance.now() - started).toBeLessThan(30_000); // the stalled upload would otherwise never end; slack for a loaded machine
    expect(outcomes.get('failed')).toBe(failedBefore + 1);
    expect(added).toBe(0);
    await new Promise((r) => setTimeout(r, 10));
    expect(aborted).toEqual([`recordings/${tenantId}/${conversationId}/${recording.recordingId}.pra`]);
    expect(blobs.objects.size).toBe(0);
    // A recording stored after the wait ran out gives up at once.
    const late = recordingWith(() => Promise.resolve(), { shutdown: shutdown.signal });
    late.recording.caller(new Int16Array(160).fill(1));
    await expect(late.recording.store(tenantId, conversationId)).rejects.toThrow(/shutting down/);
  });
});
