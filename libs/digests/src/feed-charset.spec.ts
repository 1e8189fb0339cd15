import { decodeFeed, httpCharset } from './feed-charset.js';

const doc = (encoding: string, body: string) => `<?xml version="1.0" encoding="${encoding}"?><rss>${body}</rss>`;
/** A document whose body is raw bytes in the declared encoding. */
const bytes = (encoding: string, body: number[]) =>
  Buffer.concat([
    Buffer.from(`<?xml version="1.0" encoding="${encoding}"?><rss>`),
    Buffer.from(body),
    Buffer.from('</rss>'),
  ]);

function utf32(s: string, le: boolean, bom: boolean): Uint8Array {
  const cps = [...(bom ? '\ufeff' : ''), ...s].map((c) => c.codePointAt(0)!);
  const b = Buffer.alloc(cps.length * 4);
  cps.forEach((cp, i) => (le ? b.writeUInt32LE(cp, i * 4) : b.writeUInt32BE(cp, i * 4)));
  return b;
}

describe('feed charset', () => {
  it('windows-1252 smart quotes, Latin-1, KOI8-R and Shift_JIS by their XML declaration', () => {
    const cp1252 = bytes('windows-1252', [0x93, 0x68, 0x69, 0x94]);
    expect(decodeFeed(cp1252).text).toContain('“hi”');
    expect(decodeFeed(Buffer.from(doc('iso-8859-1', 'caf\xe9'), 'latin1')).text).toContain('café');
    // "Привет" in KOI8-R.
    const koi = bytes('koi8-r', [0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]);
    expect(decodeFeed(koi).text).toContain('Привет');
    // "日本" in Shift_JIS.
    const sjis = bytes('Shift_JIS', [0x93, 0xfa, 0x96, 0x7b]);
    expect(decodeFeed(sjis).text).toContain('日本');
  });

  it('BOM first, then the HTTP charset, then the declaration, else UTF-8', () => {
    const latin = Buffer.from(doc('utf-8', 'caf\xe9'), 'latin1');
    expect(decodeFeed(latin, 'application/rss+xml; charset="ISO-8859-1"')).toMatchObject({ from: 'http' });
    expect(decodeFeed(latin, 'application/rss+xml; charset=ISO-8859-1').text).toContain('café');
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(doc('koi8-r', 'café'))]);
    expect(decodeFeed(bom, 'text/xml; charset=koi8-r')).toMatchObject({ encoding: 'utf-8', from: 'bom' });
    expect(decodeFeed(bom).text.startsWith('<?xml')).toBe(true);
    expect(decodeFeed(Buffer.from('<rss>café</rss>'), 'text/xml; charset=bogus')).toMatchObject({
      encoding: 'utf-8',
      from: 'default',
      text: '<rss>café</rss>',
    });
    expect(httpCharset('text/xml;charset = us-ascii')).toBe('us-ascii');
    expect(httpCharset(undefined)).toBeNull();
  });

  it('UTF-16 and UTF-32, both orders, with and without a BOM', () => {
    const s = doc('utf-16', 'Ünïcödé 𝄞');
    expect(decodeFeed(Buffer.from(`\ufeff${s}`, 'utf16le')).text).toBe(s);
    expect(decodeFeed(Buffer.from(s, 'utf16le'))).toMatchObject({ text: s, encoding: 'utf-16le' });
    const be = Buffer.from(s, 'utf16le').swap16();
    expect(decodeFeed(be)).toMatchObject({ text: s, encoding: 'utf-16be' });
    for (const le of [true, false]) for (const bom of [true, false]) expect(decodeFeed(utf32(s, le, bom)).text).toBe(s);
  });
});
