import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A fresh confirmation token: 256 random bits for the link, only its SHA-256 for the database. */
export function newRandomToken(): { raw: string; hash: Buffer } {
  const raw = randomBytes(32).toString('base64url');
  return { raw, hash: hashToken(raw) };
}

export function hashToken(raw: string): Buffer {
  return createHash('sha256').update(raw, 'utf8').digest();
}

export type SignedPurpose = 'unsubscribe' | 'guide';

// Canonical forms only: no leading zeros, so each token has exactly one spelling.
const SIGNED_RE = /^([1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,11})\.([A-Za-z0-9_-]{22})$/;

function mac(secret: string, purpose: SignedPurpose, id: string, exp: number): Buffer {
  // 128-bit truncated HMAC-SHA256; the purpose is inside the MAC, so a token serves one purpose only.
  return createHmac('sha256', secret).update(`${purpose}:${id}:${exp}`).digest().subarray(0, 16);
}

/**
 * A stateless signed token for links that live in every mail (unsubscribe) or expire (guide):
 * `<id>.<expiry epoch seconds, 0 = none>.<mac>`. Nothing usable is stored anywhere.
 */
export function signToken(secret: string, purpose: SignedPurpose, id: string, expiresAt?: Date): string {
  const exp = expiresAt ? Math.floor(expiresAt.getTime() / 1000) : 0;
  return `${id}.${exp}.${mac(secret, purpose, id, exp).toString('base64url')}`;
}

export type VerifyResult = { ok: true; id: string } | { ok: false; reason: 'invalid' | 'expired' };

export function verifyToken(secret: string, purpose: SignedPurpose, token: string, now = new Date()): VerifyResult {
  const m = SIGNED_RE.exec(token);
  if (!m) return { ok: false, reason: 'invalid' };
  const [, id, expRaw, sig] = m;
  const exp = Number(expRaw);
  const expected = mac(secret, purpose, id, exp);
  const given = Buffer.from(sig, 'base64url');
  // 22 base64url characters carry 132 bits: refuse the 15 aliases whose spare bits differ.
  if (given.length !== expected.length || given.toString('base64url') !== sig) return { ok: false, reason: 'invalid' };
  if (!timingSafeEqual(given, expected)) return { ok: false, reason: 'invalid' };
  if (exp !== 0 && exp * 1000 < now.getTime()) return { ok: false, reason: 'expired' };
  return { ok: true, id };
}

/** Keyed hash of a normalised address, for the suppression list (kept after erasure). */
export function emailHash(secret: string, email: string): Buffer {
  return createHmac('sha256', secret).update(`suppression:${email}`).digest();
}

export function apiKeyHash(key: string): Buffer {
  return createHash('sha256').update(`api-key:${key}`).digest();
}
