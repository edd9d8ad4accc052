import { createContextValues, type CallOptions, type HandlerContext } from '@connectrpc/connect';
import { ConversationService } from '@parley/proto/parley/api/v1/conversations_pb.js';
import { describe, expect, it } from 'vitest';
import { conversationsModule } from './conversations.js';
import { DEFAULT_LONG_READ_DEADLINE_MS, longReadDeadlineMs, forwardLongRead, type PublicDeps } from './deps.js';
import { principalKey } from './module.js';

// Only what the long reads read of a handler context: its deadline, signal and principal.
function context(timeoutMs: number | undefined, scope = 'audit:read'): HandlerContext {
  const values = createContextValues();
  values.set(principalKey, {
    tenantId: '6a1f3c2d-1111-4e2b-8c3d-9e8f7a6b5c4d',
    kind: 'api_key',
    id: 'key-1',
    scopes: [scope],
    source: '127.0.0.1',
    userAgent: 'test',
  });
  return { timeoutMs: () => timeoutMs, signal: new AbortController().signal, values } as unknown as HandlerContext;
}

describe('longReadDeadlineMs', () => {
  it("is the caller's own deadline within the cap, the cap without one, and never 0 (no deadline)", () => {
    expect(longReadDeadlineMs(undefined, 600_000)).toBe(600_000);
    expect(longReadDeadlineMs(90_000, 600_000)).toBe(90_000);
    expect(longReadDeadlineMs(3_600_000, 600_000)).toBe(600_000);
    expect(longReadDeadlineMs(0, 600_000)).toBe(1);
    expect(longReadDeadlineMs(-5, 600_000)).toBe(1);
  });
});

describe('forwardLongRead', () => {
  it('gives the internal call of a long read (export, verify) 10 minutes, not the internal default, when the caller sent no deadline', () => {
    expect(DEFAULT_LONG_READ_DEADLINE_MS).toBe(600_000);
    expect(forwardLongRead(context(undefined)).timeoutMs).toBe(600_000);
    expect(forwardLongRead(context(undefined), 120_000).timeoutMs).toBe(120_000);
    expect(forwardLongRead(context(45_000)).timeoutMs).toBe(45_000);
  });
});

describe('StreamRecording', () => {
  // The internal stream is recorded, not run: what is under test is the deadline the edge gives it.
  const streamWith = async (longReadDeadlineMs: number | undefined, callerMs: number | undefined): Promise<CallOptions> => {
    let given: CallOptions | undefined;
    const deps = {
      longReadDeadlineMs,
      client: () => ({
        streamRecordingAudio(_req: unknown, options: CallOptions) {
          given = options;
          return [];
        },
      }),
    } as unknown as PublicDeps;
    let handlers: Record<string, (req: unknown, ctx: HandlerContext) => AsyncIterable<unknown>> = {};
    conversationsModule.register(
      {
        service: (service: unknown, implementation: typeof handlers) => {
          if (service === ConversationService) handlers = implementation;
        },
      } as never,
      deps,
    );
    for await (const _ of handlers.streamRecording!({ conversationId: 'c', recordingId: 'r' }, context(callerMs, 'conversations:read')));
    return given!;
  };

  it("gives the internal stream the long-read deadline (it holds one of tenant-data's read slots while it lasts), never none", async () => {
    expect((await streamWith(undefined, undefined)).timeoutMs).toBe(600_000);
    expect((await streamWith(120_000, undefined)).timeoutMs).toBe(120_000);
    expect((await streamWith(120_000, 30_000)).timeoutMs).toBe(30_000);
    expect((await streamWith(120_000, 3_600_000)).timeoutMs).toBe(120_000);
  });
});
