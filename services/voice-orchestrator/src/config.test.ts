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

  it('reads the egress port list and private allow-list as integrations does', () => {
    expect(loadOrchestratorConfig({}).egressPolicy).toMatchObject({ allowedPorts: [443], allowPrivate: [] });
    const config = loadOrchestratorConfig({
      PARLEY_EGRESS_ALLOWED_PORTS: '443, 8443',
      PARLEY_EGRESS_ALLOW_PRIVATE: '10.20.0.0/16,llm.corp.example',
    });
    expect(config.egressPolicy.allowedPorts).toEqual([443, 8443]);
    expect(config.egressPolicy.allowPrivate.map((e) => e.text)).toEqual(['10.20.0.0/16', 'llm.corp.example']);
    expect(() => loadOrchestratorConfig({ PARLEY_EGRESS_ALLOWED_PORTS: '0' })).toThrow(/PARLEY_EGRESS_ALLOWED_PORTS/);
    expect(() => loadOrchestratorConfig({ PARLEY_EGRESS_ALLOW_PRIVATE: '10.0.0.0/99' })).toThrow(/PARLEY_EGRESS_ALLOW_PRIVATE/);
  });
});
