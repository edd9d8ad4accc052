import { lstat, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The ports this process handed out most recently: the OS may give a just-closed ephemeral
// port to the next bind, and a test may stop a service and start it again on its port, so a
// fixture asking for several ports at once could otherwise get one twice.
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

/**
 * PORT_CLAIM_WINDOW_MS is how long a claim lasts at least (at most twice that): the time a caller
 * has between freePort and its child's bind. After the bind the probe itself refuses the port.
 */
export const PORT_CLAIM_WINDOW_MS = 120_000;

// Claims are files named after the port in a folder per claim window, shared by every process of
// this user on the machine: the vitest workers, the processes they spawn, other checkouts' runs.
// The memory above is per process only, and two processes probing the same free port would both
// hand it out (a stack then failed to start with EADDRINUSE).
const claimsRoot = join(tmpdir(), `parley-port-claims-${process.getuid?.() ?? 'user'}`);

/**
 * privateClaimsRoot makes sure `root` is a directory of this user's that no other user can write
 * (creating it 0700 when missing): its name is predictable in a shared temporary directory, so
 * another local user could have made it first, or made it a symlink to somewhere this user may
 * write or delete. Checked with lstat (a symlink is never followed) on every claim; when it is not
 * such a directory, nothing is written or removed under it.
 */
export async function privateClaimsRoot(root: string): Promise<boolean> {
  const uid = process.getuid?.();
  if (uid === undefined) return false;
  try {
    await mkdir(root, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
  }
  try {
    const found = await lstat(root);
    return found.isDirectory() && found.uid === uid && (found.mode & 0o777) === 0o700;
  } catch {
    return false;
  }
}

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

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * claim records the port in this window's folder, failing when another process has (exclusive
 * create). A claim made in the window before or after also holds: two processes on either side
 * of a window's edge each create their file before looking at the other's window, so at least one
 * of them sees the other's file and gives the port up. Where the folder cannot be written, or is
 * not this user's private directory (privateClaimsRoot), processes cannot coordinate and the
 * claim succeeds (this process's memory still applies).
 */
export async function claimPort(port: number, root = claimsRoot): Promise<boolean> {
  if (!(await privateClaimsRoot(root))) return true;
  const window = Math.floor(Date.now() / PORT_CLAIM_WINDOW_MS);
  const folder = join(root, String(window));
  try {
    const opened = await mkdir(folder, { mode: 0o700 }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') return false;
        throw err;
      },
    );
    if (opened) await forgetOldWindows(root, window);
    await writeFile(join(folder, String(port)), '', { flag: 'wx' });
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EEXIST';
  }
  const neighbours = [window - 1, window + 1].map((w) => exists(join(root, String(w), String(port))));
  return !(await Promise.all(neighbours)).some(Boolean);
}

// The process that opens a window removes the folders of windows that can no longer hold a claim
// (inside the private root only: no other user can have put a link there).
async function forgetOldWindows(root: string, window: number): Promise<void> {
  const folders = await readdir(root).catch(() => [] as string[]);
  const old = folders.filter((name) => Number(name) < window - 1);
  await Promise.all(old.map((name) => rm(join(root, name), { recursive: true, force: true })));
}

/**
 * freePort returns a loopback TCP port that was free a moment ago, that this process has not
 * handed out recently and that no other process on the machine has claimed in the last
 * PORT_CLAIM_WINDOW_MS, above the ephemeral range where the OS allows. Bind it within that window.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const range = aboveEphemeral;
    const candidate = range === undefined ? 0 : range.from + Math.floor(Math.random() * (range.to - range.from + 1));
    if (handedOut.includes(candidate)) continue;
    const port = await probe(candidate);
    if (port === undefined || handedOut.includes(port)) continue;
    // Remembered before the claim settles, so two calls of this process never race for one port.
    handedOut.push(port);
    if (handedOut.length > HANDED_OUT_MEMORY) handedOut.shift();
    if (await claimPort(port)) return port;
  }
  throw new Error('no free loopback port found that was not handed out or claimed already');
}
