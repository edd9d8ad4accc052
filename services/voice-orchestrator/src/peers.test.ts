// The orchestrator's peers during a rolling upgrade: a tenant-data of the previous release stores a
// recording reference without the fields it does not know (the id, the size, the sealed key), so
// AddRecording's answer is checked and such a store fails loudly instead of counting as stored.
import { randomUUID } from 'node:crypto';
import { Code, createClient, createRouterTransport } from '@connectrpc/connect';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { describe, expect, it } from 'vitest';
import { createPeers } from './peers.js';

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
