import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CiphertextMismatchError } from './errors.js';
import { openRecording, sealRecording } from './recording-envelope.js';

const scope = { tenantId: 't1', conversationId: 'c1', recordingId: 'r1' };

describe('recording envelope', () => {
  it('seals audio so that its bytes are not in the blob, and opens it with the same key and scope', () => {
    const key = randomBytes(32);
    const audio = randomBytes(4_096);
    const blob = sealRecording(key, scope, audio);
    expect(blob.includes(audio.subarray(0, 64))).toBe(false);
    expect(openRecording(key, scope, blob)).toEqual(audio);
  });

  it('refuses another key, another recording, changed bytes and a foreign format', () => {
    const key = randomBytes(32);
    const blob = sealRecording(key, scope, Buffer.from('pcm'));
    expect(() => openRecording(randomBytes(32), scope, blob)).toThrow(CiphertextMismatchError);
    expect(() => openRecording(key, { ...scope, recordingId: 'r2' }, blob)).toThrow(CiphertextMismatchError);
    const changed = Buffer.from(blob);
    changed.writeUInt8(changed.readUInt8(changed.length - 1) ^ 1, changed.length - 1);
    expect(() => openRecording(key, scope, changed)).toThrow(CiphertextMismatchError);
    expect(() => openRecording(key, scope, Buffer.alloc(40))).toThrow(CiphertextMismatchError);
    expect(() => sealRecording(randomBytes(16), scope, Buffer.from('x'))).toThrow(/32 bytes/);
  });
});
