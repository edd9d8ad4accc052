import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, envOptional, envPort, envString, type Env } from '@parley/platform';

/** DemoConfig is what the demo backend needs: where Parley is, the key it keeps, and where it listens. */
export interface DemoConfig {
  /** port is PARLEY_DEMO_PORT (default 7403: beside npm start's ports). */
  readonly port: number;
  /** origin is PARLEY_DEMO_ORIGIN, the page's origin that session tokens are bound to; unset: http://localhost:<bound port>. */
  readonly origin: string | undefined;
  /** apiUrl is the edge's public URL (PARLEY_URL or stack.json's edgeUrl). */
  readonly apiUrl: string;
  /** sessionUrl is the session port's WebSocket URL (PARLEY_SESSION_URL or stack.json's sessionUrl). */
  readonly sessionUrl: string;
  /** apiKey is the workspace API key (PARLEY_API_KEY or stack.json's bootstrap key); it never leaves this process. */
  readonly apiKey: string;
  /** agentId is the agent visitors talk to (PARLEY_AGENT_ID or stack.json's demo agent). */
  readonly agentId: string;
  /** ca is the PEM of a private CA the edge chains to (PARLEY_CA or stack.json's dev CA). */
  readonly ca: Buffer | undefined;
  /** ttlSeconds is each session token's lifetime (PARLEY_DEMO_TOKEN_TTL_SECONDS, default 60). */
  readonly ttlSeconds: number;
}

interface StackFile {
  edgeUrl?: string;
  sessionUrl?: string;
  caCert?: string;
  bootstrap?: { apiKey?: string; agentId?: string };
}

function readStackFile(path: string): StackFile {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as StackFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError('PARLEY_DEV_STACK_FILE', `cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * loadDemoConfig reads the environment; whatever it leaves out comes from the dev stack's
 * stack.json (PARLEY_DEV_STACK_FILE, default .parley/dev/stack.json), so `npm run demo` next to
 * `npm start` needs no setup.
 */
export function loadDemoConfig(env: Env, cwd: string): DemoConfig {
  const stackPath = resolve(cwd, envString(env, 'PARLEY_DEV_STACK_FILE', '.parley/dev/stack.json'));
  const stack = readStackFile(stackPath);
  const missing = (name: string) =>
    new ConfigError(name, `is required: set it, or start the dev stack (npm start) so that ${stackPath} has it`);
  const port = envPort(env, 'PARLEY_DEMO_PORT', 7403);
  const apiUrl = envOptional(env, 'PARLEY_URL') ?? stack.edgeUrl;
  const sessionUrl = envOptional(env, 'PARLEY_SESSION_URL') ?? stack.sessionUrl;
  const apiKey = envOptional(env, 'PARLEY_API_KEY') ?? stack.bootstrap?.apiKey;
  const agentId = envOptional(env, 'PARLEY_AGENT_ID') ?? stack.bootstrap?.agentId;
  if (apiUrl === undefined) throw missing('PARLEY_URL');
  if (sessionUrl === undefined) throw missing('PARLEY_SESSION_URL');
  if (apiKey === undefined) throw missing('PARLEY_API_KEY');
  if (agentId === undefined) throw missing('PARLEY_AGENT_ID');
  const caFile = envOptional(env, 'PARLEY_CA') ?? stack.caCert;
  const ttl = envOptional(env, 'PARLEY_DEMO_TOKEN_TTL_SECONDS') ?? '60';
  if (!/^\d+$/.test(ttl) || Number(ttl) < 1 || Number(ttl) > 900) {
    throw new ConfigError('PARLEY_DEMO_TOKEN_TTL_SECONDS', `must be between 1 and 900, got "${ttl}"`);
  }
  return Object.freeze({
    port,
    origin: envOptional(env, 'PARLEY_DEMO_ORIGIN'),
    apiUrl,
    sessionUrl,
    apiKey,
    agentId,
    ca: caFile === undefined ? undefined : readFileSync(resolve(cwd, caFile)),
    ttlSeconds: Number(ttl),
  });
}
