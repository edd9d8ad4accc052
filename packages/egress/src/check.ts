import { lookup as dnsLookup } from 'node:dns/promises';
import { isIpLiteral, refusedAddress } from './address.js';
import { DEFAULT_EGRESS_POLICY, normaliseHostName, type EgressPolicy } from './policy.js';

/** EgressLookup resolves a host name to every address it has (the stub resolver of tests has this shape). */
export type EgressLookup = (hostname: string) => Promise<Array<{ address: string; family: 4 | 6 }>>;

/** EgressRule names the rule that refused a target; a refusal's reason starts with it. */
export type EgressRule =
  | 'url-syntax'
  | 'url-length'
  | 'scheme'
  | 'userinfo'
  | 'port'
  | 'host-length'
  | 'localhost'
  | 'single-label-host'
  | 'dns-resolution'
  | 'address-range';

/** EgressCheckOptions are the optional inputs of checkEgressTarget. */
export interface EgressCheckOptions {
  /** lookup replaces the system resolver (tests pass a stub); default `dns.lookup` with `all: true`. */
  readonly lookup?: EgressLookup;
  /** policy is the operator's port list and private allow-list; default port 443 and no private target. */
  readonly policy?: EgressPolicy;
}

/** EgressDecision is checkEgressTarget's answer. */
export interface EgressDecision {
  /** allowed is true when every rule passed. */
  readonly allowed: boolean;
  /** reason says, for a refusal, which rule refused and why (`address-range: 10.0.0.5 … is private`). */
  readonly reason?: string;
  /** rule is the refusing rule, for code that branches on it. */
  readonly rule?: EgressRule;
  /** address is the checked address to connect to (the first resolved one) when allowed. */
  readonly address?: string;
  /** family is the address family of `address`. */
  readonly family?: 4 | 6;
  /** url is the parsed, normalised target when the URL parsed. */
  readonly url?: URL;
}

/** MAX_EGRESS_URL_LENGTH is the longest URL accepted, in characters. */
export const MAX_EGRESS_URL_LENGTH = 2048;
const MAX_HOST_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

/** systemLookup is the default resolver: every address of the name, in the resolver's order. */
export const systemLookup: EgressLookup = async (hostname) => {
  const answers = await dnsLookup(hostname, { all: true, verbatim: true });
  return answers.map((answer) => ({ address: answer.address, family: answer.family === 6 ? 6 : 4 }));
};

function refuse(rule: EgressRule, detail: string, url?: URL): EgressDecision {
  return { allowed: false, rule, reason: `${rule}: ${detail}`, ...(url ? { url } : {}) };
}

/**
 * checkEgressTarget decides whether Parley may connect to a customer-configured URL, and to which
 * address. The URL is parsed with the WHATWG parser (so `0x7f.1`, `2130706433` and `0177.0.0.1`
 * are already `127.0.0.1` here), the name is checked, every resolved address is classified, and
 * the target is refused if any one of them is not public. Connect to `address` and nothing else
 * (egressRequest does): a second lookup would let DNS rebinding through.
 */
export async function checkEgressTarget(url: string, options: EgressCheckOptions = {}): Promise<EgressDecision> {
  const policy = options.policy ?? DEFAULT_EGRESS_POLICY;
  if (url.length > MAX_EGRESS_URL_LENGTH) {
    return refuse('url-length', `the URL is ${url.length} characters; at most ${MAX_EGRESS_URL_LENGTH} are allowed`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return refuse('url-syntax', 'not an absolute URL (expected https://host/path)');
  }
  if (parsed.protocol !== 'https:') {
    return refuse('scheme', `only https is allowed, got ${parsed.protocol.slice(0, -1)}`, parsed);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    return refuse('userinfo', 'the URL must not carry a user name or password', parsed);
  }
  const port = parsed.port === '' ? 443 : Number(parsed.port);
  if (!policy.allowedPorts.includes(port)) {
    return refuse('port', `port ${port} is not allowed (allowed: ${policy.allowedPorts.join(', ')})`, parsed);
  }

  const rawHost = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  const host = normaliseHostName(rawHost);
  const hostAllowListed = policy.allowPrivate.some((entry) => entry.kind === 'host' && entry.host === host);

  let answers: Array<{ address: string; family: 4 | 6 }>;
  if (isIpLiteral(host)) {
    answers = [{ address: host, family: host.includes(':') ? 6 : 4 }];
  } else {
    if (host.length > MAX_HOST_LENGTH) {
      return refuse('host-length', `the host name is ${host.length} characters; at most ${MAX_HOST_LENGTH}`, parsed);
    }
    const labels = host.split('.');
    const longLabel = labels.find((label) => label.length > MAX_LABEL_LENGTH || label.length === 0);
    if (longLabel !== undefined) {
      return refuse('host-length', `every label of the host name must be 1-${MAX_LABEL_LENGTH} characters`, parsed);
    }
    if (!hostAllowListed) {
      if (host === 'localhost' || host.endsWith('.localhost') || host === 'localhost.localdomain') {
        return refuse('localhost', `${host} names this machine`, parsed);
      }
      if (labels.length < 2) {
        return refuse('single-label-host', `${host} is a single-label name that only a local resolver answers`, parsed);
      }
    }
    try {
      answers = await (options.lookup ?? systemLookup)(host);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return refuse('dns-resolution', `${host} did not resolve${typeof code === 'string' ? ` (${code})` : ''}`, parsed);
    }
    if (answers.length === 0) return refuse('dns-resolution', `${host} has no address`, parsed);
  }

  const refusal = refusedAddress(answers, host, policy.allowPrivate);
  if (refusal !== undefined) return { allowed: false, rule: 'address-range', reason: refusal, url: parsed };
  const first = answers[0]!;
  return { allowed: true, address: first.address, family: first.family, url: parsed };
}
