/**
 * The URL policy: which schemes, hosts, addresses and ports a page may reach. It is consulted twice: by the
 * handlers before a navigation they were asked to make (so `file:` and friends never reach Chromium), and by the
 * loopback forward proxy for every request the page makes (redirect hops, subresources, WebSockets), which is
 * the enforcement point that cannot be bypassed from inside the page.
 *
 * Host names are resolved here, every resolved address must pass, and the proxy then connects to the address
 * that was checked (pinned), so a DNS answer that changes between check and connect (rebinding) changes nothing.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { FleetError } from '../../protocol/errors.js';
import { parseAddressRule, type UrlPolicyOptions } from './options.js';

/** Ranges no page reaches by default: RFC 1918, loopback, link-local (cloud metadata), CGNAT, reserved, multicast. */
const BLOCKED_V4: Array<[string, number]> = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
const BLOCKED_V6: Array<[string, number]> = [
  ['::', 128],
  ['::1', 128],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
];

export type BlockReason = 'scheme' | 'host' | 'address' | 'port' | 'dns' | 'malformed';

export interface PolicyVerdict {
  allowed: boolean;
  reason?: BlockReason;
  message?: string;
  /** The checked address to connect to (pinned). */
  address?: string;
  family?: 4 | 6;
}

export type Resolver = (host: string) => Promise<Array<{ address: string; family: number }>>;

const defaultResolver: Resolver = (host) => lookup(host, { all: true, verbatim: true });

/** Scheme names that may appear in a URL a task asks to open; http(s) only, unless the policy narrows it. */
const NAVIGABLE_EXTRA = new Set(['about:']);

function hostPattern(pattern: string): (host: string) => boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  if (p.startsWith('*.')) {
    const suffix = p.slice(1);
    return (h) => h.endsWith(suffix) && h.length > suffix.length;
  }
  return (h) => h === p;
}

/** IPv4 embedded in an IPv6 address (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96), so it gets the v4 checks. */
export function embeddedV4(address: string): string | undefined {
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const hi = parseInt(hex[1]!, 16);
    const lo = parseInt(hex[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return undefined;
}

export class UrlPolicy {
  private readonly blocked = new BlockList();
  private readonly allowedAny = new BlockList();
  private readonly allowedByPort = new Map<number, BlockList>();
  private readonly allowHost: Array<(h: string) => boolean>;
  private readonly denyHost: Array<(h: string) => boolean>;
  private readonly schemes: Set<string>;

  constructor(
    readonly options: UrlPolicyOptions,
    private readonly resolve: Resolver = defaultResolver,
  ) {
    for (const [a, p] of BLOCKED_V4) this.blocked.addSubnet(a, p, 'ipv4');
    for (const [a, p] of BLOCKED_V6) this.blocked.addSubnet(a, p, 'ipv6');
    for (const entry of options.allowed_addresses) {
      const rule = parseAddressRule(entry);
      if (!rule) continue;
      let list = this.allowedAny;
      if (rule.port !== undefined) {
        list = this.allowedByPort.get(rule.port) ?? new BlockList();
        this.allowedByPort.set(rule.port, list);
      }
      if (rule.prefix === undefined) list.addAddress(rule.address, rule.family);
      else list.addSubnet(rule.address, rule.prefix, rule.family);
    }
    this.allowHost = options.allowed_hosts.map(hostPattern);
    this.denyHost = options.denied_hosts.map(hostPattern);
    this.schemes = new Set(options.allowed_schemes.map((s) => `${s}:`));
  }

  /** True when the address (and port) is on the allow list. */
  private explicitlyAllowed(address: string, family: 'ipv4' | 'ipv6', port: number): boolean {
    if (this.allowedAny.check(address, family)) return true;
    return this.allowedByPort.get(port)?.check(address, family) ?? false;
  }

  /** Checks one resolved address. */
  checkAddress(address: string, port: number): PolicyVerdict {
    const fam = isIP(address);
    if (fam === 0)
      return { allowed: false, reason: 'malformed', message: `"${address}" is not an IP address` };
    const family = fam === 4 ? 'ipv4' : 'ipv6';
    const v4 = fam === 6 ? embeddedV4(address) : undefined;
    if (
      this.explicitlyAllowed(address, family, port) ||
      (v4 !== undefined && this.explicitlyAllowed(v4, 'ipv4', port))
    ) {
      return { allowed: true, address, family: fam === 4 ? 4 : 6 };
    }
    if (this.options.block_private) {
      const isBlocked =
        this.blocked.check(address, family) || (v4 !== undefined && this.blocked.check(v4, 'ipv4'));
      if (isBlocked) {
        return {
          allowed: false,
          reason: 'address',
          message: `${address}:${port} is a private, loopback, link-local or reserved address and not on the allow list`,
        };
      }
    }
    return { allowed: true, address, family: fam === 4 ? 4 : 6 };
  }

  /** Host-name rules (no DNS): deny list, allow list, port. */
  checkHostName(host: string, port: number): PolicyVerdict {
    const h = host
      .toLowerCase()
      .replace(/^\[|\]$/g, '')
      .replace(/\.$/, '');
    if (h === '') return { allowed: false, reason: 'malformed', message: 'empty host' };
    if (this.options.allowed_ports.length > 0 && !this.options.allowed_ports.includes(port)) {
      return { allowed: false, reason: 'port', message: `port ${port} is not allowed` };
    }
    if (this.denyHost.some((m) => m(h)))
      return { allowed: false, reason: 'host', message: `host ${h} is denied` };
    if (this.allowHost.length > 0 && !this.allowHost.some((m) => m(h))) {
      // An allow list of names still admits a literal address the operator listed in allowed_addresses.
      const fam = isIP(h);
      if (fam === 0 || !this.explicitlyAllowed(h, fam === 4 ? 'ipv4' : 'ipv6', port)) {
        return { allowed: false, reason: 'host', message: `host ${h} is not on the allow list` };
      }
    }
    return { allowed: true };
  }

  /** Host rules, then DNS; every resolved address must pass. Returns the pinned address to connect to. */
  async resolveAndCheck(host: string, port: number): Promise<PolicyVerdict> {
    const byName = this.checkHostName(host, port);
    if (!byName.allowed) return byName;
    const h = host.replace(/^\[|\]$/g, '');
    if (isIP(h) !== 0) return this.checkAddress(h, port);
    let answers: Array<{ address: string; family: number }>;
    try {
      answers = await this.resolve(h);
    } catch (err) {
      return { allowed: false, reason: 'dns', message: `cannot resolve ${h}: ${(err as Error).message}` };
    }
    if (answers.length === 0) return { allowed: false, reason: 'dns', message: `no address for ${h}` };
    let first: PolicyVerdict | undefined;
    for (const a of answers) {
      const v = this.checkAddress(a.address, port);
      if (!v.allowed) return { ...v, message: `${h} resolves to ${v.message}` };
      first ??= v;
    }
    return first!;
  }

  /** The scheme/shape check of a URL a task asks to open. Throws `url_blocked`/`invalid_payload`. */
  checkNavigationUrl(raw: string): URL {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new FleetError('invalid_payload', `"${truncate(raw)}" is not an absolute URL`);
    }
    if (url.href === 'about:blank') return url;
    if (!this.schemes.has(url.protocol) && !NAVIGABLE_EXTRA.has(url.protocol)) {
      throw new FleetError('url_blocked', `scheme ${url.protocol} is not allowed (${truncate(raw)})`, {
        details: { url: truncate(raw), reason: 'scheme' },
      });
    }
    if (url.protocol === 'about:') {
      throw new FleetError('url_blocked', `only about:blank is allowed (${truncate(raw)})`, {
        details: { reason: 'scheme' },
      });
    }
    if (url.username || url.password) {
      // Credentials in URLs are a common smuggling trick (`http://allowed@blocked/`); refuse them outright.
      throw new FleetError('url_blocked', 'URLs with credentials are not allowed', {
        details: { reason: 'malformed' },
      });
    }
    return url;
  }

  /** Full check of a navigation target: shape, host rules and DNS. */
  async assertNavigable(raw: string): Promise<URL> {
    const url = this.checkNavigationUrl(raw);
    if (url.href === 'about:blank') return url;
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    const verdict = await this.resolveAndCheck(url.hostname, port);
    if (!verdict.allowed) {
      throw new FleetError('url_blocked', `URL refused by the policy: ${verdict.message ?? verdict.reason}`, {
        details: { url: truncate(raw), reason: verdict.reason },
      });
    }
    return url;
  }
}

/** Frame URLs a page may end up showing; anything else means the policy was side-stepped. */
export function isAllowedFrameUrl(raw: string): boolean {
  if (raw === '' || raw === 'about:blank' || raw === 'about:srcdoc') return true;
  return /^(https?):/i.test(raw) || raw.startsWith('chrome-error://chromewebdata');
}

export function truncate(s: string, n = 200): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
