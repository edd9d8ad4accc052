import type { Http2SecureServer, Http2ServerRequest, Http2ServerResponse, ServerHttp2Session } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

/** socketOf returns the TLS connection of a request (for HTTP/2, the session's socket). */
export function socketOf(req: AnyRequest): Socket {
  // For HTTP/2 the request's socket is a proxy; the session's socket is the connection.
  const stream = (req as Http2ServerRequest).stream as { session?: ServerHttp2Session } | undefined;
  return (stream?.session?.socket ?? req.socket) as Socket;
}

function isHttp2(socket: Socket): boolean {
  return (socket as { alpnProtocol?: string | false }).alpnProtocol === 'h2';
}

/** ConnectionDrainer tracks a server's connections so that it can stop without dropping calls. */
export interface ConnectionDrainer {
  /** track must see every request: it counts HTTP/1.1 requests per socket. */
  track(req: AnyRequest, res: AnyResponse): void;
  /** close stops accepting, lets in-flight calls finish within graceMs, then cuts what is left; resolves true if it had to cut. */
  close(graceMs: number): Promise<boolean>;
}

/**
 * createConnectionDrainer makes graceful shutdown of an HTTP/2 TLS server that also speaks
 * HTTP/1.1: on close, HTTP/2 sessions get GOAWAY (no new streams, streams in flight finish),
 * idle HTTP/1.1 sockets are ended at once and busy ones right after their response, and after
 * the grace period whatever is left is destroyed.
 */
export function createConnectionDrainer(server: Http2SecureServer): ConnectionDrainer {
  const sessions = new Set<ServerHttp2Session>();
  const sockets = new Set<Socket>();
  const active = new Map<Socket, number>();
  let closing = false;
  server.on('session', (s: ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      active.delete(socket);
    });
  });
  return {
    track(req, res) {
      const socket = socketOf(req);
      if (isHttp2(socket)) return;
      active.set(socket, (active.get(socket) ?? 0) + 1);
      if (closing) res.setHeader('connection', 'close');
      res.once('close', () => {
        // A connection that closed before its response (the client left mid-body) is gone from
        // the map already; setting it again would keep the dead socket, its request and its
        // response reachable for as long as the server runs.
        const count = active.get(socket);
        if (count === undefined) return;
        const left = count - 1;
        if (left > 0) active.set(socket, left);
        else active.delete(socket);
        if (closing && left === 0) socket.end();
      });
    },
    async close(graceMs) {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      for (const socket of sockets) if (!isHttp2(socket) && (active.get(socket) ?? 0) === 0) socket.end();
      const deadline = new Promise<'deadline'>((resolve) => setTimeout(() => resolve('deadline'), graceMs).unref());
      if ((await Promise.race([closed.then(() => 'closed' as const), deadline])) === 'closed') return false;
      for (const s of sessions) s.destroy();
      for (const socket of sockets) socket.destroy();
      await closed;
      return true;
    },
  };
}

/** listenOn binds a server to a port (0 for any) and resolves to the port bound. */
export async function listenOn(server: Http2SecureServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
