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
import { hostname } from 'node:os';
import { FleetError } from '../../protocol/errors.js';
import { parseAddressRule, type UrlPolicyOptions } from './options.js';
import {
  IPV4_CARRIERS,
  IPV4_SPECIAL,
  IPV6_GLOBAL_UNICAST,
  IPV6_SPECIAL,
  specialUseName,
  type SpecialRange,
} from './special-purpose.js';

export type BlockReason = 'scheme' | 'host' | 'special-name' | 'address' | 'port' | 'dns' | 'malformed';

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

const carriers = new BlockList();
for (const r of IPV4_CARRIERS) carriers.addSubnet(r.prefix, r.bits, 'ipv6');

/** The 8 groups of an IPv6 address as numbers (dotted-quad tails included), or undefined when malformed. */
function groupsOf(address: string): number[] | undefined {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const b = quad.slice(1).map(Number);
    if (b.some((x) => x > 255)) return undefined;
    text = `${text.slice(0, quad.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  return all.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff) ? undefined : all;
}

/**
 * The IPv4 address an IPv6 address carries when a host connecting to it really reaches that IPv4 host:
 * IPv4-mapped (::ffff:0:0/96) and well-known NAT64 (64:ff9b::/96). Judged by the IPv4 checks.
 */
export function embeddedV4(address: string): string | undefined {
  if (isIP(address) !== 6 || !carriers.check(address, 'ipv6')) return undefined;
  const g = groupsOf(address);
  if (!g) return undefined;
  return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
}

/** The special-purpose rows (IANA registries) holding an address, most specific last. */
export function specialRangesOf(address: string): SpecialRange[] {
  const fam = isIP(address);
  if (fam === 0) return [];
  const family = fam === 4 ? 'ipv4' : 'ipv6';
  const out: SpecialRange[] = [];
  for (const r of fam === 4 ? IPV4_SPECIAL : IPV6_SPECIAL) {
    const one = new BlockList();
    one.addSubnet(r.prefix, r.bits, family);
    if (one.check(address, family)) out.push(r);
  }
  return out.sort((a, b) => a.bits - b.bits);
}

const notReachable = (() => {
  const list = new BlockList();
  for (const r of IPV4_SPECIAL) if (r.reachable !== true) list.addSubnet(r.prefix, r.bits, 'ipv4');
  for (const r of IPV6_SPECIAL) {
    if (r.reachable !== true && !IPV4_CARRIERS.includes(r)) list.addSubnet(r.prefix, r.bits, 'ipv6');
  }
  return list;
})();
const globalUnicast = new BlockList();
globalUnicast.addSubnet(IPV6_GLOBAL_UNICAST.prefix, IPV6_GLOBAL_UNICAST.bits, 'ipv6');

/**
 * Why an address is not one a page may reach by default (a special-purpose row, or IPv6 outside global unicast),
 * or undefined when it is an ordinary public address. IPv4 carried in IPv6 is judged as that IPv4 address.
 */
export function specialPurposeReason(address: string): string | undefined {
  const fam = isIP(address);
  if (fam === 0) return 'not an IP address';
  if (fam === 6) {
    const v4 = embeddedV4(address);
    if (v4 !== undefined) {
      const inner = specialPurposeReason(v4);
      return inner === undefined ? undefined : `carries ${v4}: ${inner}`;
    }
  }
  const family = fam === 4 ? 'ipv4' : 'ipv6';
  if (notReachable.check(address, family)) {
    const rows = specialRangesOf(address).filter((r) => r.reachable !== true);
    const r = rows[rows.length - 1];
    return r ? `${r.name} ${r.prefix}/${r.bits} (${r.rfc})` : 'a special-purpose address';
  }
  if (fam === 6 && !globalUnicast.check(address, 'ipv6')) {
    return 'outside IPv6 global unicast 2000::/3 (RFC 4291)';
  }
  return undefined;
}

/** This machine's own names: they resolve to it (often 127.0.1.1 through /etc/hosts) and are refused by name. */
function ownNames(): Set<string> {
  const names = new Set<string>();
  const h = hostname().toLowerCase().replace(/\.$/, '');
  if (h) {
    names.add(h);
    names.add(h.split('.')[0]!);
  }
  return names;
}

export class UrlPolicy {
  private readonly ownNames = ownNames();
  private readonly allowedAny = new BlockList();
  private readonly allowedByPort = new Map<number, BlockList>();
  private readonly allowHost: Array<(h: string) => boolean>;
  private readonly denyHost: Array<(h: string) => boolean>;
  private readonly schemes: Set<string>;

  constructor(
    readonly options: UrlPolicyOptions,
    private readonly resolve: Resolver = defaultResolver,
  ) {
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
      const why = specialPurposeReason(address);
      if (why !== undefined) {
        return {
          allowed: false,
          reason: 'address',
          message: `${address}:${port} is not a public address (${why}) and not on the allow list`,
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
    const listed = this.allowHost.some((m) => m(h));
    if (isIP(h) === 0 && !listed) {
      // Known answers (RFC 6761 names, this machine's own name) and names the resolver completes with its search
      // domains (no dot) are refused here, before any DNS query: asking can only leak the name or reach inside.
      const special = specialUseName(h);
      if (special) {
        return {
          allowed: false,
          reason: 'special-name',
          message: `${h} is a special-use name (.${special.suffix}: ${special.why}, ${special.rfc})`,
        };
      }
      if (this.ownNames.has(h)) {
        return { allowed: false, reason: 'special-name', message: `${h} is this machine's own name` };
      }
      if (!h.includes('.')) {
        return {
          allowed: false,
          reason: 'special-name',
          message: `${h} is a single-label name (the resolver would complete it with local search domains)`,
        };
      }
    }
    if (this.allowHost.length > 0 && !listed) {
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

/**
 * Frame URLs a page may end up showing; anything else means the policy was side-stepped. `data:` and `blob:`
 * documents are fine in subframes (ordinary sites use them; everything they load still goes through the proxy),
 * never as the top-level document, which the task's own URL must be.
 */
export function isAllowedFrameUrl(raw: string, mainFrame = true): boolean {
  if (raw === '' || raw === 'about:blank' || raw === 'about:srcdoc') return true;
  if (!mainFrame && /^(data|blob):/i.test(raw)) return true;
  return /^(https?):/i.test(raw) || raw.startsWith('chrome-error://chromewebdata');
}

export function truncate(s: string, n = 200): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
