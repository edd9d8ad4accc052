import { connect, createServer, type Server, type Socket } from 'node:net';

/** RoundRobinProxyOptions configure startRoundRobinProxy. */
export interface RoundRobinProxyOptions {
  /** host and port the proxy listens on (the one local entry point). */
  readonly host: string;
  readonly port: number;
  /** backends are the replicas' listeners, as host and port. */
  readonly backends: readonly { readonly host: string; readonly port: number }[];
}

/** RoundRobinProxy is a running proxy. */
export interface RoundRobinProxy {
  /** port it listens on. */
  readonly port: number;
  /** close stops listening and cuts every proxied connection. */
  close(): Promise<void>;
}

/**
 * startRoundRobinProxy forwards each incoming TCP connection to the next replica in turn, bytes
 * unchanged (TLS stays end to end between the client and the replica), so that clients of the dev
 * stack reach different replicas the way a Kubernetes Service or a load balancer spreads them.
 * A replica that refuses the connection (stopped, killed) is skipped for that connection, as a
 * load balancer's health check would take it out; one that accepted and then dies cuts its
 * connections, which clients see and retry.
 */
export async function startRoundRobinProxy(options: RoundRobinProxyOptions): Promise<RoundRobinProxy> {
  if (options.backends.length === 0) throw new Error('a round-robin proxy needs at least one backend');
  let next = 0;
  const open = new Set<Socket>();
  const track = (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  };

  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    client.on('error', () => client.destroy());
    const first = next;
    next = (next + 1) % options.backends.length;
    const attempt = (tried: number) => {
      if (client.destroyed) return;
      if (tried === options.backends.length) {
        client.destroy();
        return;
      }
      const backend = options.backends[(first + tried) % options.backends.length]!;
      const upstream = connect({ host: backend.host, port: backend.port });
      track(upstream);
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.once('error', () => {
        upstream.destroy();
        attempt(tried + 1);
      });
    };
    attempt(0);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : options.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
