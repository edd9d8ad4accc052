import { describe, expect, it } from 'vitest';
import { checkEgressTarget, type EgressLookup, type EgressRule } from './check.js';
import { createEgressPolicy } from './policy.js';

const PUBLIC_V4 = '93.184.215.14';
const PUBLIC_V6 = '2606:4700:4700::1111';

// The stub resolver: what each name answers. Names not here fail like NXDOMAIN.
const ZONE: Record<string, Array<{ address: string; family: 4 | 6 }>> = {
  'api.example.com': [{ address: PUBLIC_V4, family: 4 }],
  'v6.example.com': [{ address: PUBLIC_V6, family: 6 }],
  'internal.example.com': [{ address: '10.0.0.5', family: 4 }],
  'mixed.example.com': [
    { address: PUBLIC_V4, family: 4 },
    { address: '10.0.0.5', family: 4 },
  ],
  'loop6.example.com': [{ address: '::1', family: 6 }],
  'mapped.example.com': [{ address: '::ffff:127.0.0.1', family: 6 }],
  'meta.example.com': [{ address: '169.254.169.254', family: 4 }],
  'imds6.example.com': [{ address: 'fd00:ec2::254', family: 6 }],
  '127.0.0.1.nip.io': [{ address: '127.0.0.1', family: 4 }],
  'cgnat.example.com': [{ address: '100.64.1.1', family: 4 }],
  'empty.example.com': [],
};

function stubLookup(): EgressLookup & { calls: string[] } {
  const calls: string[] = [];
  const lookup = async (hostname: string) => {
    calls.push(hostname);
    const answers = ZONE[hostname];
    if (answers === undefined) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return answers;
  };
  return Object.assign(lookup, { calls });
}

const ALLOWED: Array<[string, string]> = [
  ['https://api.example.com/hooks/parley', PUBLIC_V4],
  ['https://API.Example.COM./hooks', PUBLIC_V4],
  ['https://api.example.com:443/x?y=1', PUBLIC_V4],
  ['https://v6.example.com/', PUBLIC_V6],
  [`https://${PUBLIC_V4}/`, PUBLIC_V4],
  [`https://[${PUBLIC_V6}]/`, PUBLIC_V6],
  ['https://1.1.1.1/', '1.1.1.1'],
];

// [url, rule that must refuse it]
const REFUSED: Array<[string, EgressRule]> = [
  // scheme, userinfo, port, syntax and length
  ['http://api.example.com/', 'scheme'],
  ['ftp://api.example.com/', 'scheme'],
  ['file:///etc/passwd', 'scheme'],
  ['gopher://api.example.com:70/_x', 'scheme'],
  ['javascript:alert(1)', 'scheme'],
  ['ws://api.example.com/', 'scheme'],
  ['https://user:pass@api.example.com/', 'userinfo'],
  ['https://user@api.example.com/', 'userinfo'],
  ['https://:pass@api.example.com/', 'userinfo'],
  ['https://api.example.com:8443/', 'port'],
  ['https://api.example.com:80/', 'port'],
  ['https://api.example.com:22/', 'port'],
  [`https://api.example.com/${'a'.repeat(2100)}`, 'url-length'],
  ['not a url', 'url-syntax'],
  ['//api.example.com/relative', 'url-syntax'],
  ['https://1.2.3.4.5/', 'url-syntax'],
  ['https://[::1/', 'url-syntax'],
  ['https://256.256.256.256/', 'url-syntax'],
  [`https://${'a'.repeat(64)}.example.com/`, 'host-length'],
  [`https://${Array.from({ length: 60 }, () => 'abcd').join('.')}.com/`, 'host-length'],
  // names of this machine and single-label names
  ['https://localhost/', 'localhost'],
  ['https://LOCALHOST./', 'localhost'],
  ['https://LocalHost/', 'localhost'],
  ['https://foo.localhost/', 'localhost'],
  ['https://a.b.localhost./', 'localhost'],
  ['https://%6c%6fcalhost/', 'localhost'],
  ['https://ｌｏｃａｌｈｏｓｔ/', 'localhost'],
  ['https://localhost.localdomain/', 'localhost'],
  ['https://metadata/', 'single-label-host'],
  ['https://kubernetes/', 'single-label-host'],
  ['https://intranet./', 'single-label-host'],
  // loopback, in every IPv4 spelling the URL parser normalises
  ['https://127.0.0.1/', 'address-range'],
  ['https://127.1/', 'address-range'],
  ['https://127.0.1/', 'address-range'],
  ['https://2130706433/', 'address-range'],
  ['https://0x7f000001/', 'address-range'],
  ['https://0x7F.0.0.1/', 'address-range'],
  ['https://0177.0.0.1/', 'address-range'],
  ['https://017700000001/', 'address-range'],
  ['https://127.000.000.001/', 'address-range'],
  ['https://127.0.0.1./', 'address-range'],
  ['https://127.255.255.254/', 'address-range'],
  // private, link-local / metadata, CGNAT, unspecified, multicast, broadcast, reserved, documentation
  ['https://10.0.0.1/', 'address-range'],
  ['https://0xa.0.0.1/', 'address-range'],
  ['https://012.0.0.1/', 'address-range'],
  ['https://172.16.0.1/', 'address-range'],
  ['https://172.31.255.255/', 'address-range'],
  ['https://192.168.1.1/', 'address-range'],
  ['https://3232235777/', 'address-range'],
  ['https://169.254.169.254/latest/meta-data/', 'address-range'],
  ['https://2852039166/', 'address-range'],
  ['https://0xA9FEA9FE/', 'address-range'],
  ['https://0251.0376.0251.0376/', 'address-range'],
  ['https://100.64.0.1/', 'address-range'],
  ['https://100.100.100.200/', 'address-range'],
  ['https://0.0.0.0/', 'address-range'],
  ['https://0/', 'address-range'],
  ['https://224.0.0.1/', 'address-range'],
  ['https://239.255.255.250/', 'address-range'],
  ['https://255.255.255.255/', 'address-range'],
  ['https://240.0.0.1/', 'address-range'],
  ['https://192.0.0.8/', 'address-range'],
  ['https://192.0.2.1/', 'address-range'],
  ['https://198.51.100.7/', 'address-range'],
  ['https://203.0.113.9/', 'address-range'],
  ['https://198.18.0.1/', 'address-range'],
  // IPv6 forms
  ['https://[::1]/', 'address-range'],
  ['https://[0:0:0:0:0:0:0:1]/', 'address-range'],
  ['https://[0000::0001]/', 'address-range'],
  ['https://[::]/', 'address-range'],
  ['https://[::ffff:127.0.0.1]/', 'address-range'],
  ['https://[::ffff:7f00:1]/', 'address-range'],
  ['https://[::FFFF:169.254.169.254]/', 'address-range'],
  ['https://[::ffff:10.0.0.1]/', 'address-range'],
  ['https://[::ffff:8.8.8.8]/', 'address-range'],
  ['https://[::127.0.0.1]/', 'address-range'],
  ['https://[::ffff:0:127.0.0.1]/', 'address-range'],
  ['https://[64:ff9b::7f00:1]/', 'address-range'],
  ['https://[64:ff9b::169.254.169.254]/', 'address-range'],
  ['https://[64:ff9b:1::a00:1]/', 'address-range'],
  ['https://[2002:7f00:1::]/', 'address-range'],
  ['https://[2002:a9fe:a9fe::1]/', 'address-range'],
  ['https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/', 'address-range'],
  ['https://[fc00::1]/', 'address-range'],
  ['https://[fd00:ec2::254]/', 'address-range'],
  ['https://[FE80::1]/', 'address-range'],
  ['https://[fec0::1]/', 'address-range'],
  ['https://[ff02::1]/', 'address-range'],
  ['https://[2001:db8::1]/', 'address-range'],
  ['https://[100::1]/', 'address-range'],
  // names that resolve inside
  ['https://internal.example.com/', 'address-range'],
  ['https://mixed.example.com/', 'address-range'],
  ['https://loop6.example.com/', 'address-range'],
  ['https://mapped.example.com/', 'address-range'],
  ['https://meta.example.com/', 'address-range'],
  ['https://Meta.Example.Com./', 'address-range'],
  ['https://imds6.example.com/', 'address-range'],
  ['https://127.0.0.1.nip.io/', 'address-range'],
  ['https://cgnat.example.com/', 'address-range'],
  ['https://nxdomain.example.com/', 'dns-resolution'],
  ['https://empty.example.com/', 'dns-resolution'],
];

describe('checkEgressTarget', () => {
  it.each(ALLOWED)('allows %s and pins it to %s', async (url, address) => {
    const decision = await checkEgressTarget(url, { lookup: stubLookup() });
    expect(decision).toMatchObject({ allowed: true, address });
    expect(decision.reason).toBeUndefined();
  });

  it.each(REFUSED)('refuses %s by rule %s', async (url, rule) => {
    const decision = await checkEgressTarget(url, { lookup: stubLookup() });
    expect(decision.allowed).toBe(false);
    expect(decision.rule).toBe(rule);
    expect(decision.reason).toMatch(new RegExp(`^${rule}: .+`));
    expect(decision.address).toBeUndefined();
  });

  it('names the rule, the name and the range in an address refusal, never the address a name resolved to', async () => {
    const decision = await checkEgressTarget('https://meta.example.com/', { lookup: stubLookup() });
    expect(decision.reason).toBe(
      'address-range: meta.example.com resolves to a non-public address (link-local (includes cloud metadata 169.254.169.254))',
    );
    const mapped = await checkEgressTarget('https://[::ffff:127.0.0.1]/', { lookup: stubLookup() });
    expect(mapped.reason).toContain('IPv4-mapped IPv6');
    const nat64 = await checkEgressTarget('https://[64:ff9b::7f00:1]/', { lookup: stubLookup() });
    expect(nat64.reason).toContain('NAT64');
  });

  it('asks the resolver for the normalised name once, and never for IP literals', async () => {
    const lookup = stubLookup();
    await checkEgressTarget('https://API.Example.COM./x', { lookup });
    await checkEgressTarget('https://0x7f000001/', { lookup });
    await checkEgressTarget(`https://[${PUBLIC_V6}]/`, { lookup });
    expect(lookup.calls).toEqual(['api.example.com']);
  });

  it('refuses a rebinding name whose second answer is private, and pins the first answer', async () => {
    let calls = 0;
    const rebinding: EgressLookup = async () => {
      calls += 1;
      return calls === 1 ? [{ address: PUBLIC_V4, family: 4 }] : [{ address: '127.0.0.1', family: 4 }];
    };
    const first = await checkEgressTarget('https://rebind.example.com/', { lookup: rebinding });
    expect(first).toMatchObject({ allowed: true, address: PUBLIC_V4 });
    const second = await checkEgressTarget('https://rebind.example.com/', { lookup: rebinding });
    expect(second).toMatchObject({ allowed: false, rule: 'address-range' });
  });

  it('lets only allow-listed private networks and hosts through, never other rules', async () => {
    const policy = createEgressPolicy({ allowPrivate: ['10.0.0.0/8', '::1', 'localhost'], allowedPorts: [443, 8443] });
    const lookup = stubLookup();
    expect(await checkEgressTarget('https://internal.example.com/', { lookup, policy })).toMatchObject({
      allowed: true,
      address: '10.0.0.5',
    });
    expect(await checkEgressTarget('https://[::1]:8443/', { lookup, policy })).toMatchObject({ allowed: true });
    expect(await checkEgressTarget('https://meta.example.com/', { lookup, policy })).toMatchObject({
      rule: 'address-range',
    });
    expect(await checkEgressTarget('http://internal.example.com/', { lookup, policy })).toMatchObject({ rule: 'scheme' });
    expect(await checkEgressTarget('https://internal.example.com:9000/', { lookup, policy })).toMatchObject({
      rule: 'port',
    });
    expect(await checkEgressTarget('https://u@internal.example.com/', { lookup, policy })).toMatchObject({
      rule: 'userinfo',
    });
    // The host entry lifts the name rule; the stub has no answer for it, so resolution still runs.
    expect(await checkEgressTarget('https://localhost/', { lookup, policy })).toMatchObject({ rule: 'dns-resolution' });
  });

  it('refuses everything private by default', async () => {
    const policy = createEgressPolicy();
    expect(policy.allowPrivate).toEqual([]);
    expect(policy.allowedPorts).toEqual([443]);
  });

  it('rejects a malformed allow-list entry by name', () => {
    expect(() => createEgressPolicy({ allowPrivate: ['10.0.0.0/33'] })).toThrow('"10.0.0.0/33" is not a valid CIDR');
    expect(() => createEgressPolicy({ allowPrivate: ['bad host!'] })).toThrow('"bad host!"');
    expect(() => createEgressPolicy({ allowedPorts: [0] })).toThrow('0 is not a TCP port');
  });
});
