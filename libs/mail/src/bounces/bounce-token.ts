import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * What a VERP address names: the kind of mail and, for digests and test copies, the digest; and
 * the reader it went to (none for a test copy, which goes to any address outside the list).
 */
export type BounceRef =
  | { kind: 'digest'; digestId: string; subscriberId: string }
  | { kind: 'confirmation'; subscriberId: string }
  | { kind: 'guide'; subscriberId: string }
  | { kind: 'test'; digestId: string };

const KIND_CODES = { digest: 'd', confirmation: 'c', guide: 'g', test: 't' } as const;
const CODE_KINDS: Record<string, BounceRef['kind']> = { d: 'digest', c: 'confirmation', g: 'guide', t: 'test' };

/** RFC 4648 base32, lower case: the token must survive relays that change a local part's case. */
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** 80 bits of HMAC: 16 base32 characters. An online guess costs an SMTP session each. */
const MAC_BYTES = 10;
const ID = /^(0|[1-9][0-9]{0,18})$/;
// `<kind><ref>-<reader>-<mac>`: ids in base36, so the whole local part stays far under 64 octets.
const TOKEN = /^([dcgt])([0-9a-z]{0,13})-([0-9a-z]{1,13})-([a-z2-7]{16})$/;

function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** The key of the bounce tokens, derived from APP_SECRET for this purpose only. */
export function bounceKey(appSecret: string): Buffer {
  return createHmac('sha256', appSecret).update('mailroom:verp-bounce-token:v1').digest();
}

function mac(key: Buffer, body: string): Buffer {
  return createHmac('sha256', key).update(body).digest().subarray(0, MAC_BYTES);
}

const toBase36 = (id: string): string => BigInt(id).toString(36);

function fromBase36(s: string): string | null {
  let n = 0n;
  for (const ch of s) n = n * 36n + BigInt(parseInt(ch, 36));
  const id = n.toString();
  // Canonical spelling only (no leading zeros), and a PostgreSQL bigint.
  return toBase36(id) === s && n <= 9_223_372_036_854_775_807n ? id : null;
}

function refParts(ref: BounceRef): [string, string, string] {
  switch (ref.kind) {
    case 'digest':
      return ['d', ref.digestId, ref.subscriberId];
    case 'test':
      return ['t', ref.digestId, '0'];
    default:
      return [KIND_CODES[ref.kind], '', ref.subscriberId];
  }
}

/** The signed token of a VERP address: `d1a-2s-<mac>` names digest 46's mail to reader 100. */
export function mintBounceToken(key: Buffer, ref: BounceRef): string {
  const [code, about, reader] = refParts(ref);
  for (const id of [about, reader]) if (id !== '' && !ID.test(id)) throw new Error(`Not an id: ${id}`);
  const body = `${code}${about === '' ? '' : toBase36(about)}-${toBase36(reader)}`;
  return `${body}-${base32(mac(key, body))}`;
}

/** What a token names, or null when it is malformed, unsigned, tampered with or signed with another key. */
export function readBounceToken(key: Buffer, token: string): BounceRef | null {
  const m = TOKEN.exec(token.toLowerCase());
  if (!m) return null;
  const [, code, aboutRaw, readerRaw, sig] = m;
  const expected = base32(mac(key, `${code}${aboutRaw}-${readerRaw}`));
  if (!timingSafeEqual(Buffer.from(sig), Buffer.from(expected))) return null;
  const reader = fromBase36(readerRaw);
  const about = aboutRaw === '' ? null : fromBase36(aboutRaw);
  if (reader === null || (aboutRaw !== '' && about === null)) return null;
  const kind = CODE_KINDS[code];
  if (kind === 'digest' && about !== null && reader !== '0') return { kind, digestId: about, subscriberId: reader };
  if (kind === 'test' && about !== null && reader === '0') return { kind, digestId: about };
  if ((kind === 'confirmation' || kind === 'guide') && about === null && reader !== '0')
    return { kind, subscriberId: reader };
  return null;
}

/** The VERP address of one mail: `bounces+<token>@<domain>`. */
export function verpAddress(key: Buffer, domain: string, ref: BounceRef): string {
  return `bounces+${mintBounceToken(key, ref)}@${domain}`;
}

/**
 * The token of a recipient address of ours (`bounces+<token>@<domain>`, the domain in any case),
 * or null for any other address.
 */
export function tokenOfAddress(address: string, domain: string): string | null {
  const at = address.lastIndexOf('@');
  if (at < 0 || address.slice(at + 1).toLowerCase() !== domain) return null;
  const local = address.slice(0, at);
  if (!/^bounces\+/i.test(local)) return null;
  const token = local.slice('bounces+'.length);
  return token.length > 0 && token.length <= 56 ? token : null;
}

/** The envelope sender for one mail: the VERP address when BOUNCE_DOMAIN is set, else undefined (the From address). */
export function returnPathFor(
  config: { appSecret: string; bounces?: { domain: string } },
  ref: BounceRef,
): string | undefined {
  return config.bounces ? verpAddress(bounceKey(config.appSecret), config.bounces.domain, ref) : undefined;
}
