import { Code, ConnectError, createHandlerContext } from '@connectrpc/connect';
import { universalRequestFromNodeRequest } from '@connectrpc/connect-node';
import type { UniversalServerRequest } from '@connectrpc/connect/protocol';
import { connect, createServer, type Http2ServerRequest } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';

// The patches in patches/@connectrpc__connect*.patch (see pnpm-workspace.yaml): a context or a
// request that ends without an error is aborted with one shared AbortError, not a new
// DOMException each. What a reader of the signal sees must stay what it was.

const context = () =>
  createHandlerContext({
    service: { typeName: 'parley.test.v1.Test' } as never,
    method: { name: 'Call' } as never,
    protocolName: 'connect',
    requestMethod: 'POST',
    url: 'https://localhost/parley.test.v1.Test/Call',
  });

describe('connect handler context, patched', () => {
  it('ends without a reason as an AbortError, the same one for every context', () => {
    const a = context();
    const b = context();
    a.abort();
    b.abort();
    expect(a.signal.aborted).toBe(true);
    expect(a.signal.reason).toBeInstanceOf(DOMException);
    expect((a.signal.reason as DOMException).name).toBe('AbortError');
    expect((a.signal.reason as DOMException).message).toBe('This operation was aborted');
    // Connect reads it as a cancellation, as before.
    expect(ConnectError.from(a.signal.reason).code).toBe(Code.Canceled);
    expect(b.signal.reason).toBe(a.signal.reason);
  });

  it('keeps a reason it is given', () => {
    const c = context();
    const reason = new ConnectError('the deadline passed', Code.DeadlineExceeded);
    c.abort(reason);
    expect(c.signal.reason).toBe(reason);
  });
});

describe('connect-node request signal, patched', () => {
  it('aborts with the shared AbortError when an HTTP/2 stream closes without an error code, and with a ConnectError on a cancel', async () => {
    const signals: AbortSignal[] = [];
    const server = createServer((req: Http2ServerRequest, res) => {
      const uReq: UniversalServerRequest = universalRequestFromNodeRequest(req, res, undefined, undefined);
      signals.push(uReq.signal);
      if (req.url === '/hang') return;
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      for (let i = 0; i < 2; i++) {
        const stream = client.request({ ':path': '/ok' });
        stream.resume();
        await new Promise((resolve) => stream.on('close', resolve));
      }
      const hung = client.request({ ':path': '/hang' });
      hung.on('error', () => undefined);
      await expect.poll(() => signals.length).toBe(3);
      hung.close(0x8); // CANCEL
      await expect.poll(() => signals.every((s) => s.aborted)).toBe(true);
      const [first, second, cancelled] = signals as [AbortSignal, AbortSignal, AbortSignal];
      expect((first.reason as DOMException).name).toBe('AbortError');
      expect(second.reason).toBe(first.reason);
      expect(cancelled.reason).toBeInstanceOf(ConnectError);
      expect((cancelled.reason as ConnectError).code).toBe(Code.Canceled);
    } finally {
      client.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
