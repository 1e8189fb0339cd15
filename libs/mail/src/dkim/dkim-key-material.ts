import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { seal, unseal } from '#core/sealed.js';

/** What the CLI and the console reject: a domain or selector that is not plain DNS label syntax. */
export class DkimInputError extends Error {}

/** One DNS label: letters, digits and inner hyphens, 1 to 63 characters. */
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * A From domain as DKIM's `d=` and the DNS name take it: lower-cased ASCII (an IDN in its `xn--`
 * form), at least two labels, no trailing dot, at most 253 characters. Anything else (CR/LF,
 * spaces, `@`, underscores) is refused with a message naming the problem.
 */
export function dkimDomain(input: string): string {
  const domain = input.trim().toLowerCase();
  if (domain === '' || domain.length > 253) throw new DkimInputError('the domain must be 1 to 253 characters');
  const labels = domain.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l)))
    throw new DkimInputError(
      `"${printable(input)}" is not a domain name: use labels of letters, digits and hyphens separated by dots (e.g. mail.example.com)`,
    );
  return domain;
}

/** A selector: one or more DNS labels (RFC 6376 3.1), lower-cased. */
export function dkimSelector(input: string): string {
  const selector = input.trim().toLowerCase();
  if (selector === '' || selector.length > 63 || !selector.split('.').every((l) => LABEL.test(l)))
    throw new DkimInputError(
      `"${printable(input)}" is not a selector: use letters, digits and hyphens (at most 63 characters, e.g. mr202612)`,
    );
  return selector;
}

/** The input as it can be echoed in a message: no control characters, at most 80 characters. */
function printable(input: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is replaced
  return input.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 80);
}

/** The default selector: `mr` + year and month, so a rotation a month later gets a new name. */
export function defaultSelector(now = new Date()): string {
  return `mr${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** A new RSA-2048 key: the private key as PKCS#8 PEM, the public key as base64 DER (SPKI), DNS's `p=`. */
export function generateDkimKeyPair(): { privateKeyPem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKey: publicKey.toString('base64') };
}

/** The label of the APP_SECRET-derived key that seals DKIM private keys (see `seal`). */
const SEAL_LABEL = 'mailroom dkim private key v1';

/** The private key sealed for storage, the domain and selector bound in. */
export function sealPrivateKey(appSecret: string, domain: string, selector: string, pem: string): Buffer {
  return seal(appSecret, SEAL_LABEL, pem, `${domain}/${selector}`);
}

/** The private key back from `sealPrivateKey`'s bytes; throws when APP_SECRET differs or the row was altered. */
export function openPrivateKey(appSecret: string, domain: string, selector: string, sealed: Buffer): KeyObject {
  return createPrivateKey(unseal(appSecret, SEAL_LABEL, sealed, `${domain}/${selector}`));
}

/** The DNS TXT record of a key: its name and its value in strings of at most 255 characters, as DNS needs. */
export interface DkimDnsRecord {
  name: string;
  /** `v=DKIM1; k=rsa; p=…` whole. */
  value: string;
  /** The value cut into character-strings of at most 255 characters. */
  strings: string[];
  /** As a zone file line takes it: `name. IN TXT ( "…" "…" )`. */
  zoneLine: string;
}

export function dkimDnsRecord(domain: string, selector: string, publicKey: string): DkimDnsRecord {
  const name = `${selector}._domainkey.${domain}`;
  const value = `v=DKIM1; k=rsa; p=${publicKey}`;
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += 255) strings.push(value.slice(i, i + 255));
  const zoneLine = `${name}. IN TXT ( ${strings.map((s) => `"${s}"`).join(' ')} )`;
  return { name, value, strings, zoneLine };
}
