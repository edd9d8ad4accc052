import ipaddr from 'ipaddr.js';
import type { EgressAllowEntry } from './policy.js';

// Only global unicast IPv6 (2000::/3) can be a public host; everything outside it is some special
// use (IPv4-compatible ::/96, discard, ULA, link-local, multicast…) even when ipaddr.js has no name
// for it.
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');

// The names ipaddr.js gives special ranges, in the words a refusal uses.
const RANGE_NAMES: Readonly<Record<string, string>> = {
  unspecified: 'unspecified',
  broadcast: 'broadcast',
  multicast: 'multicast',
  linkLocal: 'link-local (includes cloud metadata 169.254.169.254)',
  loopback: 'loopback',
  carrierGradeNat: 'carrier-grade NAT (100.64.0.0/10)',
  private: 'private (RFC 1918)',
  reserved: 'reserved or documentation',
  as112: 'AS112 (reserved)',
  amt: 'AMT (reserved)',
  uniqueLocal: 'unique local (fc00::/7)',
  ipv4Mapped: 'IPv4-mapped IPv6',
  deprecatedSiteLocal: 'site-local (fec0::/10)',
  discard: 'discard-only',
  rfc6145: 'IPv4-translated IPv6 (RFC 6145)',
  rfc6052: 'NAT64 (64:ff9b::/96)',
  '6to4': '6to4 (2002::/16)',
  teredo: 'Teredo (2001::/32)',
  benchmarking: 'benchmarking',
  as112v6: 'AS112 (reserved)',
  deprecatedOrchid: 'ORCHID (reserved)',
  orchid2: 'ORCHIDv2 (reserved)',
  droneRemoteIdProtocolEntityTags: 'drone remote ID (reserved)',
  segmentRouting: 'segment routing (reserved)',
};

/** AddressVerdict says whether one IP address is a public target, and if not which range it is in. */
export type AddressVerdict = { readonly public: true } | { readonly public: false; readonly range: string };

/**
 * classifyAddress decides whether an IP literal (as resolved or as written in a URL) is a public
 * unicast address. The classification is ipaddr.js's; we only refuse everything it does not call
 * `unicast`, plus IPv6 outside global unicast.
 */
export function classifyAddress(address: string): AddressVerdict {
  if (!ipaddr.isValid(address)) return { public: false, range: 'not an IP address' };
  const parsed = ipaddr.parse(address);
  const range = parsed.range();
  if (range !== 'unicast') return { public: false, range: RANGE_NAMES[range] ?? range };
  if (parsed.kind() === 'ipv6' && !parsed.match(GLOBAL_UNICAST_V6)) {
    return { public: false, range: 'outside IPv6 global unicast (2000::/3), e.g. IPv4-compatible ::/96' };
  }
  return { public: true };
}

/** addressIsAllowListed is true when an operator's CIDR entry contains the address. */
export function addressIsAllowListed(address: string, allowList: readonly EgressAllowEntry[]): boolean {
  if (!ipaddr.isValid(address)) return false;
  const parsed = ipaddr.parse(address);
  return allowList.some((entry) => entry.kind === 'cidr' && entry.range[0].kind() === parsed.kind() && parsed.match(entry.range));
}

/** isIpLiteral is true for an IPv4 dotted quad or an IPv6 address (without brackets). */
export function isIpLiteral(host: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(host) || ipaddr.IPv6.isValid(host);
}

/**
 * refusedAddress returns the refusal reason for the first answer that is neither public nor on the
 * allow-list, or undefined when every answer may be reached. One bad answer refuses the name: a
 * client could otherwise be steered to it by the resolver's order.
 */
export function refusedAddress(
  answers: ReadonlyArray<{ address: string }>,
  host: string,
  allowList: readonly EgressAllowEntry[],
): string | undefined {
  const hostAllowListed = allowList.some((entry) => entry.kind === 'host' && entry.host === host);
  if (hostAllowListed) return undefined;
  for (const answer of answers) {
    if (addressIsAllowListed(answer.address, allowList)) continue;
    const verdict = classifyAddress(answer.address);
    if (!verdict.public) {
      // A name's answer is not repeated: the refusal reaches tenants (API errors, the delivery
      // log), and must not become a way to learn what internal names resolve to.
      if (answer.address !== host) return `address-range: ${host} resolves to a non-public address (${verdict.range})`;
      return `address-range: ${answer.address} is ${verdict.range}, not a public address`;
    }
  }
  return undefined;
}

/**
 * sourceKey is the key a per-source limit counts a client address under: an IPv4 address as itself
 * (an IPv4-mapped IPv6 one too), an IPv6 address by its /64, because one host or customer usually
 * holds a whole /64 and could otherwise take a fresh bucket per address. Anything unparsable is its
 * own key.
 */
export function sourceKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}
