import { describe, expect, it } from 'vitest';
import { CommandContext, type CliIo } from './context.js';

const config = { url: undefined, apiKey: undefined, caFile: undefined, profile: 'default', profileFile: '/nonexistent/credentials.json' };

describe('CommandContext.longCallTimeoutMs', () => {
  it('sets no deadline of the CLI for an audit export or verification (the edge bounds it) unless --timeout is given', () => {
    expect(new CommandContext({} as CliIo, config, { output: 'table' }).longCallTimeoutMs).toBe(0);
    // --timeout is the client's default for every call; leaving the per-call value unset keeps it.
    expect(new CommandContext({} as CliIo, config, { output: 'table', timeout: '90' }).longCallTimeoutMs).toBeUndefined();
  });
});
