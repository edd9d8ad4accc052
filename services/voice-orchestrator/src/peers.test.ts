// The orchestrator's peers during a rolling upgrade: a tenant-data of the previous release stores a
// recording reference without the fields it does not know (the id, the size, the sealed key), so
// AddRecording's answer is checked and such a store fails loudly instead of counting as stored.
// A tool call the integrations service cannot make gives the model no internal detail.
import { randomUUID } from 'node:crypto';
import { Code, ConnectError, createClient, createRouterTransport } from '@connectrpc/connect';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { describe, expect, it } from 'vitest';
import { createPeers, retrying } from './peers.js';

/** peersWith builds the peers over a tenant-data whose AddRecording keeps the id and key (new) or drops them (old). */
function peersWith(release: 'new' | 'old') {
  const tenantData = createRouterTransport(({ service }) =>
    service(TenantDataService, {
      addRecording(req) {
        const keeps = release === 'new';
        return {
          recording: {
            id: keeps ? req.id : randomUUID(),
            conversationId: req.conversationId,
            blobKey: req.blobKey,
            keyRef: keeps && req.wrappedKey !== '' ? 'conversation' : '',
          },
        };
      },
    }),
  );
  const nothing = createRouterTransport(() => undefined);
  return createPeers({
    tenantData: createClient(TenantDataService, tenantData),
    identity: createClient(IdentityService, nothing),
    secrets: createClient(SecretsService, nothing),
  });
}

const reference = () => ({
  tenantId: randomUUID(),
  conversationId: randomUUID(),
  recordingId: randomUUID(),
  blobKey: 'recordings/t/c/r.pra',
  durationMs: 1_000,
  sizeBytes: 100,
  wrappedKey: 'conversation:v2:x',
});

describe('addRecording', () => {
  it('stores a reference on a tenant-data that keeps its id and key', async () => {
    await expect(peersWith('new').addRecording(reference())).resolves.toBeUndefined();
  });

  it('fails loudly, naming the fix, on an older tenant-data that dropped the id and key', async () => {
    await expect(peersWith('old').addRecording(reference())).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: expect.stringMatching(/older release .* Upgrade tenant-data first, then turn call recording on/),
    });
  });
});

describe('callTool', () => {
  /** peersWithTools builds the peers over an integrations service whose CallTool fails with `code` and `message`. */
  function peersWithTools(code: Code, message: string) {
    const integrations = createRouterTransport(({ service }) =>
      service(IntegrationsService, {
        callTool() {
          throw new ConnectError(message, code);
        },
      }),
    );
    const nothing = createRouterTransport(() => undefined);
    return createPeers({
      tenantData: createClient(TenantDataService, nothing),
      identity: createClient(IdentityService, nothing),
      secrets: createClient(SecretsService, nothing),
      integrations: createClient(IntegrationsService, integrations),
    });
  }
  const call = { tenantId: randomUUID(), conversationId: randomUUID(), agentId: randomUUID(), tool: 'lookup_order', arguments: {} };

  it("gives the model a refusal's own message, which says what is wrong", async () => {
    const result = await peersWithTools(Code.PermissionDenied, 'the agent has no grant for lookup_order').callTool(call);
    expect(result.ok).toBe(false);
    expect(JSON.parse(result.content)).toEqual({ error: 'PermissionDenied', message: 'the agent has no grant for lookup_order' });
  });

  it('never gives the model what an unreachable or failing integrations service said: it can name addresses, certificates and variables', async () => {
    for (const code of [Code.Unavailable, Code.Internal, Code.DeadlineExceeded, Code.Unknown]) {
      const detail =
        'TLS identity check failed connecting to integrations at 10.1.2.3:8443: check PARLEY_INTEGRATIONS_URL and PARLEY_TLS_CA';
      const result = await peersWithTools(code, detail).callTool(call);
      expect(result.ok).toBe(false);
      const content = JSON.parse(result.content) as { error: string; message: string };
      expect(content).toEqual({ error: Code[code], message: 'the tool service is unavailable; try again later' });
      expect(result.content).not.toMatch(/10\.1\.2\.3|PARLEY_|TLS/);
    }
  });
});

describe('retrying', () => {
  it('waits between half and all of delayMs × 2^(n-1) after the n-th failure (equal jitter), and tells retryable that wait', async () => {
    const waits: { attempt: number; waitMs: number }[] = [];
    let calls = 0;
    const result = await retrying(
      () => {
        calls++;
        return calls < 4 ? Promise.reject(new ConnectError('away', Code.Unavailable)) : Promise.resolve('done');
      },
      {
        attempts: 4,
        delayMs: 20,
        retryable: (_, next) => {
          waits.push(next);
          return true;
        },
      },
    );
    expect(result).toBe('done');
    expect(waits.map((w) => w.attempt)).toEqual([2, 3, 4]);
    waits.forEach((w, i) => {
      expect(w.waitMs).toBeGreaterThanOrEqual(10 * 2 ** i);
      expect(w.waitMs).toBeLessThan(20 * 2 ** i);
    });
  });

  it('starts no further attempt once its signal is aborted, ending a wait under way, and throws the last failure', async () => {
    const stop = new AbortController();
    let calls = 0;
    const failure = new ConnectError('away', Code.Unavailable);
    const running = retrying(
      () => {
        calls++;
        return Promise.reject(failure);
      },
      // Aborted while the (minute-long at most) wait after the first failure is under way.
      { attempts: 5, delayMs: 60_000, signal: stop.signal, retryable: () => true, onRetry: () => queueMicrotask(() => stop.abort()) },
    );
    await expect(running).rejects.toBe(failure);
    expect(calls).toBe(1);
    // Aborted already: the first failure is thrown as it is.
    await expect(
      retrying(() => Promise.reject(failure), { attempts: 5, delayMs: 60_000, signal: stop.signal, retryable: () => true }),
    ).rejects.toBe(failure);
  });
});
