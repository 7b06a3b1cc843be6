import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../../src/protocol/errors.js';
import { hostname } from 'node:os';
import { UrlPolicySchema } from '../../../../src/workers/browser/options.js';
import {
  IPV4_CARRIERS,
  IPV4_SPECIAL,
  IPV6_SPECIAL,
  SPECIAL_USE_NAMES,
} from '../../../../src/workers/browser/special-purpose.js';
import {
  embeddedV4,
  specialPurposeReason,
  specialRangesOf,
  UrlPolicy,
  type Resolver,
} from '../../../../src/workers/browser/url-policy.js';

const answers: Record<string, string[]> = {
  'public.example.com': ['93.184.216.34'],
  'rebind.example.com': ['93.184.216.34', '127.0.0.1'],
  'meta.example.com': ['169.254.169.254'],
  'v6local.example.com': ['::1'],
};
const asked: string[] = [];
const resolver: Resolver = async (host) => {
  asked.push(host);
  const a = answers[host];
  if (!a) throw new Error('ENOTFOUND');
  return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};
const policy = (o: Record<string, unknown> = {}) => new UrlPolicy(UrlPolicySchema.parse(o), resolver);

describe('UrlPolicy', () => {
  it('blocks private, loopback, link-local, metadata, CGNAT and mapped/NAT64 forms by default', () => {
    const p = policy();
    for (const ip of [
      '10.1.2.3',
      '127.0.0.1',
      '127.9.9.9',
      '169.254.169.254',
      '172.16.0.1',
      '192.168.1.1',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fe80::1',
      'fd00::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '64:ff9b::a9fe:a9fe',
      '224.0.0.1',
    ]) {
      expect(p.checkAddress(ip, 80).allowed, ip).toBe(false);
    }
    expect(p.checkAddress('93.184.216.34', 80).allowed).toBe(true);
    expect(p.checkAddress('2606:2800:220:1::1', 443).allowed).toBe(true);
  });

  it('exempts allow-listed addresses, optionally only on one port', () => {
    const p = policy({ allowed_addresses: ['127.0.0.1:8080', '10.0.0.0/8', '[::1]:9000'] });
    expect(p.checkAddress('127.0.0.1', 8080).allowed).toBe(true);
    expect(p.checkAddress('127.0.0.1', 8081).allowed).toBe(false);
    expect(p.checkAddress('127.0.0.2', 8080).allowed).toBe(false);
    expect(p.checkAddress('10.200.0.1', 1).allowed).toBe(true);
    expect(p.checkAddress('::1', 9000).allowed).toBe(true);
    expect(p.checkAddress('::ffff:127.0.0.1', 8080).allowed).toBe(true);
  });

  it('checks every resolved address and pins the checked one (no rebinding)', async () => {
    const p = policy();
    expect(await p.resolveAndCheck('public.example.com', 443)).toMatchObject({
      allowed: true,
      address: '93.184.216.34',
    });
    expect(await p.resolveAndCheck('rebind.example.com', 443)).toMatchObject({
      allowed: false,
      reason: 'address',
    });
    expect(await p.resolveAndCheck('meta.example.com', 80)).toMatchObject({ allowed: false });
    expect(await p.resolveAndCheck('v6local.example.com', 80)).toMatchObject({ allowed: false });
    expect(await p.resolveAndCheck('nowhere.example.com', 80)).toMatchObject({
      allowed: false,
      reason: 'dns',
    });
  });

  it('applies host allow/deny lists and port lists', async () => {
    const p = policy({
      allowed_hosts: ['*.example.com', 'public.example.net'],
      denied_hosts: ['bad.example.com'],
      allowed_ports: [443, 80],
    });
    expect(p.checkHostName('a.example.com', 443).allowed).toBe(true);
    expect(p.checkHostName('example.com', 443).allowed).toBe(false);
    expect(p.checkHostName('bad.example.com', 443).allowed).toBe(false);
    expect(p.checkHostName('other.org', 443).allowed).toBe(false);
    expect(p.checkHostName('a.example.com', 8443).allowed).toBe(false);
    expect((await p.resolveAndCheck('public.example.com', 80)).allowed).toBe(true);
    expect(p.checkHostName('public.example.net', 80).allowed).toBe(true);
  });

  it('refuses non-http schemes, credentials and garbage before any browser sees them', async () => {
    const p = policy();
    for (const u of [
      'file:///etc/passwd',
      'data:text/html,x',
      'chrome://settings',
      'view-source:http://x',
      'javascript:1',
      'ftp://x',
      'about:config',
      'http://u:p@public.example.com/',
    ]) {
      expect(() => p.checkNavigationUrl(u), u).toThrow(FleetError);
    }
    expect(() => p.checkNavigationUrl('not a url')).toThrow(/absolute URL/);
    await expect(p.assertNavigable('http://public.example.com/x')).resolves.toBeInstanceOf(URL);
    await expect(p.assertNavigable('http://127.0.0.1/')).rejects.toMatchObject({ code: 'url_blocked' });
    expect(p.checkNavigationUrl('about:blank').href).toBe('about:blank');
  });

  it('reads IPv4 embedded in IPv6', () => {
    expect(embeddedV4('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(embeddedV4('::ffff:a00:1')).toBe('10.0.0.1');
    expect(embeddedV4('2001:db8::1')).toBeUndefined();
  });

  it('reads IPv4 only from the carriers a host really connects through (mapped, well-known NAT64)', () => {
    expect(embeddedV4('64:ff9b::7f00:1')).toBe('127.0.0.1');
    expect(embeddedV4('64:ff9b::8.8.8.8')).toBe('8.8.8.8');
    expect(embeddedV4('::127.0.0.1')).toBeUndefined();
    expect(embeddedV4('64:ff9b:1::7f00:1')).toBeUndefined();
  });
});

/** Addresses at both ends of a prefix: the first, and the last (all host bits set). */
function ends(prefix: string, bits: number): [string, string] {
  if (prefix.includes(':')) {
    const groups = expandV6(prefix);
    const last = groups.map((g, i) => {
      const lo = i * 16;
      if (lo + 16 <= bits) return g;
      if (lo >= bits) return 0xffff;
      return g | (0xffff >> (bits - lo));
    });
    return [prefix, last.map((g) => g.toString(16)).join(':')];
  }
  const n = prefix.split('.').reduce((a, b) => a * 256 + Number(b), 0);
  const last = n + 2 ** (32 - bits) - 1;
  const dotted = (x: number) => [24, 16, 8, 0].map((s) => Math.floor(x / 2 ** s) % 256).join('.');
  return [prefix, dotted(last)];
}
function expandV6(a: string): number[] {
  const [head, tail = ''] = a.split('::') as [string, string?];
  const h = head ? head.split(':').map((g) => parseInt(g, 16)) : [];
  const t = tail ? tail.split(':').map((g) => parseInt(g, 16)) : [];
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

describe('special-purpose registries (IANA) as the policy', () => {
  const p = policy();
  const carriers = new Set(IPV4_CARRIERS);

  it('blocks both ends of every row that is not globally reachable, naming the row', () => {
    for (const r of [...IPV4_SPECIAL, ...IPV6_SPECIAL]) {
      if (r.reachable === true || carriers.has(r)) continue;
      for (const ip of ends(r.prefix, r.bits)) {
        const v = p.checkAddress(ip, 443);
        expect(v.allowed, `${ip} (${r.name}, ${r.rfc})`).toBe(false);
        expect(specialRangesOf(ip).length, ip).toBeGreaterThan(0);
      }
    }
    expect(p.checkAddress('192.168.0.1', 80).message).toContain('RFC 1918');
    expect(p.checkAddress('2002:7f00:1::', 80).message).toContain('6to4');
  });

  it('allows globally reachable rows that no blocked row contains (AS112, AMT)', () => {
    for (const ip of ['192.31.196.1', '192.52.193.1', '192.175.48.1', '2620:4f:8000::1']) {
      expect(specialPurposeReason(ip), ip).toBeUndefined();
    }
    // Globally reachable inside a block that is not: the block wins.
    expect(p.checkAddress('192.0.0.9', 80).allowed).toBe(false);
    expect(p.checkAddress('2001:1::1', 80).allowed).toBe(false);
    expect(p.checkAddress('2001:4:112::1', 80).allowed).toBe(false);
  });

  it('refuses every IPv6 form that embeds or routes to IPv4 special addresses', () => {
    for (const ip of [
      '::127.0.0.1', // IPv4-compatible ::/96
      '::7f00:1',
      '::a9fe:a9fe',
      '::8.8.8.8', // deprecated form, refused whatever it carries
      '2002:7f00:1::1', // 6to4 of 127.0.0.1
      '2002:a9fe:a9fe::', // 6to4 of 169.254.169.254
      '2002:808:808::1', // 6to4, public inside: refused as a form
      '64:ff9b:1::7f00:1', // local-use NAT64
      '64:ff9b:1::808:808',
      '64:ff9b::7f00:1', // well-known NAT64 of loopback
      '64:ff9b::a9fe:a9fe',
      '::ffff:0:7f00:1', // SIIT IPv4-translated
      '::ffff:0:808:808',
      '2001:0:4136:e378:8000:63bf:3fff:fdd2', // Teredo
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
      'fec0::1', // site-local
      'ff02::1',
      '100::1',
      '3fff::1',
      '5f00::1',
      '4000::1', // outside 2000::/3
      'fe80::1%eth0',
    ]) {
      expect(p.checkAddress(ip, 80).allowed, ip).toBe(false);
    }
    // Public IPv4 carried the ways a host really connects: judged as that IPv4 address.
    expect(p.checkAddress('::ffff:8.8.8.8', 80).allowed).toBe(true);
    expect(p.checkAddress('64:ff9b::808:808', 80).allowed).toBe(true);
    expect(p.checkAddress('2606:4700:4700::1111', 443).allowed).toBe(true);
    expect(p.checkAddress('8.8.8.8', 443).allowed).toBe(true);
  });
});

describe('special-use names: refused with no DNS query', () => {
  const own = hostname().toLowerCase();
  const names = [
    'localhost',
    'localhost.',
    'LOCALHOST',
    'a.localhost',
    'x.y.localhost.',
    'foo.invalid',
    'fleet-content.invalid',
    'foo.test',
    'printer.local',
    'abc.onion',
    'router.home.arpa',
    'x.alt',
    'metadata.google.internal',
    '1.0.0.127.in-addr.arpa',
    own,
    `${own}.`,
    'intranet', // single label: search domains
  ];

  it('refuses each before resolving, with reason special-name', async () => {
    const p = policy();
    asked.length = 0;
    for (const name of names) {
      const v = await p.resolveAndCheck(name, 80);
      expect(v, name).toMatchObject({ allowed: false, reason: 'special-name' });
      await expect(p.assertNavigable(`http://${name}/`), name).rejects.toMatchObject({ code: 'url_blocked' });
    }
    expect(asked).toEqual([]);
    expect(SPECIAL_USE_NAMES.every((n) => /^RFC \d+|^ICANN/.test(n.rfc))).toBe(true);
  });

  it('still resolves ordinary names, and a name the operator lists in allowed_hosts', async () => {
    asked.length = 0;
    expect((await policy().resolveAndCheck('public.example.com', 80)).allowed).toBe(true);
    const listed = policy({ allowed_hosts: ['*.test'], allowed_addresses: ['127.0.0.1'] });
    answers['app.test'] = ['127.0.0.1'];
    expect((await listed.resolveAndCheck('app.test', 80)).allowed).toBe(true);
    expect(asked).toEqual(['public.example.com', 'app.test']);
  });
});
