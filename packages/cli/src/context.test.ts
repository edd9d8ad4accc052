import { describe, expect, it } from 'vitest';
import { CommandContext, LONG_CALL_TIMEOUT_MS, type CliIo } from './context.js';

const config = { url: undefined, apiKey: undefined, caFile: undefined, profile: 'default', profileFile: '/nonexistent/credentials.json' };

describe('CommandContext.longCallTimeoutMs', () => {
  it("gives an audit export or verification 11 min (past the edge's 10 min bound) unless --timeout is given", () => {
    expect(LONG_CALL_TIMEOUT_MS).toBe(11 * 60_000);
    expect(new CommandContext({} as CliIo, config, { output: 'table' }).longCallTimeoutMs).toBe(LONG_CALL_TIMEOUT_MS);
    // --timeout is the client's default for every call; leaving the per-call value unset keeps it.
    expect(new CommandContext({} as CliIo, config, { output: 'table', timeout: '90' }).longCallTimeoutMs).toBeUndefined();
  });
});
