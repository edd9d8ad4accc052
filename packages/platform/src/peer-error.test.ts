import { Writable } from 'node:stream';
import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { peerError } from './peer-error.js';

describe('peerError', () => {
  it("keeps grpc-js's own message (why no connection was made) in the log line of an unreachable peer", () => {
    const lines: string[] = [];
    const logger = createLogger({
      service: 'identity',
      version: 'test',
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    });
    const cause = new ConnectError('No connection established. Last error: Error: certificate has expired', Code.Unavailable);
    const err = peerError(cause, 'tenant-data', 'agent a', 'no session can be made');
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect((err as Error).message).toBe('tenant-data is unreachable, so no session can be made; retry');
    logger.error({ err }, 'rpc failed');
    expect(lines.join('')).toContain('No connection established. Last error: Error: certificate has expired');
  });
});
