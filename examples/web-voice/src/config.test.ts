import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDemoConfig } from './config.js';
import { contentSecurityPolicy } from './server.js';

describe('loadDemoConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'web-voice-'));
  writeFileSync(join(dir, 'ca.crt'), 'PEM');
  writeFileSync(
    join(dir, 'stack.json'),
    JSON.stringify({
      edgeUrl: 'https://localhost:7400',
      sessionUrl: 'wss://localhost:7401/v1/session',
      caCert: join(dir, 'ca.crt'),
      bootstrap: { apiKey: 'pk_test_stack', agentId: 'agent-1' },
    }),
  );

  it("takes what the environment leaves out from the dev stack's stack.json", () => {
    const config = loadDemoConfig({ PARLEY_DEV_STACK_FILE: 'stack.json', PARLEY_AGENT_ID: 'agent-2' }, dir);
    expect(config).toMatchObject({
      port: 7403,
      origin: undefined,
      apiUrl: 'https://localhost:7400',
      sessionUrl: 'wss://localhost:7401/v1/session',
      apiKey: 'pk_test_stack',
      agentId: 'agent-2',
      ttlSeconds: 60,
    });
    expect(config.ca?.toString()).toBe('PEM');
  });

  it('names the variable to set when there is no stack and no environment', () => {
    expect(() => loadDemoConfig({ PARLEY_DEV_STACK_FILE: 'missing.json' }, dir)).toThrow(
      /^PARLEY_URL: is required: set it, or start the dev stack/,
    );
    expect(() => loadDemoConfig({ PARLEY_DEV_STACK_FILE: 'stack.json', PARLEY_DEMO_TOKEN_TTL_SECONDS: '3600' }, dir)).toThrow(
      'PARLEY_DEMO_TOKEN_TTL_SECONDS: must be between 1 and 900, got "3600"',
    );
    expect(() => loadDemoConfig({ PARLEY_DEV_STACK_FILE: 'stack.json', PARLEY_DEMO_PORT: '70000' }, dir)).toThrow(/^PARLEY_DEMO_PORT:/);
  });
});

describe('contentSecurityPolicy', () => {
  it('allows own scripts and the session port only, never inline script', () => {
    const csp = contentSecurityPolicy('wss://localhost:7401/v1/session');
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("connect-src 'self' wss://localhost:7401;");
    expect(csp).not.toContain('unsafe');
  });
});
