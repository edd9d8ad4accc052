import { describe, expect, it } from 'vitest';
import { createJwksSource } from './jwks.js';

function fakeIdentity() {
  const state = { calls: 0, up: true, version: 1 };
  const identity = {
    getJwks: async () => {
      state.calls += 1;
      if (!state.up) throw new Error('identity unavailable');
      return { jwksJson: `{"keys":[],"v":${state.version}}`, maxAgeSeconds: 60 };
    },
  };
  return { state, identity: identity as unknown as Parameters<typeof createJwksSource>[0] };
}

describe('createJwksSource', () => {
  it('asks identity once per cache period', async () => {
    let now = 1_000;
    const { state, identity } = fakeIdentity();
    const jwks = createJwksSource(identity, 5_000, () => now);
    expect((await jwks()).json).toBe('{"keys":[],"v":1}');
    state.version = 2;
    now += 4_999;
    expect((await jwks()).json).toBe('{"keys":[],"v":1}');
    expect(state.calls).toBe(1);
    now += 1;
    expect((await jwks()).json).toBe('{"keys":[],"v":2}');
    expect(state.calls).toBe(2);
  });

  it('serves the last known set while identity is away, and fails only with none known', async () => {
    let now = 0;
    const { state, identity } = fakeIdentity();
    const jwks = createJwksSource(identity, 1_000, () => now);
    state.up = false;
    await expect(jwks()).rejects.toThrow('identity unavailable');
    state.up = true;
    expect((await jwks()).maxAgeSeconds).toBe(60);
    state.up = false;
    now += 10_000;
    expect((await jwks()).json).toBe('{"keys":[],"v":1}');
  });

  it("passes on identity's max-age less the time the set has been held, so no client holds it longer", async () => {
    let now = 0;
    const { identity } = fakeIdentity();
    const jwks = createJwksSource(identity, 30_000, () => now);
    expect((await jwks()).maxAgeSeconds).toBe(60);
    now += 20_500;
    expect((await jwks()).maxAgeSeconds).toBe(39);
    now += 9_499;
    expect((await jwks()).maxAgeSeconds).toBe(30);
  });
});
