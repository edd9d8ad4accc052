import { Writable } from 'node:stream';
import { Code, ConnectError } from '@connectrpc/connect';
import { createLogger } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { tenantDataAgentDirectory } from './agent-directory.js';

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
