import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Tracked links (`/c/:token`). A token names a digest, one of its articles and a reader:
 * `<digest>.<article>.<mac>.<reader>.<mac>`. The first half is signed once per issue and article
 * (it sits in the issue's template), the second once per reader and digest (one personal value,
 * the same in every link of a mail): one HMAC per recipient however many links the mail has.
 * Both MACs name the digest, so halves of two digests' tokens do not combine. Reader 0 is nobody
 * (previews, test copies): the link works and no click is recorded. The redirect target is the
 * article the token names, never anything taken from the request.
 */
const MAC_BYTES = 12;
const ID = '[1-9][0-9]{0,17}';
const MAC = `[A-Za-z0-9_-]{${(MAC_BYTES * 4) / 3}}`;
const TOKEN_RE = new RegExp(`^(${ID})\\.(${ID})\\.(${MAC})\\.(0|${ID})\\.(${MAC})$`);

/** The key of click tokens, derived from APP_SECRET (no other token is signed with it). */
export function clickKey(appSecret: string): Buffer {
  return createHmac('sha256', appSecret).update('mailroom click links v1').digest();
}

function mac(key: Buffer, what: string): string {
  return createHmac('sha256', key).update(what).digest().subarray(0, MAC_BYTES).toString('base64url');
}

/** The issue's half of an article's tracked link: `<digest>.<article>.<mac>`. */
export function articlePart(key: Buffer, digestId: string, articleId: string): string {
  return `${digestId}.${articleId}.${mac(key, `article:${digestId}:${articleId}`)}`;
}

/** The reader's half, the same in every tracked link of their mail: `<subscriber>.<mac>` (0: nobody). */
export function readerPart(key: Buffer, digestId: string, subscriberId: string): string {
  return `${subscriberId}.${mac(key, `reader:${digestId}:${subscriberId}`)}`;
}

export interface ClickToken {
  digestId: string;
  articleId: string;
  /** null: a preview's or test copy's link (reader 0). */
  subscriberId: string | null;
}

function same(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** The token's digest, article and reader, or null when it is malformed or either MAC is wrong. */
export function verifyClickToken(key: Buffer, token: string): ClickToken | null {
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const [, digestId, articleId, articleMac, subscriberId, readerMac] = m;
  // 16 base64url characters carry exactly 96 bits: each MAC has one spelling.
  if (!same(articleMac, mac(key, `article:${digestId}:${articleId}`))) return null;
  if (!same(readerMac, mac(key, `reader:${digestId}:${subscriberId}`))) return null;
  return { digestId, articleId, subscriberId: subscriberId === '0' ? null : subscriberId };
}
