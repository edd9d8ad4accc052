// tenant-data's deletion-queue gauges read through backlogReader: a read that fails must be said,
// else ParleyRecordingBlobDeletionsStale goes blind without a word.
import { once } from 'node:events';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { createDb } from '@parley/db';
import { createLogger } from '@parley/platform';
import { backlogReader, type TenantDataDb } from '@parley/tenant-data';
import { describe, expect, it } from 'vitest';
import { adminUrl } from '../src/pg.js';

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
    // A port where nothing listens: bound, then closed.
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    server.close();
    await once(server, 'close');
    const url = new URL(adminUrl());
    url.hostname = '127.0.0.1';
    url.port = String(port);
    const db = createDb<TenantDataDb>(url.toString(), { max: 1 });
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
