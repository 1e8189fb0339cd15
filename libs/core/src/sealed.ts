import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Secrets at rest (DKIM private keys, webhook endpoint secrets): AES-256-GCM under a key derived
 * from APP_SECRET by HKDF-SHA256 with a label per use, so the database alone does not reveal them
 * and one use's key opens nothing of another's. Sealed bytes: 12-byte IV, 16-byte tag, ciphertext.
 */
function sealingKey(appSecret: string, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', appSecret, 'mailroom', label, 32));
}

/** `plaintext` sealed under `label`; `aad` (e.g. the row's identity) is bound in without being stored. */
export function seal(appSecret: string, label: string, plaintext: string, aad?: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(appSecret, label), iv);
  if (aad !== undefined) cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** The plaintext back from `seal`; throws when APP_SECRET, the label or `aad` differ, or the bytes were altered. */
export function unseal(appSecret: string, label: string, sealed: Buffer, aad?: string): string {
  const decipher = createDecipheriv('aes-256-gcm', sealingKey(appSecret, label), sealed.subarray(0, 12));
  if (aad !== undefined) decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(12, 28));
  return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString('utf8');
}
