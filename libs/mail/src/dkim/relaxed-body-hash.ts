import { createHash, type Hash } from 'node:crypto';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const CRLF = Buffer.from('\r\n', 'latin1');

function isContent(c: number): boolean {
  return c !== SP && c !== TAB && c !== CR && c !== LF;
}

/**
 * A piece of a message body that many messages share, canonicalised once: the whitespace and line
 * breaks at its two edges (which canonicalise differently depending on what comes before and
 * after) are kept as they are, everything between its first and last content byte is stored in
 * relaxed form, ready to be hashed as it is.
 */
export class CanonicalPart {
  private constructor(
    readonly lead: Buffer,
    readonly middle: Buffer | null,
    readonly tail: Buffer,
  ) {}

  static of(bytes: Buffer): CanonicalPart {
    let first = 0;
    while (first < bytes.length && !isContent(bytes[first])) first += 1;
    if (first === bytes.length) return new CanonicalPart(bytes, null, Buffer.alloc(0));
    let last = bytes.length - 1;
    while (!isContent(bytes[last])) last -= 1;
    const canon = new RelaxedBodyHash();
    const out: Buffer[] = [];
    canon.sink = (b) => out.push(Buffer.from(b));
    canon.update(bytes.subarray(first, last + 1));
    return new CanonicalPart(bytes.subarray(0, first), Buffer.concat(out), bytes.subarray(last + 1));
  }
}

/**
 * The body hash of DKIM's relaxed body canonicalisation (RFC 6376 3.4.4), fed piece by piece:
 * whitespace at line ends dropped, runs of SP/HTAB within a line as one SP, empty lines at the end
 * of the body ignored, and a CRLF after the last line. Byte for byte as nodemailer's own
 * `RelaxedBody` stream (its spec checks that), but synchronous, copyable (`copy`, for the prefix
 * shared by an issue's messages) and able to take `CanonicalPart`s that were canonicalised once.
 */
export class RelaxedBodyHash {
  private lineHasContent = false;
  private pendingWsp = false;
  private pendingCr = false;
  private pendingEmptyLines = 0;
  /** Where canonical bytes go: the hash, or (for `CanonicalPart.of`) a collector. */
  sink: (bytes: Buffer) => void;

  constructor(private readonly hash: Hash = createHash('sha256')) {
    this.sink = (b) => this.hash.update(b);
  }

  /** This hash as it stands, to go on with independently (Node's `Hash.copy`). */
  copy(): RelaxedBodyHash {
    const c = new RelaxedBodyHash(this.hash.copy());
    c.lineHasContent = this.lineHasContent;
    c.pendingWsp = this.pendingWsp;
    c.pendingCr = this.pendingCr;
    c.pendingEmptyLines = this.pendingEmptyLines;
    return c;
  }

  /** What goes out before a content byte: a CR that turned out not to end a line, held-back empty lines, a space. */
  private beforeContent(out: Buffer, at: number): number {
    if (this.pendingCr) {
      this.pendingCr = false;
      at = this.beforeContent(out, at);
      out[at++] = CR;
    }
    if (!this.lineHasContent) {
      if (this.pendingEmptyLines > 0) {
        this.sink(out.subarray(0, at));
        at = 0;
        for (; this.pendingEmptyLines > 0; this.pendingEmptyLines -= 1) this.sink(CRLF);
      }
      this.lineHasContent = true;
    }
    if (this.pendingWsp) {
      out[at++] = SP;
      this.pendingWsp = false;
    }
    return at;
  }

  /** Raw body bytes (a string is taken as latin1: one byte per character). */
  update(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    if (bytes.length === 0) return;
    const out = Buffer.allocUnsafe(bytes.length + 3);
    let at = 0;
    for (let i = 0; i < bytes.length; i += 1) {
      const c = bytes[i];
      if (c === LF) {
        if (this.lineHasContent) {
          out[at++] = CR;
          out[at++] = LF;
          this.lineHasContent = false;
        } else this.pendingEmptyLines += 1;
        this.pendingWsp = false;
        this.pendingCr = false;
      } else if (c === CR) {
        if (this.pendingCr) at = this.beforeContent(out, at);
        this.pendingCr = true;
      } else if (c === SP || c === TAB) {
        if (this.pendingCr) at = this.beforeContent(out, at);
        this.pendingWsp = true;
      } else {
        at = this.beforeContent(out, at);
        out[at++] = c;
      }
      // A buffer this size holds one chunk's output plus a held CR and space.
      if (at > out.length - 3) {
        this.sink(out.subarray(0, at));
        at = 0;
      }
    }
    if (at > 0) this.sink(out.subarray(0, at));
  }

  /** A shared part canonicalised once: its edges go through `update`, its middle is hashed as it is. */
  updatePart(part: CanonicalPart): void {
    this.update(part.lead);
    if (part.middle) {
      const out = Buffer.allocUnsafe(3);
      const at = this.beforeContent(out, 0);
      if (at > 0) this.sink(out.subarray(0, at));
      this.sink(part.middle);
      this.lineHasContent = true;
      this.pendingWsp = false;
      this.pendingCr = false;
    }
    this.update(part.tail);
  }

  /** The body hash, base64 (the `bh=` tag). */
  digest(): string {
    if (this.pendingCr) {
      const out = Buffer.allocUnsafe(3);
      const at = this.beforeContent(out, 0);
      this.sink(out.subarray(0, at));
    }
    if (this.lineHasContent) this.sink(CRLF);
    return this.hash.digest('base64');
  }
}
