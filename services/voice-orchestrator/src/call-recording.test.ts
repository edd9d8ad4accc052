import { randomBytes } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import type { RecordingSettings } from '@parley/conversation';
import { describe, expect, it } from 'vitest';
import { CallRecording, consentGiven, type CallRecordingDeps } from './call-recording.js';

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

describe('CallRecording.store', () => {
  const tenantId = '00000000-0000-7000-8000-00000000000a';
  const conversationId = '00000000-0000-7000-8000-00000000000b';

  function recordingWith(addRecording: () => Promise<void>) {
    const blobs = new Map<string, Uint8Array>();
    const deps = {
      peers: {
        issueRecordingKey: () => Promise.resolve({ dataKey: randomBytes(32), wrappedKey: 'conversation:v2:x' }),
        addRecording,
      },
      blobs: {
        kind: 'file' as const,
        put: (key: string, bytes: Uint8Array) => Promise.resolve(void blobs.set(key, bytes)),
        get: (key: string) => Promise.resolve(blobs.get(key)),
        delete: (key: string) => Promise.resolve(void blobs.delete(key)),
      },
      log: { warn: () => undefined, error: () => undefined } as unknown as CallRecordingDeps['log'],
      maxBytes: 1 << 20,
    } satisfies CallRecordingDeps;
    const recording = new CallRecording(deps, { announcement: 'This call is recorded.' } as RecordingSettings, 16_000);
    recording.prepareKey(tenantId, conversationId, undefined);
    recording.caller(new Int16Array(1600).fill(1000));
    return { recording, blobs };
  }

  it('retries the reference through a short tenant-data outage instead of losing the recording', async () => {
    let attempts = 0;
    const { recording, blobs } = recordingWith(() =>
      ++attempts < 3 ? Promise.reject(new ConnectError('tenant-data away', Code.Unavailable)) : Promise.resolve(),
    );
    const stored = await recording.store(tenantId, conversationId);
    expect(attempts).toBe(3);
    expect(stored?.recordingId).toBe(recording.recordingId);
    expect(blobs.size).toBe(1);
  });

  it('gives up at once on a refusal and deletes the blob no reference points at', async () => {
    let attempts = 0;
    const { recording, blobs } = recordingWith(() => {
      attempts++;
      return Promise.reject(new ConnectError('bad recording', Code.InvalidArgument));
    });
    await expect(recording.store(tenantId, conversationId)).rejects.toThrow(/bad recording/);
    expect(attempts).toBe(1);
    expect(blobs.size).toBe(0);
  });
});
