import { randomBytes, randomUUID } from 'node:crypto';
import * as mimeFuncs from 'nodemailer/lib/mime-funcs/index.js';
import MimeNode from 'nodemailer/lib/mime-node/index.js';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp/index.js';
import {
  addressDomain,
  type DkimSigningKey,
  dkimSignatureField,
  type HeaderLine,
  headerLines,
} from './dkim/dkim-signer.js';
import { CanonicalPart, RelaxedBodyHash } from './dkim/relaxed-body-hash.js';

/** A sender as nodemailer takes it: `{ name, address }` or an RFC 5322 string such as `Name <a@b>`. */
export type Sender = { name: string; address: string } | string;

export interface BulkTemplateOptions {
  from: Sender;
  /** The envelope sender (MAIL FROM): the From address. */
  fromAddress: string;
  subject: string;
  /** Headers that are the same on every message, values already prepared (no CR/LF, encoded where needed). */
  headers: Record<string, string>;
  /** Where the From domain's DKIM key is looked up, per message (a key made or retired mid-issue applies). */
  dkim?: DkimKeySource | null;
}

/** The active DKIM key of a From domain, if it has one (see `DkimKeys`). */
export interface DkimKeySource {
  keyForDomain(domain: string): DkimSigningKey | null;
}

/** What differs from one recipient to the next. */
export interface BulkParts {
  /** An ASCII address (the subscribe path normalises it so); the name is encoded as needed. */
  to: { name: string; address: string };
  /** Per-message prepared headers (List-Unsubscribe). */
  headers: Record<string, string>;
  /** The plain text: whole (sent base64), or quoted-printable parts around values (see `QpTextSplice`). */
  text: string | SplicedText;
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

/** One recipient's plain text as quoted-printable: an issue's static parts and this recipient's encoded values. */
export interface SplicedText {
  /** One more than `values`; the same Buffers for every recipient of the issue. */
  parts: readonly Buffer[];
  values: string[];
}

/** Encoded lines stop at 75 characters, leaving room for the soft break (`=`) that may follow the last one. */
const QP_LINE = 75;
/** Printable ASCII but `=`, not ending in a space: quoted-printable as it is. */
const QP_LITERAL = /^[\x20-\x3c\x3e-\x7e]*[\x21-\x3c\x3e-\x7e]$/;

function qpLines(text: string): string {
  return qpWrap(qpEncode(Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf8')), QP_LINE);
}

/** A soft line break (`=` CRLF: nothing when decoded) after `encoded`, unless it ends a line already. */
function softBreak(encoded: string): string {
  return encoded === '' || encoded.endsWith('\r\n') ? encoded : `${encoded}=\r\n`;
}

/**
 * A text/plain body in quoted-printable, encoded once per issue around its personal values. Each
 * static part and each value is encoded on lines of its own, a soft line break between them, so a
 * part's encoding does not depend on the values before it: per recipient only the few short values
 * are encoded (most are ASCII and go as they are), and no text string is built, scanned or encoded.
 * Decoded, the body is exactly the parts and values joined, with CRLF line ends.
 */
export class QpTextSplice {
  private constructor(private readonly parts: readonly Buffer[]) {}

  /** `segments`: the static text around the values, one more than there are values. */
  static of(segments: readonly string[]): QpTextSplice {
    return new QpTextSplice(
      segments.map((text, i) => {
        const encoded = qpLines(text);
        return Buffer.from(i < segments.length - 1 ? softBreak(encoded) : encoded, 'latin1');
      }),
    );
  }

  render(values: readonly string[]): SplicedText {
    // A value may appear many times (the reader's half of every tracked link): encoded once.
    const encoded = new Map<string, string>();
    return {
      parts: this.parts,
      values: values.map((v) => {
        let e = encoded.get(v);
        if (e === undefined) {
          e = softBreak(v.length <= QP_LINE && QP_LITERAL.test(v) ? v : qpLines(v));
          encoded.set(v, e);
        }
        return e;
      }),
    };
  }
}

/**
 * A message buffer that one sender (sending one message at a time) writes every message into: a
 * new Buffer per 40 kB message is memory outside V8's heap that V8 still counts towards its next
 * full collection, one every second or two at 1 500 messages a second, each of them deoptimising
 * code and costing the sender its share of the CPU. The bytes are rewritten only once the message
 * they held is done with (the server accepted it); after a failed send the buffer is dropped, as a
 * write of it may still be under way.
 */
export class MessageBuffer {
  private buf: Buffer | null = null;

  /** `length` bytes to write the next message into. */
  take(length: number): Buffer {
    // Room to spare (in 16 kB steps): a longer name or address does not mean a new buffer.
    // Shared memory: a sending thread (see `SmtpThreads`) reads the message where it was written.
    if (!this.buf || this.buf.length < length)
      this.buf = Buffer.from(new SharedArrayBuffer((Math.ceil(length / 16384) + 1) * 16384));
    return this.buf.subarray(0, length);
  }

  /** The last message may still be read: the next one gets a buffer of its own. */
  drop(): void {
    this.buf = null;
  }
}

/** The display name as nodemailer's MimeNode writes it, when that needs no encoded word (else null). */
function plainDisplayName(name: string): string | null {
  if (/^[\w ]*$/.test(name)) return name;
  if (/^[\x20-\x7e]*$/.test(name)) return mimeFuncs.quoteString(name);
  return null;
}

/**
 * A multipart/alternative message (quoted-printable or base64 text, 7-bit HTML) assembled per
 * recipient from parts built once: the shared header fields are encoded once by nodemailer's own
 * MIME code, and each message costs only its personal headers, its few personal values and one
 * write of every piece into the message's buffer (no message-sized string is built on the way),
 * instead of a MailComposer tree with its streams per recipient.
 * The result is handed to the bulk SMTP pool as raw bytes (`MailTransport.sendRaw`).
 */
export class BulkMessageTemplate {
  private readonly encoder = new MimeNode(false, { textEncoding: 'B' });
  private readonly boundary = `--_mr_${randomBytes(12).toString('hex')}`;
  private readonly head: Buffer;
  /** The head's fields, for the DKIM signature. */
  private readonly headLines: HeaderLine[];
  /** The Content-Type field (multipart/alternative); the blank line and the body follow it. */
  private readonly contentType: Buffer;
  private readonly contentTypeLines: HeaderLine[];
  private readonly textHeadBase64: Buffer;
  private readonly textHeadQp: Buffer;
  /** The same, without the blank line: where each body (as DKIM hashes it) starts. */
  private readonly bodyStartBase64: Buffer;
  private readonly bodyStartQp: Buffer;
  private readonly htmlHead: Buffer;
  private readonly end: Buffer;
  /** Static parts already checked for the boundary (they are the same for a whole issue). */
  private readonly checkedParts = new WeakSet<readonly Buffer[]>();
  private readonly domain: string;
  /** The From domain as DKIM keys are stored under. */
  private readonly signingDomain: string;
  /** Static body pieces canonicalised for the body hash, once each (they are the same for a whole issue). */
  private readonly canonical = new WeakMap<Buffer, CanonicalPart>();
  /** Per issue (its text's static parts): the body hash up to the first personal value, copied per message. */
  private readonly prefixHashes = new WeakMap<readonly Buffer[], RelaxedBodyHash>();
  private dateSecond = -1;
  private dateHeader = '';

  constructor(private readonly opts: BulkTemplateOptions) {
    this.domain = opts.fromAddress.slice(opts.fromAddress.lastIndexOf('@') + 1) || 'localhost';
    this.signingDomain = addressDomain(opts.fromAddress);
    this.head = Buffer.from(
      [
        this.field('From', opts.from),
        this.field('Subject', opts.subject),
        'MIME-Version: 1.0',
        ...Object.entries(opts.headers).map(([k, v]) => `${k}: ${v.replace(CRLF, ' ')}`),
      ].join('\r\n') + '\r\n',
      'latin1',
    );
    this.headLines = headerLines(this.head.toString('latin1'));
    this.contentType = Buffer.from(
      `Content-Type: multipart/alternative;\r\n boundary="${this.boundary}"\r\n`,
      'latin1',
    );
    this.contentTypeLines = headerLines(this.contentType.toString('latin1'));
    // From the blank line that ends the header block: the body starts two bytes in.
    const textHead = (encoding: string) =>
      Buffer.from(
        `\r\n--${this.boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n`,
        'latin1',
      );
    this.textHeadBase64 = textHead('base64');
    this.textHeadQp = textHead('quoted-printable');
    this.bodyStartBase64 = this.textHeadBase64.subarray(2);
    this.bodyStartQp = this.textHeadQp.subarray(2);
    this.htmlHead = Buffer.from(
      `\r\n--${this.boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n`,
      'latin1',
    );
    this.end = Buffer.from(`\r\n--${this.boundary}--\r\n`, 'latin1');
  }

  /** `Key: value`, encoded and folded at 76 characters as nodemailer does it. */
  private field(key: string, value: Sender | string): string {
    return mimeFuncs.foldLines(`${key}: ${this.encoder.encodeHeaderValue(key, value)}`, 76);
  }

  /** The To field: written here when the name needs no encoding and the line no folding, else by nodemailer. */
  private to(name: string, address: string): string {
    if (!name) return `To: ${address}`;
    const plain = plainDisplayName(name);
    const line = plain === null ? '' : `To: ${plain} <${address}>`;
    return line && line.length <= 76 ? line : this.field('To', { name, address });
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

  /** Parts and values as they are spliced: static parts checked once per issue, values per recipient. */
  private fits(spliced: SplicedText): boolean {
    if (!this.checkedParts.has(spliced.parts)) {
      if (spliced.parts.some((b) => b.includes(this.boundary))) return false;
      this.checkedParts.add(spliced.parts);
    }
    return !spliced.values.some((v) => NON_ASCII.test(v) || v.includes(this.boundary));
  }

  /**
   * One recipient's message, or null when the parts do not fit this fast form (HTML that is not
   * 7-bit ready, a non-ASCII address, a body that happens to carry the boundary): the caller then
   * builds it with nodemailer's MailComposer. With `into`, the bytes are written into that
   * sender's buffer instead of a new one.
   */
  build(p: BulkParts, into?: MessageBuffer): BuiltMessage | null {
    const { address } = p.to;
    if (NON_ASCII.test(address) || /[\s<>",;]/.test(address)) return null;
    const html = p.html7bit;
    if (typeof html === 'string') {
      if (NON_ASCII.test(html) || html.includes(this.boundary)) return null;
    } else if (!this.fits(html)) return null;
    const text = p.text;
    if (typeof text !== 'string' && !this.fits(text)) return null;
    const messageId = `<${randomUUID()}@${this.domain}>`;
    let personal = `${this.to(p.to.name, address)}\r\nMessage-ID: ${messageId}\r\n`;
    for (const [k, v] of Object.entries(p.headers)) personal += `${k}: ${v.replace(CRLF, ' ')}\r\n`;
    personal += this.date();

    // Every piece in order: strings are ASCII (written as latin1, one byte a character), Buffers are copied.
    const key = this.opts.dkim?.keyForDomain(this.signingDomain) ?? null;
    const pieces: (string | Buffer)[] = [this.head, personal, this.contentType];
    if (key) pieces.unshift(this.signature(key, personal, text, html));
    if (typeof text === 'string') pieces.push(this.textHeadBase64, base64Lines(text));
    else {
      pieces.push(this.textHeadQp);
      text.values.forEach((v, i) => pieces.push(text.parts[i], v));
      pieces.push(text.parts[text.values.length]);
    }
    pieces.push(this.htmlHead);
    if (typeof html === 'string') pieces.push(html);
    else {
      html.values.forEach((v, i) => pieces.push(html.parts[i], v));
      pieces.push(html.parts[html.values.length]);
    }
    pieces.push(this.end);
    let length = 0;
    for (const piece of pieces) length += piece.length;
    const raw = into ? into.take(length) : Buffer.allocUnsafe(length);
    let at = 0;
    for (const piece of pieces) at += typeof piece === 'string' ? raw.write(piece, at, 'latin1') : piece.copy(raw, at);
    return { raw, messageId, envelope: { from: this.opts.fromAddress, to: [address] } };
  }

  private canon(part: Buffer): CanonicalPart {
    let c = this.canonical.get(part);
    if (!c) {
      c = CanonicalPart.of(part);
      this.canonical.set(part, c);
    }
    return c;
  }

  /**
   * The message's `DKIM-Signature` field. The body differs per recipient (personal links all
   * through it), so its hash is per message; but the static pieces are canonicalised once per
   * issue and only hashed here, and the hash of the body up to the text's first personal value is
   * computed once per issue and copied (`Hash.copy`). Per message: the values' canonical form,
   * SHA-256 over the body, and one RSA signature.
   */
  private signature(
    key: DkimSigningKey,
    personal: string,
    text: string | SplicedText,
    html: string | { parts: readonly Buffer[]; values: string[] },
  ): string {
    let body: RelaxedBodyHash;
    if (typeof text === 'string') {
      body = new RelaxedBodyHash();
      body.updatePart(this.canon(this.bodyStartBase64));
      body.update(base64Lines(text));
    } else {
      let prefix = this.prefixHashes.get(text.parts);
      if (!prefix) {
        prefix = new RelaxedBodyHash();
        prefix.updatePart(this.canon(this.bodyStartQp));
        prefix.updatePart(this.canon(text.parts[0] as Buffer));
        this.prefixHashes.set(text.parts, prefix);
      }
      body = prefix.copy();
      text.values.forEach((v, i) => {
        body.update(v);
        body.updatePart(this.canon(text.parts[i + 1] as Buffer));
      });
    }
    body.updatePart(this.canon(this.htmlHead));
    if (typeof html === 'string') body.update(html);
    else {
      body.updatePart(this.canon(html.parts[0] as Buffer));
      html.values.forEach((v, i) => {
        body.update(v);
        body.updatePart(this.canon(html.parts[i + 1] as Buffer));
      });
    }
    body.updatePart(this.canon(this.end));
    const lines = [...this.headLines, ...headerLines(personal), ...this.contentTypeLines];
    return dkimSignatureField(key, lines, body.digest());
  }
}
