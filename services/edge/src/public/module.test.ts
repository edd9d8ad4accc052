import { AccountService } from '@parley/proto/parley/api/v1/api_pb.js';
import { describe, expect, it } from 'vitest';
import { definePublicModule } from './module.js';

// The compile-time half of these checks is tsc (tsconfig.check.json): each @ts-expect-error
// fails the type check if the table it marks ever compiles.
describe('definePublicModule', () => {
  it('keeps a scope table that names every method with a known scope, and refuses others at compile time', () => {
    const module = definePublicModule(AccountService, { whoAmI: 'agents:read' }, () => {});
    expect(module.scopes).toEqual({ whoAmI: 'agents:read' });
    expect(Object.isFrozen(module.scopes)).toBe(true);
    // @ts-expect-error "agent:read" is not a Scope (a typo of agents:read)
    definePublicModule(AccountService, { whoAmI: 'agent:read' }, () => {});
    // @ts-expect-error whoAmI has no entry: a method without a scope (or an explicit null) does not compile
    definePublicModule(AccountService, {}, () => {});
  });
});
