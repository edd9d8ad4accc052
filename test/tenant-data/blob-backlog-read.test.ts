// tenant-data's deletion-queue gauges read through backlogReader: a read that fails must be said,
// else ParleyRecordingBlobDeletionsStale goes blind without a word.
import { Writable } from 'node:stream';
import { createDb } from '@parley/db';
import { createLogger } from '@parley/platform';
import { backlogReader, type TenantDataDb } from '@parley/tenant-data';
import { describe, expect, it } from 'vitest';
import { refusingDatabaseUrl } from '../src/pg.js';

describe('the recording blob deletion backlog read', () => {
  it('logs a failing read at warn once per cause, not at every collection', async () => {
    const lines: { level: number | string; msg: string; code?: string }[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as (typeof lines)[number]);
        cb();
      },
    });
    const logger = createLogger({ service: 'tenant-data', version: 'test', level: 'debug', destination });
    const db = createDb<TenantDataDb>((await refusingDatabaseUrl()).url, { max: 1 });
    try {
      const read = backlogReader(db, logger);
      const first = read();
      await expect(first).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      // The next collection past the one-second sharing reads again, fails alike and says nothing more.
      let second: Promise<unknown> = first;
      await expect.poll(() => (second = read()) !== first, { timeout: 10_000, interval: 200 }).toBe(true);
      await expect(second).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      await new Promise((r) => setImmediate(r));
      const warned = lines.filter((l) => /cannot read the recording blob deletion queue/.test(l.msg));
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      await db.destroy();
    }
  });
});
