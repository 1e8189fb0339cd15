import type { LookupAddress } from 'node:dns';
import type { RequestOptions } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * Which outgoing addresses a server-side fetch (feeds) may reach: a pure policy, no I/O.
 *
 * Refused always: cloud metadata addresses and host names (even with allowPrivate), unspecified,
 * multicast, broadcast, reserved, documentation and benchmarking ranges, IPv4-compatible IPv6, and
 * IPv6 forms that embed a non-public IPv4 address (NAT64, SIIT, 6to4, Teredo).
 * Refused unless allowPrivate: loopback, private (RFC 1918, CGNAT 100.64/10, unique-local fc00::/7,
 * old site-local fec0::/10) and link-local (169.254/16, fe80::/10). IPv4-mapped IPv6 (::ffff:a.b.c.d)
 * is judged as the IPv4 address it maps.
 */

export type AddressClass =
  'public' | 'loopback' | 'private' | 'link-local' | 'metadata' | 'unspecified' | 'multicast' | 'reserved';

export interface AddressPolicy {
  /** Loopback, private and link-local addresses may be reached (FEED_ALLOW_PRIVATE). Metadata never. */
  allowPrivate: boolean;
  /** Ports a URL may name; 'any' for every port. */
  allowedPorts: readonly number[] | 'any';
}

export interface Refusal {
  reason: 'scheme' | 'credentials' | 'port' | 'address' | 'metadata';
  /** Safe to show to staff and store: it names the rule, never what lies behind the address. */
  message: string;
}

/** Host names of cloud instance-metadata services (compared after lower-casing and dropping a final dot). */
export const METADATA_HOST_NAMES: ReadonlySet<string> = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'metadata.azure.com',
  'metadata.tencentyun.com',
  'instance-data',
  'instance-data.ec2.internal',
]);

/** Instance-metadata and credential endpoints: AWS (IMDS v4/v6, ECS, EKS pod identity), GCP/Azure/OCI, Alibaba. */
const METADATA_ADDRESSES: ReadonlySet<string> = new Set(
  ['169.254.169.254', '169.254.170.2', '169.254.170.23', '100.100.100.200', 'fd00:ec2::254', 'fd00:ec2::23'].map((a) =>
    key(parseIp(a)!),
  ),
);

export interface ParsedIp {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/**
 * Parses a canonical IPv4 dotted quad or an IPv6 address (brackets and a %zone are dropped).
 * Legacy IPv4 forms (127.1, 0x7f.1, 2130706433) are not accepted here: `new URL()` has already
 * turned them into dotted quads for http(s) URLs, and anything else is a name for the resolver.
 */
export function parseIp(text: string): ParsedIp | null {
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  if (isIPv4(t)) return { family: 4, bytes: Uint8Array.from(t.split('.').map(Number)) };
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  if (!isIPv6(t)) return null;
  const words: number[] = [];
  const toWords = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = piece.split('.').map(Number);
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(parseInt(piece, 16));
    }
    return out;
  };
  const gap = t.indexOf('::');
  if (gap >= 0) {
    const head = toWords(t.slice(0, gap));
    const tail = toWords(t.slice(gap + 2));
    words.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  } else words.push(...toWords(t));
  if (words.length !== 8) return null;
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[i * 2] = w >> 8;
    bytes[i * 2 + 1] = w & 0xff;
  });
  return { family: 6, bytes };
}

function key(ip: ParsedIp): string {
  return Buffer.from(ip.bytes).toString('hex');
}

/** True when the first `bits` bits of `bytes` equal those of `prefix`. */
function within(bytes: Uint8Array, prefix: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i += 8) {
    const take = Math.min(8, bits - i);
    const mask = (0xff << (8 - take)) & 0xff;
    if ((bytes[i / 8] & mask) !== ((prefix[i / 8] ?? 0) & mask)) return false;
  }
  return true;
}

const V4_RANGES: readonly [readonly number[], number, AddressClass][] = [
  [[0], 8, 'unspecified'], // "this network"; 0.0.0.0 reaches the local host on Linux
  [[10], 8, 'private'],
  [[100, 64], 10, 'private'], // carrier-grade NAT, shared address space
  [[127], 8, 'loopback'],
  [[169, 254], 16, 'link-local'],
  [[172, 16], 12, 'private'],
  [[192, 0, 0], 24, 'reserved'], // IETF protocol assignments
  [[192, 0, 2], 24, 'reserved'], // TEST-NET-1
  [[192, 88, 99], 24, 'reserved'], // 6to4 relay anycast
  [[192, 168], 16, 'private'],
  [[198, 18], 15, 'reserved'], // benchmarking
  [[198, 51, 100], 24, 'reserved'], // TEST-NET-2
  [[203, 0, 113], 24, 'reserved'], // TEST-NET-3
  [[224], 4, 'multicast'],
  [[255, 255, 255, 255], 32, 'reserved'], // limited broadcast (before 240/4 for clarity)
  [[240], 4, 'reserved'],
];

function classifyV4(bytes: Uint8Array): AddressClass {
  if (METADATA_ADDRESSES.has(key({ family: 4, bytes }))) return 'metadata';
  for (const [prefix, bits, cls] of V4_RANGES) if (within(bytes, prefix, bits)) return cls;
  return 'public';
}

/** An IPv4 address carried inside an IPv6 one: public only if the IPv4 address is. */
function embedded(...v4s: Uint8Array[]): AddressClass {
  return v4s.every((b) => classifyV4(b) === 'public') ? 'public' : 'reserved';
}

function classifyV6(b: Uint8Array): AddressClass {
  const ip: ParsedIp = { family: 6, bytes: b };
  if (METADATA_ADDRESSES.has(key(ip))) return 'metadata';
  const zeros = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  if (zeros(0, 16)) return 'unspecified';
  if (zeros(0, 15) && b[15] === 1) return 'loopback';
  // ::ffff:a.b.c.d, IPv4-mapped: the socket really talks IPv4 to a.b.c.d.
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return classifyV4(b.subarray(12));
  // ::a.b.c.d, IPv4-compatible (deprecated): never legitimate.
  if (zeros(0, 12)) return 'reserved';
  // 64:ff9b::/96 NAT64 and ::ffff:0:a.b.c.d SIIT: a translator forwards to the embedded IPv4 address.
  if (within(b, [0x00, 0x64, 0xff, 0x9b], 32) && zeros(4, 12)) return embedded(b.subarray(12));
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && zeros(10, 12)) return embedded(b.subarray(12));
  if (within(b, [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01], 48)) return 'reserved'; // local-use NAT64
  if (within(b, [0x20, 0x02], 16)) return embedded(b.subarray(2, 6)); // 6to4
  if (within(b, [0x20, 0x01, 0x00, 0x00], 32)) {
    // Teredo: server address in clear, client address inverted.
    return embedded(
      b.subarray(4, 8),
      Uint8Array.from(b.subarray(12, 16), (x) => ~x & 0xff),
    );
  }
  if (within(b, [0x20, 0x01, 0x0d, 0xb8], 32)) return 'reserved'; // documentation
  if (within(b, [0x3f, 0xff], 20)) return 'reserved'; // documentation (RFC 9637)
  if (within(b, [0x20, 0x01], 23)) return 'reserved'; // IETF protocol assignments, ORCHID, benchmarking
  if (within(b, [0xfc], 7)) return 'private'; // unique-local
  if (within(b, [0xfe, 0x80], 10)) return 'link-local';
  if (within(b, [0xfe, 0xc0], 10)) return 'private'; // site-local (deprecated)
  if (within(b, [0xff], 8)) return 'multicast';
  if (within(b, [0x20], 3)) return 'public'; // global unicast
  return 'reserved'; // not allocated as unicast (includes 100::/64 discard)
}

/** The class of an IP address (text, as from the resolver); null when it is not an IP address. */
export function classifyAddress(text: string): AddressClass | null {
  const ip = parseIp(text);
  if (!ip) return null;
  return ip.family === 4 ? classifyV4(ip.bytes) : classifyV6(ip.bytes);
}

const NOT_ALLOWED = 'the feed address is not allowed';

/** Null when the policy lets a connection go to this IP address; otherwise why not. */
export function checkAddress(text: string, policy: AddressPolicy): Refusal | null {
  const cls = classifyAddress(text);
  if (cls === 'public') return null;
  if (cls === 'metadata') return { reason: 'metadata', message: `${NOT_ALLOWED} (cloud metadata service)` };
  if (policy.allowPrivate && (cls === 'loopback' || cls === 'private' || cls === 'link-local')) return null;
  return { reason: 'address', message: `${NOT_ALLOWED} (private or reserved network)` };
}

/** A URL's host as the resolver and the socket will see it: lower case, no brackets, no final dot. */
export function normaliseHost(hostname: string): string {
  let h = hostname.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.replace(/\.+$/, '');
}

export function defaultPort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/**
 * Everything that can be judged from the URL alone: scheme, credentials, port, metadata host
 * names and IP-literal hosts. Host names are judged again on each address they resolve to.
 */
export function checkUrl(url: URL, policy: AddressPolicy): Refusal | null {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { reason: 'scheme', message: `${NOT_ALLOWED} (only http and https)` };
  }
  if (url.username || url.password) {
    return { reason: 'credentials', message: `${NOT_ALLOWED} (it must not carry a user name or password)` };
  }
  const port = defaultPort(url);
  if (policy.allowedPorts !== 'any' && !policy.allowedPorts.includes(port)) {
    return { reason: 'port', message: `${NOT_ALLOWED} (port ${port}; allowed: ${policy.allowedPorts.join(', ')})` };
  }
  const host = normaliseHost(url.hostname);
  if (METADATA_HOST_NAMES.has(host)) return { reason: 'metadata', message: `${NOT_ALLOWED} (cloud metadata service)` };
  if (parseIp(host)) return checkAddress(host, policy);
  return null;
}

/**
 * A socket `lookup` that hands back only the addresses already checked for `host` (nothing is
 * resolved a second time, so a DNS answer cannot change between the check and the connect).
 */
export function pinnedLookup(host: string, pinned: LookupAddress[]): NonNullable<RequestOptions['lookup']> {
  return (hostname, lookupOpts, callback) => {
    if (normaliseHost(hostname) !== host) {
      callback(new Error('unexpected host'), '', 4);
      return;
    }
    const matching = lookupOpts.family ? pinned.filter((a) => a.family === lookupOpts.family) : pinned;
    if (matching.length === 0) callback(new Error('no address'), '', 4);
    // Node's typings cover only the single-address form; with `all` it expects the list.
    else if (lookupOpts.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, matching);
    else callback(null, matching[0].address, matching[0].family);
  };
}
