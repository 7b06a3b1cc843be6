/**
 * The IANA special-purpose address registries and the special-use domain names, as data: the policy blocks by
 * these tables, not by a hand list, and the unit tests walk every row. Sources (as of 2025):
 *   https://www.iana.org/assignments/iana-ipv4-special-registry
 *   https://www.iana.org/assignments/iana-ipv6-special-registry
 *   https://www.iana.org/assignments/special-use-domain-names
 * `reachable` is the registry's "Globally Reachable" column (`n/a` where it says N/A, deprecated rows included).
 * A page may reach an address only when no row that holds it is anything but globally reachable, so a globally
 * reachable /32 inside a non-reachable block (PCP anycast in 192.0.0.0/24) stays blocked: the safe reading.
 *
 * Beyond the special-purpose registries:
 *  - IPv4 multicast 224.0.0.0/4 (RFC 5771) is in its own registry;
 *  - IPv6: only 2000::/3 is allocated global unicast (IPv6 address space registry, RFC 4291); everything else
 *    (the IPv4-compatible ::/96, SIIT ::ffff:0:0:0/96, site-local fec0::/10, multicast ff00::/8, the reserved
 *    blocks) is refused, except the two forms that carry an IPv4 address a host really connects to — IPv4-mapped
 *    (::ffff:0:0/96) and the well-known NAT64 prefix (64:ff9b::/96) — which are judged by the IPv4 inside.
 *  - 6to4 (2002::/16) and Teredo (2001::/32) route to an IPv4 address inside them; both are refused outright.
 */

export type Reachable = true | false | 'n/a';

export interface SpecialRange {
  prefix: string;
  bits: number;
  name: string;
  rfc: string;
  reachable: Reachable;
}

const row = (cidr: string, name: string, rfc: string, reachable: Reachable): SpecialRange => {
  const [prefix, bits] = cidr.split('/') as [string, string];
  return { prefix, bits: Number(bits), name, rfc, reachable };
};

export const IPV4_SPECIAL: readonly SpecialRange[] = [
  row('0.0.0.0/8', '"This network"', 'RFC 791 §3.2', false),
  row('0.0.0.0/32', '"This host on this network"', 'RFC 1122 §3.2.1.3', false),
  row('10.0.0.0/8', 'Private-Use', 'RFC 1918', false),
  row('100.64.0.0/10', 'Shared Address Space', 'RFC 6598', false),
  row('127.0.0.0/8', 'Loopback', 'RFC 1122 §3.2.1.3', false),
  row('169.254.0.0/16', 'Link Local', 'RFC 3927', false),
  row('172.16.0.0/12', 'Private-Use', 'RFC 1918', false),
  row('192.0.0.0/24', 'IETF Protocol Assignments', 'RFC 6890 §2.1', false),
  row('192.0.0.0/29', 'IPv4 Service Continuity Prefix', 'RFC 7335', false),
  row('192.0.0.8/32', 'IPv4 dummy address', 'RFC 7600', false),
  row('192.0.0.9/32', 'Port Control Protocol Anycast', 'RFC 7723', true),
  row('192.0.0.10/32', 'Traversal Using Relays around NAT Anycast', 'RFC 8155', true),
  row('192.0.0.170/32', 'NAT64/DNS64 Discovery', 'RFC 8880, RFC 7050 §2.2', false),
  row('192.0.0.171/32', 'NAT64/DNS64 Discovery', 'RFC 8880, RFC 7050 §2.2', false),
  row('192.0.2.0/24', 'Documentation (TEST-NET-1)', 'RFC 5737', false),
  row('192.31.196.0/24', 'AS112-v4', 'RFC 7535', true),
  row('192.52.193.0/24', 'AMT', 'RFC 7450', true),
  row('192.88.99.0/24', 'Deprecated (6to4 Relay Anycast)', 'RFC 7526', 'n/a'),
  row('192.88.99.2/32', '6a44-relay anycast address', 'RFC 6751', false),
  row('192.168.0.0/16', 'Private-Use', 'RFC 1918', false),
  row('192.175.48.0/24', 'Direct Delegation AS112 Service', 'RFC 7534', true),
  row('198.18.0.0/15', 'Benchmarking', 'RFC 2544', false),
  row('198.51.100.0/24', 'Documentation (TEST-NET-2)', 'RFC 5737', false),
  row('203.0.113.0/24', 'Documentation (TEST-NET-3)', 'RFC 5737', false),
  row('240.0.0.0/4', 'Reserved', 'RFC 1112 §4', false),
  row('255.255.255.255/32', 'Limited Broadcast', 'RFC 8190, RFC 919 §7', false),
  // Not in the special-purpose registry (it has its own), never a unicast destination.
  row('224.0.0.0/4', 'Multicast', 'RFC 5771', false),
];

export const IPV6_SPECIAL: readonly SpecialRange[] = [
  row('::1/128', 'Loopback Address', 'RFC 4291', false),
  row('::/128', 'Unspecified Address', 'RFC 4291', false),
  row('::ffff:0:0/96', 'IPv4-mapped Address', 'RFC 4291', false),
  row('64:ff9b::/96', 'IPv4-IPv6 Translat.', 'RFC 6052', true),
  row('64:ff9b:1::/48', 'IPv4-IPv6 Translat. (local use)', 'RFC 8215', false),
  row('100::/64', 'Discard-Only Address Block', 'RFC 6666', false),
  row('100:0:0:1::/64', 'Dummy IPv6 Prefix', 'RFC 9780', false),
  row('2001::/23', 'IETF Protocol Assignments', 'RFC 2928', false),
  row('2001::/32', 'TEREDO', 'RFC 4380, RFC 8190', 'n/a'),
  row('2001:1::1/128', 'Port Control Protocol Anycast', 'RFC 7723', true),
  row('2001:1::2/128', 'Traversal Using Relays around NAT Anycast', 'RFC 8155', true),
  row('2001:1::3/128', 'DNS-SD Service Registration Protocol Anycast', 'RFC 9665', true),
  row('2001:2::/48', 'Benchmarking', 'RFC 5180, RFC Errata 1752', false),
  row('2001:3::/32', 'AMT', 'RFC 7450', true),
  row('2001:4:112::/48', 'AS112-v6', 'RFC 7535', true),
  row('2001:10::/28', 'Deprecated (previously ORCHID)', 'RFC 4843', 'n/a'),
  row('2001:20::/28', 'ORCHIDv2', 'RFC 7343', true),
  row('2001:30::/28', 'Drone Remote ID Protocol Entity Tags (DETs) Prefix', 'RFC 9374', true),
  row('2001:db8::/32', 'Documentation', 'RFC 3849', false),
  row('2002::/16', '6to4', 'RFC 3056', 'n/a'),
  row('2620:4f:8000::/48', 'Direct Delegation AS112 Service', 'RFC 7534', true),
  row('3fff::/20', 'Documentation', 'RFC 9637', false),
  row('5f00::/16', 'Segment Routing (SRv6) SIDs', 'RFC 9602', false),
  row('fc00::/7', 'Unique-Local', 'RFC 4193, RFC 8190', false),
  row('fe80::/10', 'Link-Local Unicast', 'RFC 4291', false),
  // From the IPv6 address space registry, not the special-purpose one: deprecated or never unicast.
  row('::/96', 'IPv4-compatible (deprecated)', 'RFC 4291 §2.5.5.1', false),
  row('::ffff:0:0:0/96', 'IPv4-translated (SIIT)', 'RFC 2765 §2.1', false),
  row('fec0::/10', 'Site-Local (deprecated)', 'RFC 3879', false),
  row('ff00::/8', 'Multicast', 'RFC 4291 §2.7', false),
];

/** The only IPv6 space allocated for global unicast; an address outside it (and not a v4 carrier) is refused. */
export const IPV6_GLOBAL_UNICAST = row('2000::/3', 'Global Unicast', 'RFC 4291, RFC 3513', true);

/** Prefixes whose low 32 bits are an IPv4 address a host connects to: judged by that address. */
export const IPV4_CARRIERS: readonly SpecialRange[] = [IPV6_SPECIAL[2]!, IPV6_SPECIAL[3]!];

export interface SpecialName {
  /** Matches the name itself and every name under it. */
  suffix: string;
  rfc: string;
  why: string;
}

/**
 * Names refused without a DNS query: the answer is fixed (loopback, NXDOMAIN) or only a local network has one
 * (mDNS, home.arpa, .internal), so asking the system resolver can only leak the name or reach inside.
 */
export const SPECIAL_USE_NAMES: readonly SpecialName[] = [
  { suffix: 'localhost', rfc: 'RFC 6761 §6.3', why: 'always the loopback interface' },
  { suffix: 'invalid', rfc: 'RFC 6761 §6.4', why: 'never exists' },
  { suffix: 'test', rfc: 'RFC 6761 §6.2', why: 'testing names, local meaning only' },
  { suffix: 'local', rfc: 'RFC 6762', why: 'multicast DNS, the local link only' },
  { suffix: 'onion', rfc: 'RFC 7686', why: 'Tor, never in DNS' },
  { suffix: 'home.arpa', rfc: 'RFC 8375', why: 'home networks, local meaning only' },
  { suffix: 'alt', rfc: 'RFC 9476', why: 'non-DNS namespaces' },
  { suffix: 'internal', rfc: 'ICANN board resolution 2024.07.29.06', why: 'private-use names' },
  { suffix: 'in-addr.arpa', rfc: 'RFC 1035 §3.5', why: 'reverse-mapping names, not hosts' },
  { suffix: 'ip6.arpa', rfc: 'RFC 3596 §2.5', why: 'reverse-mapping names, not hosts' },
];

/** The special-use row a (lower-case, no trailing dot) name falls under, if any. */
export function specialUseName(name: string): SpecialName | undefined {
  return SPECIAL_USE_NAMES.find((n) => name === n.suffix || name.endsWith(`.${n.suffix}`));
}
