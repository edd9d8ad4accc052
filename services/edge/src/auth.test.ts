import { create } from '@bufbuild/protobuf';
import { AuthenticateApiKeyResponseSchema, PrincipalSchema } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { describe, expect, it } from 'vitest';
import { ApiKeyAuthenticator } from './auth.js';

describe('ApiKeyAuthenticator', () => {
  // identity's answer, counted: the cache is what is under test.
  function authenticator() {
    const asked: string[] = [];
    const a = new ApiKeyAuthenticator({
      cacheMs: 60_000,
      identity: {
        authenticateApiKey(req) {
          const apiKey = req.apiKey ?? '';
          asked.push(apiKey);
          const id = apiKey === 'pk_test_a' ? 'key-a' : 'key-b';
          return Promise.resolve(
            create(AuthenticateApiKeyResponseSchema, {
              principal: create(PrincipalSchema, { tenantId: 't', kind: 'api_key', id, scopes: [] }),
            }),
          );
        },
      },
    });
    return { a, asked };
  }

  it('keeps a positive answer for cacheMs, and forgets the keys revoked through this edge at once', async () => {
    const { a, asked } = authenticator();
    await a.authenticate('pk_test_a', '127.0.0.1', 'test');
    await a.authenticate('pk_test_b', '127.0.0.1', 'test');
    await a.authenticate('pk_test_a', '127.0.0.1', 'test');
    expect(asked).toEqual(['pk_test_a', 'pk_test_b']);
    a.forget(['key-a']);
    await a.authenticate('pk_test_a', '127.0.0.1', 'test');
    await a.authenticate('pk_test_b', '127.0.0.1', 'test');
    expect(asked).toEqual(['pk_test_a', 'pk_test_b', 'pk_test_a']);
  });
});
