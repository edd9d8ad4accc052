import { create } from '@bufbuild/protobuf';
import { AuthenticateApiKeyResponseSchema, PrincipalSchema } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { UnauthenticatedError } from '@parley/platform';
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

  // identity answering when the test says so: a key is valid unless `refuse` holds it.
  function gatedAuthenticator(cacheMs: number) {
    const asked: string[] = [];
    const refuse = new Set<string>();
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    const a = new ApiKeyAuthenticator({
      cacheMs,
      identity: {
        async authenticateApiKey(req) {
          asked.push(req.source ?? '');
          await gate;
          if (refuse.has(req.apiKey ?? '')) throw new UnauthenticatedError('API key is not valid');
          return create(AuthenticateApiKeyResponseSchema, {
            principal: create(PrincipalSchema, { tenantId: 't', kind: 'api_key', id: 'key-a', scopes: ['sessions:create'] }),
          });
        },
      },
    });
    const open = () => {
      release();
      gate = new Promise<void>((r) => (release = r));
    };
    return { a, asked, refuse, open };
  }

  it('asks identity once for concurrent checks of one key that miss the cache, each caller keeping its own source', async () => {
    const { a, asked, open } = gatedAuthenticator(60_000);
    const checks = Array.from({ length: 50 }, (_, i) => a.authenticate('pk_test_a', `10.0.0.${i}`, 'test'));
    await new Promise((r) => setTimeout(r, 10));
    open();
    const principals = await Promise.all(checks);
    expect(asked).toEqual(['10.0.0.0']);
    expect(principals.map((p) => p.source)).toEqual(checks.map((_, i) => `10.0.0.${i}`));
    expect(new Set(principals.map((p) => p.id))).toEqual(new Set(['key-a']));
  });

  it('does not share a failed look-up: every waiter asks identity on its own, so each failure is counted', async () => {
    const { a, asked, refuse, open } = gatedAuthenticator(60_000);
    refuse.add('pk_test_bad');
    const checks = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((source) =>
      a.authenticate('pk_test_bad', source, 'test').then(
        () => 'accepted',
        (err: unknown) => (err as Error).constructor.name,
      ),
    );
    await new Promise((r) => setTimeout(r, 10));
    open();
    await new Promise((r) => setTimeout(r, 10));
    open();
    await new Promise((r) => setTimeout(r, 10));
    open();
    expect(await Promise.all(checks)).toEqual(['UnauthenticatedError', 'UnauthenticatedError', 'UnauthenticatedError']);
    expect([...asked].sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('neither shares nor caches a look-up in flight when its key is revoked through this edge', async () => {
    const { a, asked, open } = gatedAuthenticator(60_000);
    const before = a.authenticate('pk_test_a', '10.0.0.1', 'test');
    await new Promise((r) => setTimeout(r, 10));
    a.forget(['key-a']);
    // A check after the revocation does not join the look-up that started before it.
    const after = a.authenticate('pk_test_a', '10.0.0.2', 'test');
    await new Promise((r) => setTimeout(r, 10));
    expect(asked).toEqual(['10.0.0.1', '10.0.0.2']);
    open();
    await Promise.all([before, after]);
  });

  it('does not cache an answer fetched across a revocation through this edge', async () => {
    const { a, asked, open } = gatedAuthenticator(60_000);
    const before = a.authenticate('pk_test_a', '10.0.0.1', 'test');
    await new Promise((r) => setTimeout(r, 10));
    a.forget(['key-a']);
    open();
    await before;
    const again = a.authenticate('pk_test_a', '10.0.0.2', 'test');
    await new Promise((r) => setTimeout(r, 10));
    open();
    await again;
    expect(asked).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('with the cache off, asks identity for every check, concurrent ones too', async () => {
    const { a, asked, open } = gatedAuthenticator(0);
    const checks = [1, 2, 3].map((i) => a.authenticate('pk_test_a', `10.0.0.${i}`, 'test'));
    await new Promise((r) => setTimeout(r, 10));
    open();
    await Promise.all(checks);
    expect(asked).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });
});
