import { Writable } from 'node:stream';
import { Code, ConnectError } from '@connectrpc/connect';
import { createLogger } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { cachedAgentDirectory, tenantDataAgentDirectory } from './agent-directory.js';

const TENANT = '00000000-0000-4000-8000-000000000001';
const SUBJECT = '00000000-0000-4000-8000-000000000002';

describe('tenantDataAgentDirectory.requireSubject', () => {
  it('answers a PERMISSION_DENIED GetSubject unchecked, warning at most once a minute with how many went unchecked', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      service: 'identity',
      version: 'test',
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    });
    let clock = 1_000_000;
    // The refusal a tenant-data of the previous release answers (identity is not on GetSubject's allow-list).
    const refusing = {
      getAgent: () => Promise.resolve({}),
      getSubject: () => Promise.reject(new ConnectError('identity may not call GetSubject', Code.PermissionDenied)),
    } as unknown as Parameters<typeof tenantDataAgentDirectory>[0];
    const directory = tenantDataAgentDirectory(refusing, { logger, now: () => clock });
    const warnings = () => lines.filter((l) => l.level === 'warn');

    await directory.requireSubject(TENANT, SUBJECT);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ unchecked_subjects: 1, err: 'identity may not call GetSubject' });
    expect(String(warnings()[0]?.msg)).toMatch(/without checking their subject/);
    for (let i = 0; i < 5; i++) await directory.requireSubject(TENANT, SUBJECT);
    clock += 59_000;
    await directory.requireSubject(TENANT, SUBJECT);
    expect(warnings()).toHaveLength(1);
    clock += 1_000;
    await directory.requireSubject(TENANT, SUBJECT);
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]).toMatchObject({ unchecked_subjects: 7 });
  });
});

describe('cachedAgentDirectory', () => {
  const AGENT = '00000000-0000-4000-8000-000000000003';

  it('asks tenant-data once for the CreateSessions that miss one agent together, and refuses each of them when the agent is gone', async () => {
    let asked = 0;
    let exists = true;
    const inner = {
      requireAgent: async () => {
        asked += 1;
        // Answered a turn later, as a round trip is: the other callers arrive meanwhile.
        await new Promise((r) => setImmediate(r));
        if (!exists) throw new ConnectError('no such agent', Code.NotFound);
      },
      requireSubject: () => Promise.resolve(),
    };
    const directory = cachedAgentDirectory(inner, { ttlMs: 60_000, listening: () => true });
    await Promise.all(Array.from({ length: 50 }, () => directory.requireAgent(TENANT, AGENT)));
    expect(asked).toBe(1);

    // Deleted (tenant-data's notification): the next callers miss together; a refusal is not
    // shared, so each is refused by an answer of its own (fail closed), none from a cache.
    directory.invalidate(`a/${TENANT}/${AGENT}`);
    exists = false;
    asked = 0;
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => directory.requireAgent(TENANT, AGENT)));
    expect(results.every((r) => r.status === 'rejected' && ConnectError.from(r.reason).code === Code.NotFound)).toBe(true);
    expect(asked).toBe(5);
  });
});
