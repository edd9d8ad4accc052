// A recorded call without an orchestrator: a conversation started, its recording key issued by
// secrets and its audio sealed into the blob store in recording format 2 exactly as the
// voice-orchestrator does (chunk by chunk), and the reference added to tenant-data. For tests of
// reading recordings (streamed reads, KEK rotation) that need a recording, not a call.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { recordingDurationMs, recordingFrame, recordingHeader } from '@parley/conversation';
import { RecordingSealer } from '@parley/envelope';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { expect } from 'vitest';
import type { PublicStack } from './fixture.js';

/** RECORDING_CHUNK_BYTES is the plaintext per sealed chunk, as the orchestrator seals (64 KiB). */
const RECORDING_CHUNK_BYTES = 64 * 1024;

/** StoredRecording is a recording the fixture stored, with its plaintext (to compare a read against). */
export interface StoredRecording {
  readonly conversationId: string;
  readonly recordingId: string;
  readonly blobKey: string;
  readonly plaintext: Buffer;
  readonly dataKey: Buffer;
  readonly sizeBytes: number;
}

/** callAudio is a recording's plaintext of `seconds` of both sides at `rate`: the caller, then the agent answering. */
export function callAudio(seconds: number, rate: number): Buffer {
  const frames: Buffer[] = [recordingHeader(rate)];
  const frame = rate / 50;
  for (let ms = 0; ms < seconds * 1000; ms += 20) {
    const base = Math.floor((ms * rate) / 1000);
    const side = Math.floor(ms / 1000) % 2 === 0 ? 'caller' : 'agent';
    const period = side === 'caller' ? 7 : 3;
    // A plain loop: Int16Array.from with a mapping function took seconds for a half-hour call.
    const samples = new Int16Array(frame);
    for (let i = 0; i < frame; i++) samples[i] = Math.round(8_000 * Math.sin((base + i) / period));
    frames.push(recordingFrame(side, ms, samples));
  }
  return Buffer.concat(frames);
}

/** storeRecording records `plaintext` for a new conversation of the stack's bootstrap workspace, without a subject; its reference says the duration the frames lay out to, or `durationMs` when given. */
export async function storeRecording(
  stack: PublicStack,
  blobDir: string,
  plaintext: Buffer,
  options: { durationMs?: number } = {},
): Promise<StoredRecording> {
  const { tenantId, apiKey } = stack.bootstrap;
  const created = await stack.call('/parley.api.v1.AgentService/CreateAgent', { name: `recorded-${randomUUID().slice(0, 8)}` }, apiKey);
  expect(created.status, JSON.stringify(created.body)).toBe(200);
  const agentId = (created.body.agent as { id: string }).id;
  const tenantData = await stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService);
  const secrets = await stack.clientAs('voice-orchestrator', 'secrets', SecretsService);
  const { conversation } = await tenantData.startConversation({ tenantId, agentId });
  const conversationId = conversation!.id;
  const recordingId = randomUUID();
  const issued = await secrets.issueRecordingKey({ tenantId, conversationId, recordingId });
  expect(issued.wrappedKey).toMatch(/^conversation:v2:/);
  const sealer = new RecordingSealer(issued.dataKey, { tenantId, conversationId, recordingId });
  const sealed: Buffer[] = [sealer.header()];
  for (let at = 0; at < plaintext.length; at += RECORDING_CHUNK_BYTES)
    sealed.push(sealer.seal(plaintext.subarray(at, at + RECORDING_CHUNK_BYTES), at + RECORDING_CHUNK_BYTES >= plaintext.length));
  sealer.wipe();
  const blob = Buffer.concat(sealed);
  const blobKey = `recordings/${tenantId}/${conversationId}/${recordingId}.pra`;
  const path = join(blobDir, blobKey);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, blob, { mode: 0o600 });
  await tenantData.addRecording({
    tenantId,
    conversationId,
    id: recordingId,
    blobKey,
    durationMs: options.durationMs ?? recordingDurationMs(plaintext),
    dataClass: 'audio_full',
    sizeBytes: BigInt(blob.length),
    wrappedKey: issued.wrappedKey,
  });
  await tenantData.endConversation({ tenantId, conversationId });
  return { conversationId, recordingId, blobKey, plaintext, dataKey: Buffer.from(issued.dataKey), sizeBytes: blob.length };
}
