import { describe, expect, it } from 'vitest';
import { loadOrchestratorConfig } from './config.js';

describe('loadOrchestratorConfig', () => {
  it('has defaults for everything', () => {
    expect(loadOrchestratorConfig({})).toMatchObject({
      sessionPort: 9444,
      startTimeoutMs: 5_000,
      maxMessageBytes: 16_384,
      sessionTls: undefined,
    });
  });

  it('names the variable that is wrong', () => {
    expect(() => loadOrchestratorConfig({ PARLEY_SESSION_START_TIMEOUT_MS: '10' })).toThrow(/PARLEY_SESSION_START_TIMEOUT_MS/);
    expect(() => loadOrchestratorConfig({ PARLEY_PUBLIC_PORT: '70000' })).toThrow(/PARLEY_PUBLIC_PORT/);
    expect(() => loadOrchestratorConfig({ PARLEY_PUBLIC_TLS_CERT: '/tmp/cert.pem' })).toThrow(/PARLEY_PUBLIC_TLS_KEY/);
  });
});
