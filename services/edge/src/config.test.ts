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

  it('reads PARLEY_EDGE_LONG_READ_DEADLINE_MS (10 min by default) and refuses one outside 1 s to 1 h, naming it', () => {
    expect(loadEdgeConfig({}).longReadDeadlineMs).toBe(600_000);
    expect(loadEdgeConfig({ PARLEY_EDGE_LONG_READ_DEADLINE_MS: '1800000' }).longReadDeadlineMs).toBe(1_800_000);
    for (const bad of ['0', '7200000', 'soon']) {
      expect(() => loadEdgeConfig({ PARLEY_EDGE_LONG_READ_DEADLINE_MS: bad }), bad).toThrow(/PARLEY_EDGE_LONG_READ_DEADLINE_MS/);
    }
  });
});
