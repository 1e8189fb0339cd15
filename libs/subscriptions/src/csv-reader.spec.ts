import { PassThrough, Readable } from 'node:stream';
import { CsvFileError, type CsvRecord, discardRest, readCsv, sniffDelimiter } from './csv-reader.js';

const HEADER = 'email,name,topics,timezone,consented_at,source';

/** Bytes in chunks of `size` (1 = byte by byte, to cut every multi-byte sequence). */
function bytes(data: Buffer | string, size = 1 << 16): Readable {
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) parts.push(b.subarray(i, i + size));
  return Readable.from(parts);
}

async function read(input: Readable): Promise<{ records: CsvRecord[]; notes: string[] }> {
  const notes: string[] = [];
  const records: CsvRecord[] = [];
  for await (const r of readCsv(input, { mustName: 'email', header: HEADER, notes })) records.push(r);
  return { records, notes };
}

async function failure(input: Readable): Promise<CsvFileError> {
  const err = await read(input).then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof CsvFileError)) throw new Error(`expected a CsvFileError, got ${String(err)}`);
  return err;
}

describe('sniffDelimiter', () => {
  it('takes the delimiter under which the header names email', () => {
    expect(sniffDelimiter(HEADER, 'email')).toBe(',');
    expect(sniffDelimiter('Email;Name;Topics', 'email')).toBe(';');
    expect(sniffDelimiter('"email"\t"name"', 'email')).toBe('\t');
    expect(sniffDelimiter('email', 'email')).toBe(',');
    expect(sniffDelimiter('pat@example.com,Pat,,,2025-05-01,', 'email')).toBeNull();
    expect(sniffDelimiter('email|name', 'email')).toBeNull();
  });
});

describe('readCsv', () => {
  it('gives each record with the line it starts on, skipping blank rows', async () => {
    const { records, notes } = await read(bytes(`${HEADER}\r\n\r\na@x.com,"Pat\r\nSmith"\r\n,,,,,\r\nb@x.com,B\r\n`));
    expect(records).toEqual([
      { line: 1, fields: HEADER.split(',') },
      { line: 3, fields: ['a@x.com', 'Pat\r\nSmith'] },
      { line: 6, fields: ['b@x.com', 'B'] },
    ]);
    expect(notes).toEqual([]);
  });

  it('reads semicolon- and tab-separated files', async () => {
    const semi = await read(bytes('email;name;topics\na@x.com;Pat;"Neck;Hip"\n'));
    expect(semi.records[1].fields).toEqual(['a@x.com', 'Pat', 'Neck;Hip']);
    const tab = await read(bytes('email\tname\na@x.com\tPat, Jr.\n'));
    expect(tab.records[1].fields).toEqual(['a@x.com', 'Pat, Jr.']);
  });

  it('reads UTF-8 with or without a BOM and UTF-16 by its BOM, across chunk boundaries', async () => {
    const text = `${HEADER}\na@x.com,Zoë Ñúñez 😀\n`;
    for (const input of [
      bytes(text, 1),
      bytes(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), 1),
      bytes(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]), 3),
      bytes(Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]), 5),
      Readable.from([`\ufeff${text}`]),
    ]) {
      const { records, notes } = await read(input);
      expect(records[0].fields[0]).toBe('email');
      expect(records[1].fields).toEqual(['a@x.com', 'Zoë Ñúñez 😀']);
      expect(notes).toEqual([]);
    }
  });

  it('reads a file that is not UTF-8 as Windows-1252, with a note', async () => {
    const latin = Buffer.concat([
      Buffer.from(`${HEADER}\na@x.com,Pat\nb@x.com,`),
      Buffer.from([0x5a, 0x6f, 0xeb, 0x20, 0x80, 0x93]),
    ]);
    const { records, notes } = await read(bytes(latin, 7));
    expect(records[2].fields).toEqual(['b@x.com', 'Zoë €“']);
    expect(notes).toEqual([expect.stringMatching(/^The file is not UTF-8 \(line 3\): it was read as Windows-1252/)]);
  });

  it('refuses bytes that break UTF-8 after UTF-8 text, naming the line', async () => {
    const mixed = Buffer.concat([Buffer.from(`${HEADER}\na@x.com,Zoë\nb@x.com,`), Buffer.from([0xeb, 0x0a])]);
    const err = await failure(bytes(mixed));
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/^The CSV could not be read at line 3: bytes that are not UTF-8/);
    expect(err.getStatus()).toBe(400);
  });

  it.each([
    [
      'a bare quote inside a field',
      `${HEADER}\na@x.com,ok\nb@x.com,Pat "the cat" Smith\n`,
      3,
      /a quote \(".*inside a field/,
    ],
    ['a quoted local part', `${HEADER}\n"quoted"@example.com,x\n`, 2, /text after the closing quote/],
    ['an unclosed quote', `${HEADER}\na@x.com,ok\nb@x.com,"Pat\nc@x.com,x\n`, 3, /never closed/],
    ['a record over 64 kB', `${HEADER}\na@x.com,ok\nb@x.com,${'x'.repeat(70_000)}\n`, 3, /longer than 64 kB/],
    ['a NUL byte', `${HEADER}\na@x.com,ok\nb@x.com,P\0t\n`, 3, /NUL byte/],
    ['no header', `pat@example.com,Pat,,,2025-05-01,\n`, 1, /the first line must be the header naming the columns/],
    ['an empty file', '', 1, /the first line must be the header/],
    ['a pipe-separated file', 'email|name\na@x.com|Pat\n', 1, /separated by commas, semicolons or tabs/],
    ['UTF-16 without a BOM', Buffer.from(`${HEADER}\n`, 'utf16le'), 1, /NUL byte/],
    [
      'broken UTF-16',
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('email\n', 'utf16le'), Buffer.from([0x00, 0xd8, 0x61])]),
      2,
      /not valid UTF-16/,
    ],
  ])('refuses %s with its line', async (_, data, line, reason) => {
    const err = await failure(bytes(data, 1000));
    expect({ line: err.line, reason: err.reason }).toEqual({ line, reason: expect.stringMatching(reason) });
  });

  it('leaves a rejected stream to be drained, not destroyed', async () => {
    const input = new PassThrough();
    input.write('pat@example.com,Pat\n');
    const rejected = failure(input);
    expect((await rejected).line).toBe(1);
    discardRest(input);
    const ended = new Promise((resolve) => input.on('end', resolve));
    for (let i = 0; i < 100; i += 1) input.write('x'.repeat(100_000));
    input.end();
    await ended;
    expect(input.destroyed || input.readableEnded).toBe(true);
  });
});
