import { createHmac, randomBytes } from 'node:crypto';
import { seal, unseal } from '#core/sealed.js';

/**
 * Standard Webhooks secrets and signatures (https://www.standardwebhooks.com): a secret is
 * `whsec_` + base64 of random bytes; a signature is `v1,` + base64 HMAC-SHA256 of
 * `<id>.<timestamp>.<body>` keyed with the secret's decoded bytes.
 */

const PREFIX = 'whsec_';
const SECRET_BYTES = 32;

export function newWebhookSecret(): string {
  return PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64');
}

/** The `webhook-signature` header value for one message. */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secretKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}

// Secrets at rest: sealed with an APP_SECRET-derived key (`seal`), stored as text. Rotating
// APP_SECRET makes the stored secrets unreadable: rotate each endpoint's secret afterwards
// (docs/webhooks-out.md).
const SEAL_LABEL = 'webhook endpoint secrets v1';
const SEALED_RE = /^v1:([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

export function sealSecret(appSecret: string, secret: string): string {
  const sealed = seal(appSecret, SEAL_LABEL, secret);
  const [iv, tag, ct] = [sealed.subarray(0, 12), sealed.subarray(12, 28), sealed.subarray(28)];
  return `v1:${iv.toString('base64')}:${tag.toString('base64')}:${ct.toString('base64')}`;
}

/** The secret, or an error when it was sealed under another APP_SECRET (or tampered with). */
export function openSecret(appSecret: string, sealed: string): string {
  const m = SEALED_RE.exec(sealed);
  if (!m) throw new Error('the stored webhook secret is not in a known format');
  try {
    return unseal(appSecret, SEAL_LABEL, Buffer.concat(m.slice(1, 4).map((part) => Buffer.from(part, 'base64'))));
  } catch {
    throw new Error('the stored webhook secret cannot be read with this APP_SECRET (rotate the secret)');
  }
}
