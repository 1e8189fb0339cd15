import type { KeyObject } from 'node:crypto';
import { domainToASCII } from 'node:url';
import type { DKIMSignOptions } from 'nodemailer/lib/dkim/index.js';
import sign from 'nodemailer/lib/dkim/sign.js';
import { RelaxedBodyHash } from './relaxed-body-hash.js';

/** A domain's active key, ready to sign with (the private key parsed once). */
export interface DkimSigningKey {
  domain: string;
  selector: string;
  privateKey: KeyObject;
}

/**
 * The header fields every signature covers where the message has them (RFC 6376 `h=`): the
 * identity and MIME structure of the mail, and the list headers, so that RFC 8058 one-click
 * unsubscribe is honoured (it asks for List-Unsubscribe and List-Unsubscribe-Post to be signed).
 */
export const DKIM_SIGNED_FIELDS =
  'From:To:Subject:Date:Message-ID:MIME-Version:Content-Type:List-Id:List-Unsubscribe:List-Unsubscribe-Post';

/** One header field as nodemailer's DKIM code takes it: lower-case name, the whole (folded) line. */
export interface HeaderLine {
  key: string;
  line: string;
}

/** Header fields of a header block (`Name: value` lines, continuations folded in), in order. */
export function headerLines(block: string): HeaderLine[] {
  return block
    .split(/\r?\n(?![ \t])/)
    .filter((line) => line.includes(':'))
    .map((line) => ({ key: line.slice(0, line.indexOf(':')).trim().toLowerCase(), line }));
}

/** The domain of an address, in the form DKIM keys are stored under (lower case, IDNs as `xn--`). */
export function addressDomain(address: string): string {
  const domain = address.slice(address.lastIndexOf('@') + 1).trim();
  return domainToASCII(domain) || domain.toLowerCase();
}

/**
 * The `DKIM-Signature` field (with its CRLF) for a message with these header fields and body
 * hash: relaxed/relaxed, rsa-sha256, `h=` the fields of `DKIM_SIGNED_FIELDS` the message has.
 */
export function dkimSignatureField(key: DkimSigningKey, headers: HeaderLine[], bodyHash: string): string {
  const field = sign(headers, 'sha256', bodyHash, {
    domainName: key.domain,
    keySelector: key.selector,
    privateKey: key.privateKey,
    headerFieldNames: DKIM_SIGNED_FIELDS,
  });
  if (field === false) throw new Error(`DKIM: the key ${key.selector}._domainkey.${key.domain} could not sign`);
  return `${field}\r\n`;
}

/**
 * A whole message (header block, blank line, body) signed: its bytes with a `DKIM-Signature`
 * field in front. For messages built in one piece (test copies, the digest's MailComposer
 * fallback); the digest's spliced fast path signs as it builds (`BulkMessageTemplate`).
 */
export function signRawMessage(key: DkimSigningKey, raw: Buffer): Buffer {
  const end = raw.indexOf('\r\n\r\n');
  const headerEnd = end < 0 ? raw.length : end;
  const body = new RelaxedBodyHash();
  if (end >= 0) body.update(raw.subarray(end + 4));
  const field = dkimSignatureField(key, headerLines(raw.toString('latin1', 0, headerEnd)), body.digest());
  return Buffer.concat([Buffer.from(field, 'latin1'), raw]);
}

/** nodemailer's per-message `dkim` option for a key: the transporter signs lifecycle mail with it. */
export function nodemailerDkim(key: DkimSigningKey): DKIMSignOptions {
  return {
    domainName: key.domain,
    keySelector: key.selector,
    privateKey: key.privateKey,
    headerFieldNames: DKIM_SIGNED_FIELDS,
  };
}
