import { randomBytes, randomUUID } from 'node:crypto';
import * as mimeFuncs from 'nodemailer/lib/mime-funcs/index.js';
import MimeNode from 'nodemailer/lib/mime-node/index.js';

/** A sender as nodemailer takes it: `{ name, address }` or an RFC 5322 string such as `Name <a@b>`. */
export type Sender = { name: string; address: string } | string;

export interface BulkTemplateOptions {
  from: Sender;
  /** The envelope sender (MAIL FROM): the From address. */
  fromAddress: string;
  subject: string;
  /** Headers that are the same on every message, values already prepared (no CR/LF, encoded where needed). */
  headers: Record<string, string>;
}

/** What differs from one recipient to the next. */
export interface BulkParts {
  /** An ASCII address (the subscribe path normalises it so); the name is encoded as needed. */
  to: { name: string; address: string };
  /** Per-message prepared headers (List-Unsubscribe). */
  headers: Record<string, string>;
  text: string;
  /**
   * The HTML in 7-bit wire form (ASCII only, CRLF line ends, no line over 998 characters): whole,
   * or as static parts shared by every message (`parts`, one more than `values`) with this
   * recipient's values between them.
   */
  html7bit: string | { parts: readonly Buffer[]; values: string[] };
}

export interface BuiltMessage {
  raw: Buffer;
  messageId: string;
  envelope: { from: string; to: string[] };
}

const NON_ASCII = /\P{ASCII}/u;
const CRLF = /[\r\n]+/g;

/** base64 in lines of 76 characters, as nodemailer writes a base64 body. */
function base64Lines(text: string): string {
  const b64 = Buffer.from(text, 'utf8').toString('base64');
  if (b64.length <= 76) return b64;
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join('\r\n');
}

/**
 * A multipart/alternative message (base64 text, 7-bit HTML) assembled per recipient from parts
 * built once: the shared header fields are encoded once by nodemailer's own MIME code, and each
 * message costs only its personal headers, a base64 pass over the text and one buffer copy,
 * instead of a MailComposer tree with its streams per recipient.
 * The result is handed to the SMTP pool as raw bytes, as `MailTransport.sendBuilt` does.
 */
export class BulkMessageTemplate {
  private readonly encoder = new MimeNode(false, { textEncoding: 'B' });
  private readonly boundary = `--_mr_${randomBytes(12).toString('hex')}`;
  private readonly head: string;
  private readonly textHead: string;
  private readonly htmlHead: string;
  private readonly end: string;
  private readonly endBuffer: Buffer;
  /** Static HTML parts already checked for the boundary (they are the same for a whole issue). */
  private readonly checkedParts = new WeakSet<readonly Buffer[]>();
  private readonly domain: string;
  private dateSecond = -1;
  private dateHeader = '';

  constructor(private readonly opts: BulkTemplateOptions) {
    this.domain = opts.fromAddress.slice(opts.fromAddress.lastIndexOf('@') + 1) || 'localhost';
    this.head =
      [
        this.field('From', opts.from),
        this.field('Subject', opts.subject),
        'MIME-Version: 1.0',
        ...Object.entries(opts.headers).map(([k, v]) => `${k}: ${v.replace(CRLF, ' ')}`),
      ].join('\r\n') + '\r\n';
    this.textHead =
      `Content-Type: multipart/alternative;\r\n boundary="${this.boundary}"\r\n\r\n` +
      `--${this.boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
    this.htmlHead = `\r\n--${this.boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n`;
    this.end = `\r\n--${this.boundary}--\r\n`;
    this.endBuffer = Buffer.from(this.end, 'latin1');
  }

  /** `Key: value`, encoded and folded at 76 characters as nodemailer does it. */
  private field(key: string, value: Sender | string): string {
    return mimeFuncs.foldLines(`${key}: ${this.encoder.encodeHeaderValue(key, value)}`, 76);
  }

  private date(): string {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== this.dateSecond) {
      this.dateSecond = second;
      this.dateHeader = `Date: ${new Date(second * 1000).toUTCString().replace(/GMT/, '+0000')}\r\n`;
    }
    return this.dateHeader;
  }

  /**
   * One recipient's message, or null when the parts do not fit this fast form (HTML that is not
   * 7-bit ready, a non-ASCII address, a body that happens to carry the boundary): the caller then
   * builds it with nodemailer's MailComposer.
   */
  build(p: BulkParts): BuiltMessage | null {
    const { address } = p.to;
    if (NON_ASCII.test(address) || /[\s<>",;]/.test(address)) return null;
    const html = p.html7bit;
    if (typeof html === 'string') {
      if (NON_ASCII.test(html) || html.includes(this.boundary)) return null;
    } else {
      if (!this.checkedParts.has(html.parts)) {
        if (html.parts.some((b) => b.includes(this.boundary))) return null;
        this.checkedParts.add(html.parts);
      }
      if (html.values.some((v) => NON_ASCII.test(v) || v.includes(this.boundary))) return null;
    }
    const messageId = `<${randomUUID()}@${this.domain}>`;
    let personal = p.to.name ? this.field('To', { name: p.to.name, address }) : `To: ${address}`;
    personal += `\r\nMessage-ID: ${messageId}\r\n`;
    for (const [k, v] of Object.entries(p.headers)) personal += `${k}: ${v.replace(CRLF, ' ')}\r\n`;
    const head = this.head + personal + this.date() + this.textHead + base64Lines(p.text) + this.htmlHead;
    let raw: Buffer;
    if (typeof html === 'string') raw = Buffer.from(head + html + this.end, 'latin1');
    else {
      const chunks: Buffer[] = [Buffer.from(head, 'latin1')];
      html.values.forEach((v, i) => chunks.push(html.parts[i], Buffer.from(v, 'latin1')));
      chunks.push(html.parts[html.values.length], this.endBuffer);
      raw = Buffer.concat(chunks);
    }
    return { raw, messageId, envelope: { from: this.opts.fromAddress, to: [address] } };
  }
}
