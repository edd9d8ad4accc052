// Shared by the Twilio tests: a client that speaks Twilio Media Streams' documented messages
// (https://www.twilio.com/docs/voice/media-streams/websocket-messages) to the session port.
import { CertificateSource, createServiceClient } from '@parley/platform';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { mulawDecode, mulawEncode } from '@parley/voice-orchestrator';
import WebSocket from 'ws';
import type { ConversationStack } from './fixture.js';

/** Outbound is a message the orchestrator sends to Twilio. */
export type Outbound = { event: string; streamSid?: string; media?: { payload: string }; mark?: { name: string } };

/** MediaStream is an open Media Streams connection: what it received so far, its close, and a sender. */
export interface MediaStream {
  readonly ws: WebSocket;
  readonly received: Outbound[];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** send sends a message with the next sequenceNumber, as Twilio numbers them. */
  send(message: Record<string, unknown>): void;
}

/** openMediaStream connects as Twilio does (no Origin header) and collects what the orchestrator sends. */
export async function openMediaStream(url: string, ca: string | Buffer): Promise<MediaStream> {
  const ws = new WebSocket(url, { ca });
  const received: Outbound[] = [];
  ws.on('message', (data: Buffer) => received.push(JSON.parse(data.toString('utf8')) as Outbound));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let seq = 1;
  const send = (m: Record<string, unknown>) => ws.send(JSON.stringify({ ...m, sequenceNumber: String(seq++) }));
  return { ws, received, closed, send };
}

/**
 * untilLive waits until the orchestrator lists the call's conversation as live (asking as the edge
 * does), or the stream closed (a refused start). The orchestrator drops caller audio sent before
 * its start is done, as a phone line would: a fixed pause before speaking is too short on a
 * loaded machine, where checking the token and starting the conversation take seconds.
 */
export async function untilLive(s: ConversationStack, stream: MediaStream, conversationId: string, timeoutMs = 60_000): Promise<void> {
  const orchestrator = createServiceClient(OrchestratorService, {
    baseUrl: s.orchestratorUrl,
    certificates: await CertificateSource.open(s.stack.pki.files('edge')),
    expect: 'voice-orchestrator',
    trustDomain: 'parley.local',
  });
  let closed = false;
  void stream.closed.then(() => (closed = true));
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (closed) return;
      const { conversations } = await orchestrator.listLiveConversations({ tenantId: s.stack.bootstrap.tenantId });
      if (conversations.some((c) => c.conversationId === conversationId)) return;
      if (Date.now() > deadline) throw new Error(`conversation ${conversationId} not live within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    orchestrator.close();
  }
}

/** startMessage is the `start` message of a call whose <Stream> carries `token`. */
export function startMessage(ids: { streamSid: string; accountSid: string; callSid: string }, token: string) {
  const { streamSid, accountSid, callSid } = ids;
  return {
    event: 'start',
    streamSid,
    start: {
      accountSid,
      streamSid,
      callSid,
      tracks: ['inbound'],
      customParameters: { token },
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
    },
  };
}

/** mediaSender sends each slice of 8 kHz PCM16 as a numbered 20 ms `media` message (base64 μ-law). */
export function mediaSender(stream: MediaStream, streamSid: string): (slice: Int16Array) => void {
  let chunk = 0;
  return (slice) =>
    stream.send({
      event: 'media',
      streamSid,
      media: {
        track: 'inbound',
        chunk: String(++chunk),
        timestamp: String(chunk * 20),
        payload: Buffer.from(mulawEncode(slice)).toString('base64'),
      },
    });
}

/** outboundAudio decodes the agent's audio from the `media` messages received. */
export function outboundAudio(received: readonly Outbound[]): Int16Array {
  return Int16Array.from(
    received
      .filter((m) => m.event === 'media')
      .flatMap((m) => [...mulawDecode(new Uint8Array(Buffer.from(m.media?.payload ?? '', 'base64')))]),
  );
}

/** until polls find every 20 ms until it returns a value (throws after timeoutMs). */
export async function until<T>(find: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
