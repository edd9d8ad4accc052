import { ConfigError } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { loadEdgeConfig } from './config.js';

describe('loadEdgeConfig', () => {
  it('reads PARLEY_EDGE_TRUSTED_PROXIES and refuses a bad one, naming it', () => {
    for (const bad of ['10.0.0.0/33', 'ingress.local']) {
      expect(() => loadEdgeConfig({ PARLEY_EDGE_TRUSTED_PROXIES: bad }), bad).toThrow(ConfigError);
      expect(() => loadEdgeConfig({ PARLEY_EDGE_TRUSTED_PROXIES: bad }), bad).toThrow(/PARLEY_EDGE_TRUSTED_PROXIES/);
    }
    expect(loadEdgeConfig({}).trustedProxies.cidrs).toEqual([]);
    expect(loadEdgeConfig({ PARLEY_EDGE_TRUSTED_PROXIES: '127.0.0.1/32' }).trustedProxies.has('127.0.0.1')).toBe(true);
  });
});
