import { domainToASCII } from 'node:url';

/** Local part without quotes, spaces or anything a header parser could read twice. */
const LOCAL_RE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const LABEL_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export type EmailCheck = { ok: true; email: string } | { ok: false; reason: string };

/**
 * Validates and normalises an address: trimmed, lower-cased, IDN domain in ASCII (punycode).
 * Refuses quoted local parts, CR/LF, display names and lists: exactly one recipient, always.
 */
export function normalizeEmail(input: unknown): EmailCheck {
  if (typeof input !== 'string') return { ok: false, reason: 'email must be a string' };
  if (/[\r\n\0]/.test(input)) return { ok: false, reason: 'email must not contain line breaks' };
  const trimmed = input.trim();
  if (trimmed.length === 0) return { ok: false, reason: 'email is required' };
  if (trimmed.length > 254) return { ok: false, reason: 'email must be at most 254 characters' };
  const at = trimmed.lastIndexOf('@');
  if (at <= 0 || at === trimmed.length - 1) return { ok: false, reason: 'email must be a valid email address' };
  const local = trimmed.slice(0, at);
  const domainRaw = trimmed.slice(at + 1);
  if (local.length > 64 || !LOCAL_RE.test(local)) return { ok: false, reason: 'email must be a valid email address' };
  const domain = domainToASCII(domainRaw.toLowerCase());
  if (!domain || domain.length > 253) return { ok: false, reason: 'email must be a valid email address' };
  const labels = domain.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL_RE.test(l)) || /^[0-9]+$/.test(labels[labels.length - 1])) {
    return { ok: false, reason: 'email must be a valid email address' };
  }
  const email = `${local.toLowerCase()}@${domain}`;
  if (email.length > 254) return { ok: false, reason: 'email must be at most 254 characters' };
  return { ok: true, email };
}
