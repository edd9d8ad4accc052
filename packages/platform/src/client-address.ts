import { BlockList, isIP } from 'node:net';
import { ConfigError } from './config.js';

/** TrustedProxies are the proxies (e.g. the ingress) whose X-Forwarded-For a server believes. */
export interface TrustedProxies {
  /** cidrs are the configured ranges, as written (for logs). */
  readonly cidrs: readonly string[];
  /** has tells whether an address is one of the trusted proxies. */
  has(address: string): boolean;
}

/** MAX_KNOWN_ADDRESSES bounds the addresses a TrustedProxies remembers its answer for (cleared when full). */
const MAX_KNOWN_ADDRESSES = 1_024;

// An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d; match and report it as IPv4.
function plain(address: string): string {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : undefined;
  return v4 !== undefined && isIP(v4) === 4 ? v4 : address;
}

/**
 * parseTrustedProxies reads a comma-separated CIDR list (a bare address is a single host);
 * empty trusts no proxy. Errors name the variable.
 */
export function parseTrustedProxies(value: string, variable = 'PARLEY_EDGE_TRUSTED_PROXIES'): TrustedProxies {
  const list = new BlockList();
  const cidrs = value
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  for (const cidr of cidrs) {
    const parts = cidr.split('/');
    const address = parts[0] ?? '';
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const prefix = parts.length === 1 ? max : /^\d{1,3}$/.test(parts[1] ?? '') ? Number(parts[1]) : NaN;
    if (family === 0 || parts.length > 2 || !(prefix >= 0 && prefix <= max)) {
      throw new ConfigError(
        variable,
        `"${cidr.slice(0, 64)}" is not a CIDR range; use comma-separated ranges such as 10.0.0.0/8,fd00::/8 (empty trusts no proxy)`,
      );
    }
    list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  // Answers by address as the socket gives it: the edge asks up to three times per request about
  // the same few peers (its ingress, a client's connection), and BlockList.check makes a
  // SocketAddress each time (1.5% of the edge's CPU per CreateSession).
  const known = new Map<string, boolean>();
  return Object.freeze({
    cidrs: Object.freeze(cidrs),
    has(address: string): boolean {
      if (cidrs.length === 0) return false;
      let answer = known.get(address);
      if (answer === undefined) {
        const a = plain(address);
        const family = isIP(a);
        answer = family !== 0 && list.check(a, family === 4 ? 'ipv4' : 'ipv6');
        if (known.size >= MAX_KNOWN_ADDRESSES) known.clear();
        known.set(address, answer);
      }
      return answer;
    },
  });
}

/**
 * clientAddress is the address a request came from: the TCP peer, unless the peer is a trusted
 * proxy, in which case the right-most X-Forwarded-For address that is not a trusted proxy.
 * Entries left of that are written by the client and never believed. A malformed entry stops
 * the walk at the last address a trusted proxy vouched for.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | readonly string[] | undefined,
  trusted: TrustedProxies,
): string {
  let current = peer === undefined || peer === '' ? 'unknown' : plain(peer);
  if (!trusted.has(current) || forwardedFor === undefined) return current;
  const hops = (typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(','))
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = plain(hops[i]!);
    if (isIP(hop) === 0) return current;
    current = hop;
    if (!trusted.has(hop)) return hop;
  }
  return current;
}
