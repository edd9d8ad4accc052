import ipaddr from 'ipaddr.js';
import { ConfigError, type Env } from '@parley/platform';

/** EgressAllowEntry is one operator allow-list entry: a private network or a host name. */
export type EgressAllowEntry =
  | { readonly kind: 'cidr'; readonly text: string; readonly range: [ipaddr.IPv4 | ipaddr.IPv6, number] }
  | { readonly kind: 'host'; readonly text: string; readonly host: string };

/**
 * EgressPolicy is what an operator may configure about egress. The defaults are the safe ones:
 * port 443 only and no private target at all.
 */
export interface EgressPolicy {
  /** allowedPorts are the TCP ports a target may use (default `[443]`). */
  readonly allowedPorts: readonly number[];
  /**
   * allowPrivate lets chosen private targets through (a customer's own network, tests): CIDRs
   * (`10.20.0.0/16`, `127.0.0.1/32`, `fd00::/8`), single addresses, or exact host names. Empty by
   * default. It lifts only the address-range and host-name rules, never the scheme, port or
   * userinfo rules.
   */
  readonly allowPrivate: readonly EgressAllowEntry[];
}

/** DEFAULT_EGRESS_POLICY is port 443 only and an empty private allow-list. */
export const DEFAULT_EGRESS_POLICY: EgressPolicy = Object.freeze({
  allowedPorts: Object.freeze([443]),
  allowPrivate: Object.freeze([]),
});

/** EgressPolicyInput is the plain form of a policy, as read from configuration. */
export interface EgressPolicyInput {
  /** allowedPorts defaults to `[443]`. */
  readonly allowedPorts?: readonly number[];
  /** allowPrivate entries: CIDRs, addresses or host names; empty by default. */
  readonly allowPrivate?: readonly string[];
}

/**
 * createEgressPolicy validates an operator's policy; a bad entry throws an Error that names it,
 * so a service refuses to start rather than run with a list it misread.
 */
export function createEgressPolicy(input: EgressPolicyInput = {}): EgressPolicy {
  const allowedPorts = input.allowedPorts ?? [443];
  if (allowedPorts.length === 0) throw new Error('egress allowedPorts must name at least one port');
  for (const port of allowedPorts) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`egress allowedPorts: ${String(port)} is not a TCP port (1-65535)`);
    }
  }
  return Object.freeze({
    allowedPorts: Object.freeze([...allowedPorts]),
    allowPrivate: Object.freeze((input.allowPrivate ?? []).map(parseAllowEntry)),
  });
}

/** parseEgressPolicyList reads a comma-separated configuration value into entries (blank → []). */
export function parseEgressPolicyList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

function parseAllowEntry(text: string): EgressAllowEntry {
  const entry = text.trim();
  if (entry.includes('/')) {
    try {
      return { kind: 'cidr', text: entry, range: ipaddr.parseCIDR(entry) };
    } catch {
      throw new Error(`egress allowPrivate: "${entry}" is not a valid CIDR (e.g. 10.0.0.0/8 or fd00::/8)`);
    }
  }
  if (ipaddr.isValid(entry)) {
    const address = ipaddr.parse(entry);
    return { kind: 'cidr', text: entry, range: [address, address.kind() === 'ipv4' ? 32 : 128] };
  }
  const host = normaliseHostName(entry);
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(host)) {
    throw new Error(`egress allowPrivate: "${entry}" is neither a CIDR, an address nor a host name`);
  }
  return { kind: 'host', text: entry, host };
}

/** normaliseHostName lower-cases a host name and drops one trailing dot (`Example.COM.` → `example.com`). */
export function normaliseHostName(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * egressPolicyFromEnv reads PARLEY_EGRESS_ALLOWED_PORTS (comma-separated, default 443) and
 * PARLEY_EGRESS_ALLOW_PRIVATE (comma-separated CIDRs, addresses or host names, default none), the
 * same way in every service that reaches customer-configured URLs; a bad entry is a ConfigError
 * naming the variable.
 */
export function egressPolicyFromEnv(env: Env): EgressPolicy {
  const ports = parseEgressPolicyList(env.PARLEY_EGRESS_ALLOWED_PORTS ?? '443').map(Number);
  try {
    return createEgressPolicy({ allowedPorts: ports, allowPrivate: parseEgressPolicyList(env.PARLEY_EGRESS_ALLOW_PRIVATE) });
  } catch (error) {
    const variable = /allowPrivate/.test(String(error)) ? 'PARLEY_EGRESS_ALLOW_PRIVATE' : 'PARLEY_EGRESS_ALLOWED_PORTS';
    throw new ConfigError(variable, (error as Error).message.replace(/^egress \w+: /, ''));
  }
}
