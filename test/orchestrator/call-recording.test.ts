// Recorded calls end to end (voice issue, item 6): an agent whose settings turn recording on
// announces it first (and asks for consent when set), the orchestrator keeps both sides' audio
// and stores it encrypted in the blob store (the local file store, then S3 through the stand-in
// of test/s3-standin), tenant-data keeps the reference, and the audio comes back only through
// the public API as an audited read; a shredded subject key makes it unreadable and forget
// deletes the blob. Real processes on the run's Postgres.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulawDecode, mulawEncode } from '@parley/voice-orchestrator';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import wavefile from 'wavefile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Standin, type S3Standin } from '../src/s3-standin.js';
import { startConversationStack, type ConversationStack, type SessionClient } from './fixture.js';
import { mediaSender, openMediaStream, startMessage, until } from './twilio.fixture.js';
import { realTime } from './voice.fixture.js';

const RATE = 16_000;
const ANNOUNCEMENT = 'This call is recorded for quality.';
const PROMPT = 'Say yes if you agree to the recording.';
const DECLINED = 'Fine, nothing of this call is recorded.';

let s: ConversationStack;
let s3: S3Standin;
let blobDir: string;
let ownerKey: string;

/** callerSpeech is a distinctive caller signal: a chirp whose bytes the test can look for at rest and in the WAV. */
function callerSpeech(seconds: number, rate: number): Int16Array {
  const out = new Int16Array(Math.round(seconds * rate));
  for (let i = 0; i < out.length; i++) out[i] = Math.round(7_000 * Math.sin((2 * Math.PI * (200 + (i % 4_000) / 10) * i) / rate));
  return out;
}

const bytesOf = (samples: Int16Array) => Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);

function received(client: SessionClient): Int16Array {
  const bytes = Buffer.concat(client.audio.map((a) => a.bytes));
  return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
}

/** contains tells whether haystack has needle's samples in a row. */
function contains(haystack: Int16Array, needle: Int16Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).includes(bytesOf(needle));
}

async function api(path: string, body: Record<string, unknown>) {
  return s.stack.call(`/parley.api.v1.ConversationService/${path}`, body, ownerKey);
}

async function listRecordings(conversationId: string) {
  const res = await api('ListRecordings', { conversationId });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return (res.body.recordings ?? []) as { id: string; sizeBytes: string; durationMs: number; keyRef: string; retentionClass: string }[];
}

function wavChannels(base64: string): { rate: number; left: Int16Array; right: Int16Array } {
  const wav = new wavefile.WaveFile(Buffer.from(base64, 'base64'));
  const fmt = wav.fmt as { numChannels: number; sampleRate: number; bitsPerSample: number };
  expect(fmt).toMatchObject({ numChannels: 2, bitsPerSample: 16 });
  const [left, right] = wav.getSamples(false, Int16Array) as unknown as [Int16Array, Int16Array];
  return { rate: fmt.sampleRate, left, right };
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

async function startVoice(agentId: string, subjectRef?: string) {
  const { token } = await s.createSession(agentId, subjectRef === undefined ? {} : { subjectRef });
  const client = await s.connect();
  client.send({ type: 'start', token, audio: { format: 'pcm16', sampleRate: RATE } });
  const ready = await client.next((f) => f.type === 'ready', 15_000);
  return { client, conversationId: ready.conversationId as string };
}

async function transcript(conversationId: string): Promise<[string, string][]> {
  const res = await api('ListTranscriptTurns', { conversationId });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return ((res.body.turns ?? []) as { role: string; text: string }[]).map((t) => [t.role, t.text]);
}

beforeAll(async () => {
  blobDir = await mkdtemp(join(tmpdir(), 'parley-blobs-'));
  s3 = await startS3Standin();
  s = await startConversationStack(
    { PARLEY_BLOB_DIR: blobDir, PARLEY_SESSION_MESSAGES_PER_SECOND: '100', PARLEY_SESSION_MESSAGE_BURST: '200' },
    { 'tenant-data': { PARLEY_BLOB_DIR: blobDir } },
  );
  ownerKey = s.stack.bootstrap.apiKey;
}, 180_000);

afterAll(async () => {
  if (process.env.DUMP_LOGS === '1') console.log(s?.logs.filter((l) => l.startsWith('[voice-orchestrator]')).join('\n'));
  await s?.stop();
  await s3?.stop();
  await rm(blobDir, { recursive: true, force: true });
});

describe('call recording', () => {
  it('refuses recording settings that are not valid when the agent is saved', async () => {
    const res = await s.stack.call(
      '/parley.api.v1.AgentService/CreateAgent',
      { name: 'bad-recording', providerSettings: { recording: { announcement: '', consent: { timeoutMs: 5 } } } },
      ownerKey,
    );
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toMatch(/recording/);
  });

  it('announces first, asks consent, stores both sides encrypted under the subject key, reads back only through the API, and is unreadable once the key is shredded', async () => {
    const agent = await s.createAgent({
      providerSettings: {
        llm: { provider: 'scripted', rules: [{ match: 'hello', reply: 'Hello, how can I help?' }], delayMs: 0 },
        recording: { announcement: ANNOUNCEMENT, consent: { prompt: PROMPT } },
      },
    });
    const { client, conversationId } = await startVoice(agent, `caller-${conversationId_suffix()}`);
    // The announcement and the question are said before anything else.
    const intro = await client.reply(30_000);
    expect(intro.sentences).toEqual([ANNOUNCEMENT, PROMPT]);
    expect(client.frames.find((f) => f.type === 'event' && f.name === 'recording')).toMatchObject({ state: 'awaiting_consent' });
    client.send({ type: 'user_text', text: 'Yes, that is fine.' });
    await client.next((f) => f.type === 'event' && f.name === 'recording' && f.state === 'recording');
    const speech = callerSpeech(1, RATE);
    await realTime(speech, RATE, (slice) => client.sendAudio(slice));
    client.send({ type: 'user_text', text: 'hello' });
    const reply = await client.reply(30_000);
    expect(reply.sentences).toEqual(['Hello, how can I help?']);
    client.send({ type: 'end' });
    await client.closed;

    const [recording] = await eventually(
      async () => {
        const list = await listRecordings(conversationId);
        return list.length > 0 ? list : undefined;
      },
      15_000,
      recordingDiagnosis,
    );
    const conversation = (await api('GetConversation', { conversationId })).body.conversation as { subjectId: string };
    expect(recording).toMatchObject({ keyRef: `subject:${conversation.subjectId}`, retentionClass: 'recording' });
    expect(recording!.durationMs).toBeGreaterThan(1_000);

    // At rest: one file, ciphertext, holding neither side's audio.
    const files = (await filesUnder(blobDir)).filter((f) => f.includes(conversationId));
    expect(files).toHaveLength(1);
    const atRest = await readFile(files[0]!);
    expect(String(atRest.length)).toBe(recording!.sizeBytes);
    const agentAudio = received(client);
    expect(agentAudio.length).toBeGreaterThan(RATE);
    expect(atRest.includes(bytesOf(speech.subarray(0, 160)))).toBe(false);
    expect(atRest.includes(bytesOf(agentAudio.subarray(RATE / 2, RATE / 2 + 160)))).toBe(false);

    // Through the API: the caller on the left, the agent on the right, the announcement included.
    const read = await api('GetRecording', { conversationId, recordingId: recording!.id });
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    const wav = wavChannels(read.body.wav as string);
    expect(wav.rate).toBe(RATE);
    expect(contains(wav.left, speech.subarray(0, 320))).toBe(true);
    expect(contains(wav.right, agentAudio.subarray(0, 320))).toBe(true);
    expect(contains(wav.right, agentAudio.subarray(agentAudio.length - 320))).toBe(true);
    // The read is an access event in the audit log: by the caller's key, of this recording.
    const [event] = await eventually(async () => {
      const events = await s.stack.call(
        '/parley.api.v1.AuditService/ListEvents',
        { filter: { action: 'recording.read', targetId: recording!.id } },
        ownerKey,
      );
      const audio = ((events.body.events ?? []) as { actorKind: string; description?: { audio?: boolean } }[]).filter(
        (e) => e.description?.audio === true,
      );
      return audio.length === 1 ? audio : undefined;
    }, 15_000);

    expect(event?.actorKind).toBe('api_key');

    // The transcript starts with the announcement and the consent step.
    const turns = await transcript(conversationId);
    expect(turns.slice(0, 5)).toEqual([
      ['assistant', ANNOUNCEMENT],
      ['assistant', PROMPT],
      ['system', 'call recording announced: consent asked'],
      ['user', 'Yes, that is fine.'],
      ['system', 'recording consent given: the call is recorded'],
    ]);
    expect(turns.at(-1)?.[1]).toMatch(/^call recording stored: \d+\.\d s$/);

    // Forget: the subject key is shredded (the first step of lifecycle's saga) and the audio is
    // unreadable though its blob is still there; tenant-data's forget then deletes the blob.
    const tenantId = s.stack.bootstrap.tenantId;
    const secrets = await s.stack.clientAs('lifecycle', 'secrets', SecretsService);
    await secrets.shredSubjectKey({ tenantId, subjectId: conversation.subjectId });
    const after = await api('GetRecording', { conversationId, recordingId: recording!.id });
    expect(after.status).toBe(400);
    expect(after.body.code).toBe('failed_precondition');
    expect(String(after.body.message)).toMatch(/erased/);
    expect((await filesUnder(blobDir)).filter((f) => f.includes(conversationId))).toHaveLength(1);
    const tenantData = await s.stack.clientAs('lifecycle', 'tenant-data', TenantDataService);
    const forgot = await tenantData.forgetSubject({ tenantId, subjectId: conversation.subjectId });
    expect(forgot.recordings).toBe(1);
    expect(forgot.blobKeys).toEqual([expect.stringContaining(recording!.id)]);
    expect((await filesUnder(blobDir)).filter((f) => f.includes(conversationId))).toEqual([]);
  });

  it('stores nothing for an agent without recording', async () => {
    const agent = await s.createAgent({ providerSettings: { llm: { provider: 'scripted', delayMs: 0 } } });
    const { client, conversationId } = await startVoice(agent);
    await realTime(callerSpeech(0.5, RATE), RATE, (slice) => client.sendAudio(slice));
    client.send({ type: 'user_text', text: 'hello' });
    await client.reply(30_000);
    client.send({ type: 'end' });
    await client.closed;
    expect(client.frames.some((f) => f.type === 'event' && f.name === 'recording')).toBe(false);
    expect(await listRecordings(conversationId)).toEqual([]);
    expect((await filesUnder(blobDir)).filter((f) => f.includes(conversationId))).toEqual([]);
    expect((await transcript(conversationId)).some(([, text]) => /record/i.test(text))).toBe(false);
  });

  it('stores nothing when the caller refuses consent, and says so', async () => {
    const agent = await s.createAgent({
      providerSettings: {
        llm: { provider: 'scripted', delayMs: 0 },
        recording: { announcement: ANNOUNCEMENT, consent: { prompt: PROMPT, declinedLine: DECLINED } },
      },
    });
    const { client, conversationId } = await startVoice(agent);
    await client.reply(30_000);
    await realTime(callerSpeech(0.3, RATE), RATE, (slice) => client.sendAudio(slice));
    client.send({ type: 'user_text', text: 'No, I do not want that.' });
    await client.next((f) => f.type === 'event' && f.name === 'recording' && f.state === 'declined');
    expect((await client.reply(30_000)).sentences).toEqual([DECLINED]);
    // The conversation goes on, unrecorded.
    client.send({ type: 'user_text', text: 'hello' });
    expect((await client.reply(30_000)).sentences).toEqual(['You said: hello']);
    client.send({ type: 'end' });
    await client.closed;
    expect(await listRecordings(conversationId)).toEqual([]);
    expect((await filesUnder(blobDir)).filter((f) => f.includes(conversationId))).toEqual([]);
    expect(await transcript(conversationId)).toEqual([
      ['assistant', ANNOUNCEMENT],
      ['assistant', PROMPT],
      ['system', 'call recording announced: consent asked'],
      ['user', 'No, I do not want that.'],
      ['system', 'recording consent refused: nothing of the call is recorded'],
      ['assistant', DECLINED],
      ['user', 'hello'],
      ['assistant', 'You said: hello'],
    ]);
  });

  it('takes no answer within the consent timeout as a no', async () => {
    const agent = await s.createAgent({
      providerSettings: {
        llm: { provider: 'scripted', delayMs: 0 },
        recording: { announcement: ANNOUNCEMENT, consent: { prompt: PROMPT, declinedLine: DECLINED, timeoutMs: 1_000 } },
      },
    });
    const { client, conversationId } = await startVoice(agent);
    await client.reply(30_000);
    await realTime(callerSpeech(0.3, RATE), RATE, (slice) => client.sendAudio(slice));
    await client.next((f) => f.type === 'event' && f.name === 'recording' && f.state === 'declined', 30_000);
    expect((await client.reply(30_000)).sentences).toEqual([DECLINED]);
    client.send({ type: 'end' });
    await client.closed;
    expect(await listRecordings(conversationId)).toEqual([]);
    expect((await transcript(conversationId)).slice(3)).toEqual([
      ['system', 'recording consent not answered: nothing of the call is recorded'],
      ['assistant', DECLINED],
    ]);
  });

  it('refuses bad reads and key requests with codes that say what to fix', async () => {
    const tenantId = s.stack.bootstrap.tenantId;
    const agent = await s.createAgent({ providerSettings: { llm: { provider: 'scripted', delayMs: 0 } } });
    const asOrchestrator = await s.tenantData();
    const { conversation } = await asOrchestrator.startConversation({ tenantId, agentId: agent, subjectId: '', conversationId: '' });
    const conversationId = conversation!.id;
    // A reference Parley did not encrypt (no sealed key) is not served as audio.
    const { recording } = await asOrchestrator.addRecording({
      tenantId,
      conversationId,
      blobKey: `elsewhere/${conversationId}.opus`,
      durationMs: 1000,
      dataClass: 'audio_full',
    });
    const bad = async (body: Record<string, unknown>, status: number, code: string, message: RegExp) => {
      const res = await api('GetRecording', body);
      expect([res.status, res.body.code], JSON.stringify(res.body)).toEqual([status, code]);
      expect(String(res.body.message)).toMatch(message);
    };
    await bad({ conversationId, recordingId: 'nope' }, 400, 'invalid_argument', /recording_id/);
    await bad({ conversationId, recordingId: '0190a8c4-0000-7000-8000-000000000000' }, 404, 'not_found', /recording/);
    await bad({ conversationId, recordingId: recording!.id }, 400, 'failed_precondition', /holds no audio Parley encrypted/);

    const secretsAsOrchestrator = await s.stack.clientAs('voice-orchestrator', 'secrets', SecretsService);
    const recordingId = '0190a8c4-0000-7000-8000-000000000001';
    const issued = await secretsAsOrchestrator.issueRecordingKey({ tenantId, conversationId, subjectId: '', recordingId });
    expect(issued.dataKey).toHaveLength(32);
    expect(issued.wrappedKey).not.toContain(Buffer.from(issued.dataKey).toString('base64'));
    await expect(
      secretsAsOrchestrator.issueRecordingKey({ tenantId, conversationId, subjectId: '', recordingId: 'x' }),
    ).rejects.toMatchObject({
      code: 3,
      rawMessage: expect.stringMatching(/recording_id/),
    });
    // Only the orchestrator gets recording keys, only tenant-data opens them.
    const secretsAsTenantData = await s.stack.clientAs('tenant-data', 'secrets', SecretsService);
    await expect(secretsAsTenantData.issueRecordingKey({ tenantId, conversationId, subjectId: '', recordingId })).rejects.toMatchObject({
      code: 7,
    });
    await expect(
      secretsAsOrchestrator.openRecordingKey({ tenantId, subjectId: '', recordingId, wrappedKey: issued.wrappedKey }),
    ).rejects.toMatchObject({
      code: 7,
    });
    // An encrypted recording's reference must name its own workspace's and conversation's blob:
    // purge and forget delete only those, so no writer can aim them at another tenant's audio.
    await expect(
      asOrchestrator.addRecording({
        tenantId,
        conversationId,
        id: recordingId,
        blobKey: `recordings/00000000-0000-7000-8000-0000000000ff/${conversationId}/${recordingId}.pra`,
        durationMs: 1000,
        dataClass: 'audio_full',
        wrappedKey: issued.wrappedKey,
      }),
    ).rejects.toMatchObject({ code: 3, rawMessage: expect.stringMatching(/blob_key .* must start with recordings\//) });
    const opened = await secretsAsTenantData.openRecordingKey({ tenantId, subjectId: '', recordingId, wrappedKey: issued.wrappedKey });
    expect(Buffer.from(opened.dataKey)).toEqual(Buffer.from(issued.dataKey));
    expect(issued.wrappedKey).toMatch(/^conversation:v2:/);
    // The sealed key opens only for its own recording of its own workspace: secrets is no oracle
    // that unwraps any KEK-wrapped key (a secret version's, a subject's) for tenant-data.
    await expect(
      secretsAsTenantData.openRecordingKey({
        tenantId,
        subjectId: '',
        recordingId: '0190a8c4-0000-7000-8000-000000000002',
        wrappedKey: issued.wrappedKey,
      }),
    ).rejects.toMatchObject({ code: 3, rawMessage: expect.stringMatching(/not issued for this recording/) });
    const sealedParts = JSON.parse(Buffer.from(issued.wrappedKey.slice('conversation:v2:'.length), 'base64url').toString('utf8')) as {
      w: string;
    };
    await expect(
      secretsAsTenantData.openRecordingKey({ tenantId, subjectId: '', recordingId, wrappedKey: `conversation:v1:${sealedParts.w}` }),
    ).rejects.toMatchObject({ code: 3, rawMessage: expect.stringMatching(/wrapped_key/) });
    await expect(secretsAsTenantData.openRecordingKey({ tenantId, subjectId: '', recordingId, wrappedKey: 'plain' })).rejects.toMatchObject(
      {
        code: 3,
        rawMessage: expect.stringMatching(/wrapped_key/),
      },
    );
    // An ended conversation gets no new recording key.
    await asOrchestrator.endConversation({ tenantId, conversationId, endReason: 'done' });
    await expect(secretsAsOrchestrator.issueRecordingKey({ tenantId, conversationId, subjectId: '', recordingId })).rejects.toMatchObject({
      code: 9,
      rawMessage: expect.stringMatching(/only a live call is recorded/),
    });
  });

  it('records a Twilio call into S3 (the stand-in) under a per-conversation key, consent by the key 1, and reads it back through the API', async () => {
    // tenant-data and the orchestrator both move to the S3 store.
    const s3Env = {
      PARLEY_BLOB_STORE: 's3',
      PARLEY_S3_ENDPOINT: s3.endpoint,
      PARLEY_S3_BUCKET: s3.bucket,
      PARLEY_S3_REGION: s3.region,
      PARLEY_S3_ACCESS_KEY_ID: s3.accessKeyId,
      PARLEY_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      PARLEY_S3_PREFIX: 'parley/',
    };
    const tenantDataProcess = s.stack.processes['tenant-data'];
    await tenantDataProcess.stop();
    tenantDataProcess.start(s3Env);
    await tenantDataProcess.waitReady(30_000);
    await s.orchestrator.stop();
    await s.startOrchestrator(s3Env);

    const agent = await s.createAgent({
      providerSettings: {
        llm: { provider: 'scripted', delayMs: 0 },
        recording: { announcement: ANNOUNCEMENT, consent: { prompt: 'Press 1 to agree to the recording.' } },
      },
    });
    const { token, sessionId } = await s.createSession(agent, { origin: '' });
    const c = await openMediaStream(s.sessionUrl.replace('/v1/session', '/v1/telephony/twilio/media-stream'), s.stack.ca);
    const ids = {
      streamSid: 'MZ0123456789abcdef0123456789abcdef',
      accountSid: 'AC0123456789abcdef0123456789abcdef',
      callSid: 'CA0123456789abcdef0123456789abcdef',
    };
    c.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    c.send(startMessage(ids, token));
    // The announcement and the question are spoken (a mark follows the reply), then the caller presses 1.
    await until(() => c.received.find((m) => m.event === 'mark'), 30_000);
    c.send({ event: 'dtmf', streamSid: ids.streamSid, dtmf: { track: 'inbound_track', digit: '1' } });
    const speech = callerSpeech(1, 8_000);
    await new Promise((r) => setTimeout(r, 200));
    await realTime(speech, 8_000, mediaSender(c, ids.streamSid));
    // The object store answers slowly now: the call still ends at once, and the recording is stored after.
    s3.stallMs = 10_000;
    c.send({ event: 'stop', streamSid: ids.streamSid, stop: { accountSid: ids.accountSid, callSid: ids.callSid } });
    await c.closed;
    // At once: the call closed before the store answered anything of its recording (a call that
    // waited for the upload would close only after the 10 s stall): a count, not a wall-clock bound.
    expect(s3.requests.filter((r) => r.key.includes(sessionId))).toEqual([]);
    expect(await listRecordings(sessionId)).toEqual([]);
    s3.stallMs = 0;

    const [recording] = await eventually(async () => {
      const list = await listRecordings(sessionId);
      return list.length > 0 ? list : undefined;
    }, 60_000);
    expect(recording).toMatchObject({ keyRef: 'conversation', retentionClass: 'recording' });
    const objectKey = `parley/recordings/${s.stack.bootstrap.tenantId}/${sessionId}/${recording!.id}.pra`;
    const atRest = s3.objects.get(objectKey);
    expect(atRest?.length).toBe(Number(recording!.sizeBytes));
    // What the orchestrator heard is the μ-law decoding of what was sent: not at rest, but in the WAV.
    const heard = mulawDecode(mulawEncode(speech));
    expect(atRest!.includes(bytesOf(heard.subarray(0, 160)))).toBe(false);
    expect(await filesUnder(join(blobDir, 'recordings', s.stack.bootstrap.tenantId, sessionId))).toEqual([]);

    const read = await api('GetRecording', { conversationId: sessionId, recordingId: recording!.id });
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    const wav = wavChannels(read.body.wav as string);
    expect(wav.rate).toBe(8_000);
    expect(contains(wav.left, heard.subarray(0, 160))).toBe(true);
    expect(Math.max(...wav.right.map(Math.abs))).toBeGreaterThan(1_000);
    expect((await transcript(sessionId)).slice(3, 5)).toEqual([
      ['user', '1'],
      ['system', 'recording consent given: the call is recorded'],
    ]);

    // The retention purge deletes the reference and its object.
    const tenantData = await s.stack.clientAs('lifecycle', 'tenant-data', TenantDataService);
    const purged = await tenantData.purgeExpired({
      tenantId: s.stack.bootstrap.tenantId,
      dataClass: 'recording',
      before: { seconds: BigInt(Math.floor(Date.now() / 1000) + 60), nanos: 0 },
      heldConversationIds: [],
      heldSubjectIds: [],
      limit: 100,
    });
    expect(purged.blobKeys).toContain(`recordings/${s.stack.bootstrap.tenantId}/${sessionId}/${recording!.id}.pra`);
    expect(s3.objects.has(objectKey)).toBe(false);
    expect(s3.requests.some((r) => r.method === 'DELETE' && r.key === objectKey && r.status === 204)).toBe(true);
    // Two restarts, 8 s of real-time speech and a 10 s store stall: more than the default 60 s on a loaded machine.
  }, 180_000);
});

/** eventually polls find every 100 ms until it returns a value (throws after timeoutMs). */
async function eventually<T>(find: () => Promise<T | undefined>, timeoutMs: number, diagnose?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`not there after ${timeoutMs} ms${diagnose === undefined ? '' : `\n${diagnose()}`}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** recordingDiagnosis is what the processes said about recordings and keys: why none was listed (a failed peer call, a timeout). */
function recordingDiagnosis(): string {
  const lines = s.logs.filter((l) => /recording|data key|deadline|error/i.test(l)).slice(-20);
  return lines.length > 0 ? lines.join('\n') : '(no log line mentions a recording)';
}

let suffix = 0;
function conversationId_suffix(): string {
  return `${Date.now()}-${++suffix}`;
}
