import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

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

// Secrets at rest: AES-256-GCM under a key derived from APP_SECRET (HKDF, its own label), so the
// database alone does not reveal them. Rotating APP_SECRET makes the stored secrets unreadable:
// rotate each endpoint's secret afterwards (docs/webhooks-out.md).
const SEALED_RE = /^v1:([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

function sealingKey(appSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', appSecret, 'mailroom', 'webhook endpoint secrets v1', 32));
}

export function sealSecret(appSecret: string, secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(appSecret), iv);
  const ct = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return `v1:${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
}

/** The secret, or an error when it was sealed under another APP_SECRET (or tampered with). */
export function openSecret(appSecret: string, sealed: string): string {
  const m = SEALED_RE.exec(sealed);
  if (!m) throw new Error('the stored webhook secret is not in a known format');
  const decipher = createDecipheriv('aes-256-gcm', sealingKey(appSecret), Buffer.from(m[1], 'base64'));
  decipher.setAuthTag(Buffer.from(m[2], 'base64'));
  try {
    return Buffer.concat([decipher.update(Buffer.from(m[3], 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new Error('the stored webhook secret cannot be read with this APP_SECRET (rotate the secret)');
  }
}
