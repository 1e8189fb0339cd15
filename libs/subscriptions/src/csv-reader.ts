import { BadRequestException } from '@nestjs/common';
import { CsvError, Parser } from 'csv-parse';
import { isAscii, isUtf8 } from 'node:buffer';
import { pipeline, Readable } from 'node:stream';
import { TextDecoder } from 'node:util';

/** A file the importer cannot read (quoting, encoding, header): 400 naming the line; nothing is written. */
export class CsvFileError extends BadRequestException {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`The CSV could not be read at line ${line}: ${reason}. Nothing was imported.`);
    this.name = 'CsvFileError';
  }
}

export interface CsvRecord {
  /** The line the record starts on (1 = the header). */
  line: number;
  fields: string[];
}

export interface CsvReadOptions {
  /** The header must name this column; it also tells which delimiter the file uses. */
  mustName: string;
  /** The expected header, for the message when the first line is not one. */
  header: string;
  /** Told how the file was read when that is worth saying (an encoding guessed). */
  notes: string[];
  maxRecordBytes?: number;
}

const DELIMITERS = [',', ';', '\t'];

/** Windows-1252's 0x80–0x9F; Node's TextDecoder reads "windows-1252" as Latin-1 and gets these wrong. */
const CP1252_HIGH =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

function cp1252(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/[\x80-\x9f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]);
}

/** Where a UTF-8 sequence cut by the chunk boundary starts (`b.length` when none is). */
function completeUtf8(b: Buffer): number {
  for (let i = b.length - 1; i >= 0 && i >= b.length - 3; i -= 1) {
    const c = b[i];
    if (c < 0x80) return b.length;
    if (c >= 0xc0) return b.length - i >= (c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2) ? b.length : i;
  }
  return b.length;
}

/** Offset of the first byte that is not valid UTF-8 (only called once a chunk failed the fast check). */
function firstInvalidUtf8(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (n === 0 || i + n > b.length || !isUtf8(b.subarray(i, i + n))) return i;
    i += n;
  }
  return b.length;
}

function countLines(text: string | Buffer, end: number): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < end; i = text.indexOf('\n', i + 1)) n += 1;
  return n;
}

/**
 * The upload as text: UTF-8 with or without a BOM, UTF-16 by its BOM. A file that is not UTF-8 and
 * had only ASCII before the first bad byte is read as Windows-1252 (what Excel saves as "CSV"), with
 * a note; bytes that break UTF-8 after other UTF-8 text are refused. NUL bytes are refused.
 */
async function* decodeText(input: Readable, notes: string[]): AsyncGenerator<string> {
  let mode: 'start' | 'utf8' | 'cp1252' | 'utf16le' | 'utf16be' = 'start';
  let carry = Buffer.alloc(0);
  let nonAscii = false;
  let line = 1; // the line the next text starts on
  let utf16: TextDecoder | undefined;

  const text = (s: string): string => {
    const nul = s.indexOf('\0');
    if (nul !== -1) {
      throw new CsvFileError(
        line + countLines(s, nul),
        'a NUL byte: this is not a text CSV file (UTF-16 saved without a byte-order mark?)',
      );
    }
    line += countLines(s, s.length);
    return s;
  };
  const utf8 = (bytes: Buffer, final: boolean): string => {
    const cut = final ? bytes.length : completeUtf8(bytes);
    const body = bytes.subarray(0, cut);
    carry = Buffer.from(bytes.subarray(cut));
    if (isUtf8(body)) {
      nonAscii ||= !isAscii(body);
      return body.toString('utf8');
    }
    const bad = firstInvalidUtf8(body);
    const at = line + countLines(body, bad);
    nonAscii ||= !isAscii(body.subarray(0, bad));
    if (nonAscii) {
      throw new CsvFileError(at, 'bytes that are not UTF-8, after lines that were: save the whole file as UTF-8');
    }
    mode = 'cp1252';
    notes.push(
      `The file is not UTF-8 (line ${at}): it was read as Windows-1252 (Western European). If accented letters look wrong, save it as "CSV UTF-8" and import it again.`,
    );
    carry = Buffer.alloc(0);
    return cp1252(bytes);
  };
  const decode16 = (bytes: Buffer, final: boolean): string => {
    try {
      return utf16!.decode(bytes, { stream: !final });
    } catch {
      throw new CsvFileError(line, 'the file starts with a UTF-16 byte-order mark but is not valid UTF-16');
    }
  };

  const decodeBytes = (bytes: Buffer, final: boolean): string =>
    mode === 'cp1252'
      ? cp1252(bytes)
      : mode === 'utf16le' || mode === 'utf16be'
        ? decode16(bytes, final)
        : utf8(bytes, final);

  // A raw request or file stream is read without destroying it on an early stop: the caller drains it.
  const chunks = input.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer | string>;
  for await (const chunk of chunks) {
    if (typeof chunk === 'string') {
      // Already text (pasted into the console form).
      yield text(mode === 'start' && chunk.startsWith('\ufeff') ? chunk.slice(1) : chunk);
      mode = 'utf8';
      continue;
    }
    let bytes = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    carry = Buffer.alloc(0);
    if (mode === 'start') {
      if (bytes.length < 3) {
        carry = Buffer.from(bytes); // too short to tell a BOM yet
        continue;
      }
      if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
        bytes = bytes.subarray(3);
        mode = 'utf8';
      } else if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
        mode = bytes[0] === 0xff ? 'utf16le' : 'utf16be';
        utf16 = new TextDecoder(mode === 'utf16le' ? 'utf-16le' : 'utf-16be', { fatal: true });
        bytes = bytes.subarray(2);
      } else mode = 'utf8';
    }
    const s = decodeBytes(bytes, false);
    if (s) yield text(s);
  }
  if (mode === 'start') mode = 'utf8'; // shorter than a BOM
  const last = decodeBytes(carry, true); // an incomplete UTF-8 or UTF-16 sequence at the end fails here
  if (last) yield text(last);
}

/**
 * Reads what is left of a rejected upload and drops it: the client gets its 400 on a connection
 * that stays usable (destroying a request stream resets the socket before the answer).
 */
export function discardRest(input: Readable): void {
  if (input.readableEnded || input.destroyed) return;
  input.unpipe();
  input.removeAllListeners('readable'); // an abandoned reader's listener would keep the stream paused
  input.resume();
}

/** Splits a header line on `delimiter`, honouring double quotes (enough to name the columns). */
function headerCells(headerLine: string, delimiter: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (const c of headerLine) {
    if (c === '"') quoted = !quoted;
    else if (c === delimiter && !quoted) {
      cells.push(cell);
      cell = '';
    } else cell += c;
  }
  cells.push(cell);
  return cells.map((h) => h.trim().toLowerCase());
}

/** The delimiter under which the header names `mustName`, the one giving more columns on a tie; null if none. */
export function sniffDelimiter(headerLine: string, mustName: string): string | null {
  let best: { delimiter: string; columns: number } | null = null;
  for (const delimiter of DELIMITERS) {
    const cells = headerCells(headerLine, delimiter);
    if (cells.includes(mustName) && (!best || cells.length > best.columns)) best = { delimiter, columns: cells.length };
  }
  return best?.delimiter ?? null;
}

/**
 * csv-parse's stream, its records given as CsvRecords and blank ones (also rows of delimiters only)
 * dropped. Lines are counted here, as each record is parsed (csv-parse counts CRLF inside quotes
 * twice): a record spans one line plus the line breaks inside its fields.
 */
class RecordParser extends Parser {
  /** The line the last parsed record ended on, for the line of an error. */
  lastEnd = 0;

  override push(record: unknown, encoding?: BufferEncoding): boolean {
    if (record === null) return super.push(null);
    const fields = record as string[];
    const line = this.lastEnd + 1;
    let end = line;
    for (const f of fields) end += countLines(f, f.length);
    this.lastEnd = end;
    return fields.every((f) => f === '') || super.push({ line, fields } satisfies CsvRecord, encoding);
  }
}

/** csv-parse's errors in words an uploader can act on, at the line where the record starts. */
function fileError(err: unknown, recordLine: number): unknown {
  if (!(err instanceof CsvError)) return err;
  switch (err.code) {
    case 'INVALID_OPENING_QUOTE':
      return new CsvFileError(
        recordLine,
        'a quote (") inside a field that does not start with one: put the whole field in quotes and double the quotes inside it, as in "Pat ""the cat"" Smith"',
      );
    case 'CSV_INVALID_CLOSING_QUOTE':
      return new CsvFileError(
        recordLine,
        'text after the closing quote of a field: double any quote inside a quoted field',
      );
    case 'CSV_QUOTE_NOT_CLOSED':
      return new CsvFileError(recordLine, 'a quote opened in this row is never closed');
    case 'CSV_MAX_RECORD_SIZE':
      return new CsvFileError(recordLine, 'a row longer than 64 kB (is a quote left open?)');
    default:
      return new CsvFileError(recordLine, err.message);
  }
}

/**
 * Records of a streamed CSV upload with the line each starts on; the header comes first (line 1).
 * The first line must be the header naming `mustName`; its delimiter (comma, semicolon or tab)
 * is the file's. Blank rows (also rows of delimiters only) are skipped. Anything that cannot be
 * parsed throws a CsvFileError; the stream is left undestroyed for the caller to drain.
 */
export async function* readCsv(input: Readable, options: CsvReadOptions): AsyncGenerator<CsvRecord> {
  const maxRecordBytes = options.maxRecordBytes ?? 64 * 1024;
  const text = decodeText(input, options.notes);
  let head = '';
  let end = -1;
  while (end === -1 && head.length <= maxRecordBytes) {
    const next = await text.next();
    if (next.done) break;
    head += next.value;
    end = head.search(/[\r\n]/);
  }
  const headerLine = end === -1 ? head : head.slice(0, end);
  const delimiter = sniffDelimiter(headerLine.slice(0, maxRecordBytes), options.mustName);
  if (delimiter === null) {
    await text.return(undefined); // lets go of the input so that the caller can drain it
    const shown = headerLine.length > 60 ? `${headerLine.slice(0, 60)}…` : headerLine;
    throw new CsvFileError(
      1,
      headerLine.trim() === ''
        ? `the first line must be the header, ${options.header} (the file starts with an empty line or is empty)`
        : `the first line must be the header naming the columns, separated by commas, semicolons or tabs: ${options.header} (it is ${JSON.stringify(shown)})`,
    );
  }

  async function* rest(): AsyncGenerator<string> {
    yield head;
    yield* text;
  }
  const parser = new RecordParser({ delimiter, relax_column_count: true, max_record_size: maxRecordBytes });
  // Errors of either side reach the loop below: pipeline destroys the parser with the source's error.
  pipeline(Readable.from(rest(), { objectMode: false }), parser, () => undefined);
  try {
    yield* parser as AsyncIterable<CsvRecord>;
  } catch (err) {
    throw fileError(err, parser.lastEnd + 1);
  }
}
