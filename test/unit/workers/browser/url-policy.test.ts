import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../../src/protocol/errors.js';
import { UrlPolicySchema } from '../../../../src/workers/browser/options.js';
import { embeddedV4, UrlPolicy, type Resolver } from '../../../../src/workers/browser/url-policy.js';

const answers: Record<string, string[]> = {
  'public.test': ['93.184.216.34'],
  'rebind.test': ['93.184.216.34', '127.0.0.1'],
  'meta.test': ['169.254.169.254'],
  'v6local.test': ['::1'],
};
const resolver: Resolver = async (host) => {
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
    expect(await p.resolveAndCheck('public.test', 443)).toMatchObject({
      allowed: true,
      address: '93.184.216.34',
    });
    expect(await p.resolveAndCheck('rebind.test', 443)).toMatchObject({ allowed: false, reason: 'address' });
    expect(await p.resolveAndCheck('meta.test', 80)).toMatchObject({ allowed: false });
    expect(await p.resolveAndCheck('v6local.test', 80)).toMatchObject({ allowed: false });
    expect(await p.resolveAndCheck('nowhere.test', 80)).toMatchObject({ allowed: false, reason: 'dns' });
  });

  it('applies host allow/deny lists and port lists', async () => {
    const p = policy({
      allowed_hosts: ['*.example.com', 'public.test'],
      denied_hosts: ['bad.example.com'],
      allowed_ports: [443, 80],
    });
    expect(p.checkHostName('a.example.com', 443).allowed).toBe(true);
    expect(p.checkHostName('example.com', 443).allowed).toBe(false);
    expect(p.checkHostName('bad.example.com', 443).allowed).toBe(false);
    expect(p.checkHostName('other.org', 443).allowed).toBe(false);
    expect(p.checkHostName('a.example.com', 8443).allowed).toBe(false);
    expect((await p.resolveAndCheck('public.test', 80)).allowed).toBe(true);
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
      'http://u:p@public.test/',
    ]) {
      expect(() => p.checkNavigationUrl(u), u).toThrow(FleetError);
    }
    expect(() => p.checkNavigationUrl('not a url')).toThrow(/absolute URL/);
    await expect(p.assertNavigable('http://public.test/x')).resolves.toBeInstanceOf(URL);
    await expect(p.assertNavigable('http://127.0.0.1/')).rejects.toMatchObject({ code: 'url_blocked' });
    expect(p.checkNavigationUrl('about:blank').href).toBe('about:blank');
  });

  it('reads IPv4 embedded in IPv6', () => {
    expect(embeddedV4('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(embeddedV4('::ffff:a00:1')).toBe('10.0.0.1');
    expect(embeddedV4('2001:db8::1')).toBeUndefined();
  });
});
