// HTTP/2 and slow-body abuse of the edge's public port (issue 18): stream floods, rapid resets,
// too many connections from one address, and bodies that never finish.
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { describe, expect, it } from 'vitest';
import { afterTheAbuse, MAX_CONNECTIONS_PER_ADDRESS, MAX_STREAMS, ownerKey, REQUEST_TIMEOUT_MS, stack } from './hardening-stack.js';

/** hardeningHttp2Cases registers the tests of HTTP/2 and slow-body abuse of the public port, on the hardening stack of the file that calls it. */
export function hardeningHttp2Cases(): void {
  describe('HTTP/2 and slow-body limits at the public port', () => {
    const whoAmI = { ':method': 'POST', ':path': '/parley.api.v1.AccountService/WhoAmI', 'content-type': 'application/json' };

    it(`refuses streams beyond ${MAX_STREAMS} concurrent ones on one connection, and cuts bodies that never finish`, async () => {
      // Streams opened before the server's SETTINGS arrive are not held back by the client, as a
      // hostile client would not hold them back either.
      const session = connect(stack.publicUrl, { ca: stack.ca, peerMaxConcurrentStreams: 1000 });
      try {
        const outcomes = await Promise.all(
          Array.from({ length: 20 }, () => {
            const req = session.request({ ...whoAmI, authorization: `Bearer ${ownerKey}` }, { endStream: false });
            req.write('{');
            const started = Date.now();
            return new Promise<{ refused: boolean; elapsed: number; status?: number }>((resolve) => {
              let status: number | undefined;
              req.on('response', (h) => (status = Number(h[':status'])));
              req.on('data', () => undefined);
              req.on('close', () =>
                resolve({
                  refused: req.rstCode === constants.NGHTTP2_REFUSED_STREAM,
                  elapsed: Date.now() - started,
                  ...(status !== undefined ? { status } : {}),
                }),
              );
              req.on('error', () => undefined);
            });
          }),
        );
        const refused = outcomes.filter((o) => o.refused);
        const admitted = outcomes.filter((o) => !o.refused);
        expect(session.remoteSettings.maxConcurrentStreams).toBe(MAX_STREAMS);
        expect(refused).toHaveLength(20 - MAX_STREAMS);
        expect(admitted).toHaveLength(MAX_STREAMS);
        // The admitted streams never finished their bodies: each is cut after the request timeout.
        for (const o of admitted) {
          expect(o.elapsed).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
          expect(o.elapsed).toBeLessThan(REQUEST_TIMEOUT_MS + 3_000);
        }
      } finally {
        session.destroy();
      }
      // The edge still answers.
      expect((await stack.call('/parley.api.v1.AccountService/WhoAmI', {}, ownerKey)).status).toBe(200);
    });

    it('closes a connection that resets streams faster than the configured rate (50 at once, 10 a second)', async () => {
      const session = connect(stack.publicUrl, { ca: stack.ca });
      await new Promise<void>((resolve, reject) => session.once('remoteSettings', () => resolve()).once('error', reject));
      let sent = 0;
      let sentAtGoaway = -1;
      // nghttp2 answers a reset flood with GOAWAY; its code is INTERNAL_ERROR.
      const goaway = new Promise<number>((resolve) =>
        session.once('goaway', (code: number) => {
          sentAtGoaway = sent;
          resolve(code);
        }),
      );
      session.on('error', () => undefined);
      // Four streams at a time (below the edge's 8), each reset only once its first DATA frame has
      // left the socket: nghttp2 drops the HEADERS of a request reset before they were sent (nothing
      // reaches the server), which is what a loaded machine with a busy socket would otherwise do.
      while (sent < 900 && sentAtGoaway < 0 && !session.closed && !session.destroyed) {
        const batch = Array.from({ length: 4 }, () => {
          const req = session.request({ ...whoAmI, authorization: `Bearer ${ownerKey}` }, { endStream: false });
          req.on('error', () => undefined);
          return req;
        });
        await Promise.all(
          batch.map(
            (req) =>
              new Promise<void>((r) => {
                req.write('{', () => r());
                req.once('close', () => r());
              }),
          ),
        );
        for (const req of batch) req.close(constants.NGHTTP2_CANCEL);
        sent += batch.length;
        await new Promise((r) => setImmediate(r));
      }
      const code = await Promise.race([goaway, new Promise<number>((r) => setTimeout(() => r(-1), 30_000))]);
      session.destroy();
      expect(code, `after ${sent} resets`).toBe(constants.NGHTTP2_INTERNAL_ERROR);
      // Node's default burst of 1000 would absorb all 900 resets; the configured burst is 50 (the
      // client sees the GOAWAY a little after the server sent it, while the edge works through its queue).
      expect(sentAtGoaway).toBeGreaterThanOrEqual(50);
      expect((await stack.call('/parley.api.v1.AccountService/WhoAmI', {}, ownerKey)).status).toBe(200);
    });

    it(`refuses connections beyond ${MAX_CONNECTIONS_PER_ADDRESS} from one address`, async () => {
      const sessions: ClientHttp2Session[] = [];
      try {
        const results = await Promise.all(
          Array.from({ length: MAX_CONNECTIONS_PER_ADDRESS + 4 }, async () => {
            const s = connect(stack.publicUrl, { ca: stack.ca });
            sessions.push(s);
            s.on('error', () => undefined);
            const req = s.request({ ...whoAmI, authorization: `Bearer ${ownerKey}` });
            req.on('error', () => undefined);
            req.end('{}');
            return new Promise<number>((resolve) => {
              req.on('response', (h) => resolve(Number(h[':status'])));
              req.on('close', () => resolve(0));
            });
          }),
        );
        expect(results.filter((r) => r === 200)).toHaveLength(MAX_CONNECTIONS_PER_ADDRESS);
        expect(results.filter((r) => r === 0)).toHaveLength(4);
      } finally {
        for (const s of sessions) s.destroy();
      }
      // Once those are closed, the address may connect again.
      await new Promise((r) => setTimeout(r, 200));
      expect((await stack.call('/parley.api.v1.AccountService/WhoAmI', {}, ownerKey)).status).toBe(200);
    });

    it('cuts an HTTP/1.1 request whose body stops half-way after the request timeout', async () => {
      const started = Date.now();
      const outcome = await new Promise<string>((resolve) => {
        const req = httpsRequest(`${stack.publicUrl}/parley.api.v1.AccountService/WhoAmI`, {
          method: 'POST',
          ca: stack.ca,
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': '100', authorization: `Bearer ${ownerKey}` },
        });
        req.on('response', (res) => {
          res.resume();
          res.on('close', () => resolve(`status ${res.statusCode}`));
        });
        req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code}`));
        req.write('{');
      });
      const elapsed = Date.now() - started;
      expect(outcome).toMatch(/^(status 408|error ECONNRESET)$/);
      expect(elapsed).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
      expect(elapsed).toBeLessThan(REQUEST_TIMEOUT_MS + 3_000);
    });
  });

  afterTheAbuse();
}
