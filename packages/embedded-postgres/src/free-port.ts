import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// The ports this process handed out most recently: the OS may give a just-closed ephemeral
// port to the next bind, so a fixture asking for several ports at once could get one twice.
const handedOut: number[] = [];
const HANDED_OUT_MEMORY = 512;

// Ports above the kernel's ephemeral range: a port the OS hands to outgoing connections (and to
// listen(0)) can be taken by any client socket between our probe and the child's bind, which is
// what made stacks fail with EADDRINUSE under load. Outside that range only another listener can
// take it. Where the range leaves too little room above it, listen(0) is the fallback.
const aboveEphemeral = ((): { from: number; to: number } | undefined => {
  try {
    const [, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (hi !== undefined && Number.isInteger(hi) && 65_535 - hi >= 1_000) return { from: hi + 1, to: 65_535 };
  } catch {
    // Not Linux: the OS picks.
  }
  return undefined;
})();

function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address !== null ? address.port : undefined));
    });
  });
}

/**
 * freePort returns a loopback TCP port that was free a moment ago and that this process has not
 * handed out recently, above the ephemeral range where the OS allows (a small race with other
 * listeners remains: bind promptly).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const range = aboveEphemeral;
    const candidate = range === undefined ? 0 : range.from + Math.floor(Math.random() * (range.to - range.from + 1));
    const port = await probe(candidate);
    if (port === undefined || handedOut.includes(port)) continue;
    handedOut.push(port);
    if (handedOut.length > HANDED_OUT_MEMORY) handedOut.shift();
    return port;
  }
  throw new Error('no free loopback port found that was not handed out already');
}
