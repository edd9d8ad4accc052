// The recorder over Peers over a Connect client of an in-memory tenant-data router: with RecordTurn
// (one call per batch, after the hold), without it (an older tenant-data pod in a rolling upgrade:
// UNIMPLEMENTED, so the parts go one RPC each, and RecordTurn is not asked again for a while), and
// for a conversation ended elsewhere (the record is refused whole; decisions and state still kept),
// and while tenant-data is away (the same record, same id, sent again within a bound; counted as
// lost in parley.turn_records when no attempt got through).
import { Code, ConnectError, createClient, createRouterTransport, type ServiceImpl } from '@connectrpc/connect';
import { metrics, type Meter, type MeterProvider } from '@opentelemetry/api';
import { initialGuardrailState } from '@parley/guardrails';
import type { Logger } from '@parley/platform';
import { TenantDataService, type RecordTurnRequest } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ConversationRecorder, HOLD_MAX_MS, TURN_RECORD_ATTEMPTS } from './conversation-recorder.js';
import { createPeers, RECORD_TURN_RETRY_MS, type PeerClients } from './peers.js';
import { ReplyWindows } from './reply-windows.js';

const tenantId = '00000000-0000-7000-8000-00000000000a';
const conversationId = '00000000-0000-7000-8000-00000000000b';

/** tenantData answers the given methods and records each call by name; every other method is UNIMPLEMENTED, as on a pod that predates it. */
function tenantData(impl: Partial<ServiceImpl<typeof TenantDataService>>) {
  const calls: string[] = [];
  const recorded: unknown[] = [];
  const answered = Object.fromEntries(
    Object.entries(impl).map(([name, fn]) => [
      name,
      (req: unknown, ctx: unknown) => {
        calls.push(name);
        recorded.push(req);
        return (fn as (r: unknown, c: unknown) => unknown)(req, ctx);
      },
    ]),
  ) as Partial<ServiceImpl<typeof TenantDataService>>;
  const client = createClient(
    TenantDataService,
    createRouterTransport(({ service }) => service(TenantDataService, answered)),
  );
  return { client, calls, recorded };
}

const log = { error: () => undefined, warn: () => undefined } as unknown as Logger;

/** outcomes counts what parley.turn_records was told, through a meter provider that keeps each add (set as the global one). */
const outcomes = new Map<string, number>();
const countingMeter = {
  createCounter: (name: string) => ({
    add: (n: number, attrs?: Record<string, string>) => {
      if (name !== 'parley.turn_records') return;
      const key = String(attrs?.['parley.turn_record.outcome']);
      outcomes.set(key, (outcomes.get(key) ?? 0) + n);
    },
  }),
} as unknown as Meter;
metrics.setGlobalMeterProvider({ getMeter: () => countingMeter } satisfies MeterProvider);
afterAll(() => metrics.disable());
beforeEach(() => outcomes.clear());

/** loggedTo is a logger that keeps each warning's and error's message. */
function loggedTo(lines: { warn: string[]; error: string[] }) {
  return {
    warn: (_: unknown, msg: string) => lines.warn.push(msg),
    error: (_: unknown, msg: string) => lines.error.push(msg),
  } as unknown as Logger;
}
const oldMethods = {
  appendTranscriptTurn: () => ({}),
  recordGuardrailDecision: () => ({}),
  putGuardrailState: () => ({}),
};

function recorderOver(td: ReturnType<typeof tenantData>, clock: () => number = Date.now, events = {}, windows?: ReplyWindows) {
  const peers = createPeers({ tenantData: td.client } as unknown as PeerClients, clock);
  return new ConversationRecorder(peers, log, tenantId, conversationId, events, windows);
}

function queueTurn(recorder: ConversationRecorder, turn: number) {
  recorder.turn('user', `question ${turn}`, undefined);
  recorder.turn('assistant', `answer ${turn}`, undefined);
  recorder.decision({ turn, rule: '', action: 'allow', on: 'user' });
  recorder.guardrailState(undefined, initialGuardrailState(turn));
}

describe('ConversationRecorder', () => {
  it('sends what a turn queued as one RecordTurn once the hold is released, and tells the conversation it is live', async () => {
    const td = tenantData({ recordTurn: () => ({ conversationState: 'live', firstSeq: 0 }) });
    let live = 0;
    const recorder = recorderOver(td, Date.now, { onLive: () => live++ });
    const release = recorder.hold();
    queueTurn(recorder, 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(td.calls).toEqual([]);
    release();
    await new Promise((r) => setImmediate(r));
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn']);
    expect(td.recorded[0]).toMatchObject({
      tenantId,
      conversationId,
      turns: [
        { role: 'user', textRedacted: 'question 1' },
        { role: 'assistant', textRedacted: 'answer 1' },
      ],
      decisions: [{ turn: 1, rule: '', action: 'allow', on: 'user' }],
    });
    expect(live).toBe(1);
  });

  it('does not keep what the caller said back longer than HOLD_MAX_MS under a hold', async () => {
    const td = tenantData({ recordTurn: () => ({ conversationState: 'live' }) });
    const recorder = recorderOver(td);
    const release = recorder.hold();
    recorder.turn('user', 'a long reply follows', undefined);
    await new Promise((r) => setTimeout(r, HOLD_MAX_MS + 100));
    expect(td.calls).toEqual(['recordTurn']);
    release();
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn']);
  });

  it("waits, once released, until no call of the process is waiting for its reply's first output", async () => {
    const td = tenantData({ recordTurn: () => ({ conversationState: 'live' }) });
    const windows = new ReplyWindows();
    const recorder = recorderOver(td, Date.now, {}, windows);
    const release = recorder.hold();
    queueTurn(recorder, 1);
    // Two other calls' turns are between their caller's words and their first audio.
    const closeOne = windows.open();
    const closeTwo = windows.open();
    release();
    await new Promise((r) => setTimeout(r, 30));
    expect(td.calls).toEqual([]);
    closeOne();
    closeOne();
    await new Promise((r) => setTimeout(r, 30));
    expect(td.calls).toEqual([]);
    closeTwo();
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn']);
    expect(windows.quiet).toBe(true);
    // With none open, the next turn's record goes on the loop turn after its release, as without windows.
    const again = recorder.hold();
    queueTurn(recorder, 2);
    again();
    await new Promise((r) => setImmediate(r));
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn', 'recordTurn']);
  });

  it('does not wait for reply windows longer than HOLD_MAX_MS, and drained() writes at once', async () => {
    const td = tenantData({ recordTurn: () => ({ conversationState: 'live' }) });
    const windows = new ReplyWindows();
    const recorder = recorderOver(td, Date.now, {}, windows);
    const close = windows.open();
    recorder.turn('user', 'calls keep talking', undefined);
    await new Promise((r) => setTimeout(r, HOLD_MAX_MS + 100));
    expect(td.calls).toEqual(['recordTurn']);
    recorder.turn('user', 'and the conversation ends', undefined);
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn', 'recordTurn']);
    // The window closing later writes nothing twice.
    close();
    await new Promise((r) => setTimeout(r, 20));
    expect(td.calls).toEqual(['recordTurn', 'recordTurn']);
  });

  it('stores the parts one RPC each, in order, when tenant-data answers RecordTurn with UNIMPLEMENTED, and asks again only after a while', async () => {
    const td = tenantData(oldMethods);
    const now = 1_000_000;
    const recorder = recorderOver(td, () => now);
    queueTurn(recorder, 1);
    await recorder.drained();
    // The RecordTurn that came back UNIMPLEMENTED is not among the answered calls.
    expect(td.calls).toEqual(['appendTranscriptTurn', 'appendTranscriptTurn', 'recordGuardrailDecision', 'putGuardrailState']);
    expect(td.recorded.slice(0, 2)).toMatchObject([
      { role: 'user', textRedacted: 'question 1' },
      { role: 'assistant', textRedacted: 'answer 1' },
    ]);
    // Within RECORD_TURN_RETRY_MS the old RPCs are used straight away; the same peers' other recorders too.
    td.calls.length = 0;
    queueTurn(recorder, 2);
    await recorder.drained();
    expect(td.calls).toEqual(['appendTranscriptTurn', 'appendTranscriptTurn', 'recordGuardrailDecision', 'putGuardrailState']);
  });

  it('asks for RecordTurn again once RECORD_TURN_RETRY_MS has passed (the upgrade has rolled on)', async () => {
    let upgraded = false;
    const td = tenantData({
      ...oldMethods,
      recordTurn: () => {
        if (!upgraded) throw new ConnectError('method not found', Code.Unimplemented);
        return { conversationState: 'live' };
      },
    });
    let now = 1_000_000;
    const recorder = recorderOver(td, () => now);
    queueTurn(recorder, 1);
    await recorder.drained();
    expect(td.calls[0]).toBe('recordTurn');
    expect(td.calls.slice(1)).toEqual(['appendTranscriptTurn', 'appendTranscriptTurn', 'recordGuardrailDecision', 'putGuardrailState']);
    upgraded = true;
    now += RECORD_TURN_RETRY_MS - 1;
    td.calls.length = 0;
    queueTurn(recorder, 2);
    await recorder.drained();
    expect(td.calls).not.toContain('recordTurn');
    now += 2;
    td.calls.length = 0;
    queueTurn(recorder, 3);
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn']);
  });

  it('tells the conversation it was ended elsewhere when RecordTurn is refused as ended, and still keeps the decisions and state', async () => {
    const td = tenantData({
      recordTurn: () => {
        throw new ConnectError('conversation has ended; its turns can no longer be recorded', Code.FailedPrecondition);
      },
      appendTranscriptTurn: () => {
        throw new ConnectError('conversation has ended; turns can no longer be added', Code.FailedPrecondition);
      },
      recordGuardrailDecision: () => ({}),
      putGuardrailState: () => ({}),
    });
    let ended = 0;
    const recorder = recorderOver(td, Date.now, { onEnded: () => ended++ });
    queueTurn(recorder, 1);
    await recorder.drained();
    expect(ended).toBe(1);
    expect(td.calls).toEqual([
      'recordTurn',
      'appendTranscriptTurn',
      'appendTranscriptTurn',
      'recordGuardrailDecision',
      'putGuardrailState',
    ]);
  });

  it('sends a record again, with the same record id, while tenant-data is away, and stores it once', async () => {
    // The first attempt commits but its answer is lost, the second runs out of time: tenant-data
    // keeps the record by its id, as the real one does, and the third attempt is answered.
    const stored = new Map<string, RecordTurnRequest>();
    let attempt = 0;
    const td = tenantData({
      recordTurn: (req: RecordTurnRequest) => {
        attempt++;
        if (!stored.has(req.recordId)) stored.set(req.recordId, req);
        if (attempt === 1) throw new ConnectError('connection reset', Code.Unavailable);
        if (attempt === 2) throw new ConnectError('deadline passed', Code.DeadlineExceeded);
        return { conversationState: 'live', firstSeq: 0 };
      },
    });
    const lines = { warn: [] as string[], error: [] as string[] };
    let live = 0;
    const peers = createPeers({ tenantData: td.client } as unknown as PeerClients);
    const recorder = new ConversationRecorder(peers, loggedTo(lines), tenantId, conversationId, { onLive: () => live++ });
    queueTurn(recorder, 1);
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn', 'recordTurn', 'recordTurn']);
    const ids = (td.recorded as RecordTurnRequest[]).map((r) => r.recordId);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect([...stored.values()].map((r) => r.turns.map((t) => t.textRedacted))).toEqual([['question 1', 'answer 1']]);
    expect(lines).toEqual({ warn: ['turn record not stored yet; retrying', 'turn record not stored yet; retrying'], error: [] });
    expect(live).toBe(1);
    expect(Object.fromEntries(outcomes)).toEqual({ stored_after_retry: 1 });
    // The next record is another: a new id, stored at the first attempt.
    queueTurn(recorder, 2);
    await recorder.drained();
    expect(new Set((td.recorded as RecordTurnRequest[]).map((r) => r.recordId)).size).toBe(2);
    expect(Object.fromEntries(outcomes)).toEqual({ stored_after_retry: 1, stored: 1 });
  });

  it('gives a record up after TURN_RECORD_ATTEMPTS, logs it and counts it as lost, and goes on with the next', async () => {
    let fail = true;
    const td = tenantData({
      recordTurn: () => {
        if (fail) throw new ConnectError('database away', Code.Unavailable);
        return { conversationState: 'live' };
      },
    });
    const lines = { warn: [] as string[], error: [] as string[] };
    const peers = createPeers({ tenantData: td.client } as unknown as PeerClients);
    const recorder = new ConversationRecorder(peers, loggedTo(lines), tenantId, conversationId);
    queueTurn(recorder, 1);
    await recorder.drained();
    expect(td.calls).toEqual(Array.from({ length: TURN_RECORD_ATTEMPTS }, () => 'recordTurn'));
    expect(lines.error).toEqual(['turn record not stored']);
    expect(lines.warn).toHaveLength(TURN_RECORD_ATTEMPTS - 1);
    expect(Object.fromEntries(outcomes)).toEqual({ lost: 1 });
    fail = false;
    queueTurn(recorder, 2);
    await recorder.drained();
    expect(td.calls).toHaveLength(TURN_RECORD_ATTEMPTS + 1);
    expect(lines.error).toEqual(['turn record not stored']);
    expect(Object.fromEntries(outcomes)).toEqual({ lost: 1, stored: 1 });
  });

  it('does not send again a record tenant-data refused for a reason a retry does not mend, and counts it as lost', async () => {
    const td = tenantData({
      recordTurn: () => {
        throw new ConnectError('turn record was already stored with other content', Code.AlreadyExists);
      },
    });
    const lines = { warn: [] as string[], error: [] as string[] };
    const peers = createPeers({ tenantData: td.client } as unknown as PeerClients);
    const recorder = new ConversationRecorder(peers, loggedTo(lines), tenantId, conversationId);
    queueTurn(recorder, 1);
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn']);
    expect(lines).toEqual({ warn: [], error: ['turn record not stored'] });
    expect(Object.fromEntries(outcomes)).toEqual({ lost: 1 });
  });
  it('stops retrying once the replica is stopping: the wait under way ends and the record is counted as lost, in one line', async () => {
    const td = tenantData({
      recordTurn: () => {
        throw new ConnectError('database away', Code.Unavailable);
      },
    });
    const errors: string[] = [];
    const stopping = new AbortController();
    // The replica starts stopping while the wait after the first failure is under way.
    const logged = {
      warn: () => queueMicrotask(() => stopping.abort()),
      error: (_: unknown, msg: string) => errors.push(msg),
    } as unknown as Logger;
    const peers = createPeers({ tenantData: td.client } as unknown as PeerClients);
    const recorder = new ConversationRecorder(peers, logged, tenantId, conversationId, {}, undefined, stopping.signal);
    queueTurn(recorder, 1);
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn']);
    expect(errors).toEqual(['turn record not stored']);
    expect(Object.fromEntries(outcomes)).toEqual({ lost: 1 });
    // Stopping already: a record that fails is not retried at all.
    queueTurn(recorder, 2);
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn', 'recordTurn']);
    expect(errors).toEqual(['turn record not stored', 'turn record not stored']);
    expect(Object.fromEntries(outcomes)).toEqual({ lost: 2 });
  });

  it('counts a retried record as lost, rather than store its parts one RPC each, when a later attempt is refused as ended', async () => {
    let attempt = 0;
    const td = tenantData({
      recordTurn: () => {
        attempt++;
        if (attempt === 1) throw new ConnectError('connection reset', Code.Unavailable);
        throw new ConnectError('conversation has ended', Code.FailedPrecondition);
      },
      ...oldMethods,
    });
    const lines = { warn: [] as string[], error: [] as string[] };
    let ended = 0;
    const peers = createPeers({ tenantData: td.client } as unknown as PeerClients);
    const recorder = new ConversationRecorder(peers, loggedTo(lines), tenantId, conversationId, { onEnded: () => ended++ });
    queueTurn(recorder, 1);
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn', 'recordTurn']);
    expect(ended).toBe(1);
    expect(lines.error).toEqual(['turn record not stored']);
    expect(Object.fromEntries(outcomes)).toEqual({ lost: 1 });
  });

  it('counts a retried record as lost, rather than store its parts one RPC each, when a later attempt meets a tenant-data without RecordTurn', async () => {
    let attempt = 0;
    const td = tenantData({
      recordTurn: () => {
        attempt++;
        if (attempt === 1) throw new ConnectError('connection reset', Code.Unavailable);
        throw new ConnectError('not implemented', Code.Unimplemented);
      },
      ...oldMethods,
    });
    const lines = { warn: [] as string[], error: [] as string[] };
    const peers = createPeers({ tenantData: td.client } as unknown as PeerClients);
    const recorder = new ConversationRecorder(peers, loggedTo(lines), tenantId, conversationId);
    queueTurn(recorder, 1);
    await recorder.drained();
    expect(td.calls).toEqual(['recordTurn', 'recordTurn']);
    expect(lines.error).toEqual(['turn record not stored']);
    expect(Object.fromEntries(outcomes)).toEqual({ lost: 1 });
  });
});
