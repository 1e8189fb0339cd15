import * as mimeFuncs from 'nodemailer/lib/mime-funcs/index.js';
import { headerValue } from './mail-renderer.service.js';

/** Newsletter mail's list headers (RFC 2919, RFC 2369, RFC 8058), prepared as they go on the wire. */

/** RFC 2919 `List-ID: "phrase" <id>`, quoted or encoded as nodemailer's own `list` option does it. */
export function listIdValue(name: string, id: string): string {
  const phrase = headerValue(name).replace(/\x7f/g, ' ');
  const quoted = mimeFuncs.isPlainText(phrase) ? mimeFuncs.quoteString(phrase) : mimeFuncs.encodeWord(phrase);
  return `${quoted} <${id}>`;
}

/**
 * RFC 2369 + RFC 8058: the one-click https URL alone. No mailto: nothing reads that mailbox and it
 * carries no token, so a client that used it would unsubscribe nobody. The URL is checked for CR/LF.
 */
export function listUnsubscribeValue(url: string): string {
  return headerValue(`<${url}>`);
}

/** List-Unsubscribe and List-Unsubscribe-Post, prepared as they are (the URL is URL-safe). */
export function listUnsubscribeHeaders(url: string): Record<string, { prepared: true; value: string }> {
  return {
    'List-Unsubscribe': { prepared: true, value: listUnsubscribeValue(url) },
    'List-Unsubscribe-Post': { prepared: true, value: 'List-Unsubscribe=One-Click' },
  };
}
