import { createContextValues, type CallOptions, type HandlerContext } from '@connectrpc/connect';
import { ConversationService } from '@parley/proto/parley/api/v1/conversations_pb.js';
import { describe, expect, it } from 'vitest';
import { conversationsModule } from './conversations.js';
import type { PublicDeps } from './deps.js';
import { principalKey } from './module.js';

describe('StreamRecording', () => {
  // Only what the handler reads of a handler context: its deadline, signal and principal.
  const context = (timeoutMs: number | undefined): HandlerContext => {
    const values = createContextValues();
    values.set(principalKey, {
      tenantId: '6a1f3c2d-1111-4e2b-8c3d-9e8f7a6b5c4d',
      kind: 'api_key',
      id: 'key-1',
      scopes: ['conversations:read'],
      source: '127.0.0.1',
      userAgent: 'test',
    });
    return { timeoutMs: () => timeoutMs, signal: new AbortController().signal, values } as unknown as HandlerContext;
  };
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
    for await (const _ of handlers.streamRecording!({ conversationId: 'c', recordingId: 'r' }, context(callerMs)));
    return given!;
  };

  it("gives the internal stream the long-read deadline (it holds one of tenant-data's read slots while it lasts), never none", async () => {
    expect((await streamWith(undefined, undefined)).timeoutMs).toBe(600_000);
    expect((await streamWith(120_000, undefined)).timeoutMs).toBe(120_000);
    expect((await streamWith(120_000, 30_000)).timeoutMs).toBe(30_000);
    expect((await streamWith(120_000, 3_600_000)).timeoutMs).toBe(120_000);
  });
});
