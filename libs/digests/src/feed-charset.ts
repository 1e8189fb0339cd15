/**
 * Bytes of a feed → text. The encoding is taken, in this order, from a byte order mark, the HTTP
 * `charset` parameter, then the XML declaration (read in the byte layout the first bytes show:
 * ASCII-compatible, UTF-16 or UTF-32); UTF-8 when none names one that can be decoded.
 */

type Utf32 = 'utf-32le' | 'utf-32be';

const UTF32: Record<string, Utf32> = {
  'utf-32': 'utf-32be',
  utf32: 'utf-32be',
  'utf-32le': 'utf-32le',
  'utf-32be': 'utf-32be',
  'ucs-4': 'utf-32be',
  'iso-10646-ucs-4': 'utf-32be',
};

/** The encoding a byte order mark names, with the mark's length. */
function byBom(b: Uint8Array): { encoding: string; skip: number } | null {
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return { encoding: 'utf-8', skip: 3 };
  if (b[0] === 0x00 && b[1] === 0x00 && b[2] === 0xfe && b[3] === 0xff) return { encoding: 'utf-32be', skip: 4 };
  // FF FE 00 00 is UTF-32LE's mark, and would read as UTF-16LE's followed by a NUL: checked first.
  if (b[0] === 0xff && b[1] === 0xfe && b[2] === 0x00 && b[3] === 0x00) return { encoding: 'utf-32le', skip: 4 };
  if (b[0] === 0xfe && b[1] === 0xff) return { encoding: 'utf-16be', skip: 2 };
  if (b[0] === 0xff && b[1] === 0xfe) return { encoding: 'utf-16le', skip: 2 };
  return null;
}

/** The byte layout of `<?` (XML 1.0 appendix F): how to read the declaration without a mark. */
function layout(b: Uint8Array): 'ascii' | 'utf-16le' | 'utf-16be' | Utf32 {
  const [a, c, d, e] = b;
  if (a === 0 && c === 0 && d === 0 && e === 0x3c) return 'utf-32be';
  if (a === 0x3c && c === 0 && d === 0 && e === 0) return 'utf-32le';
  if (a === 0 && c === 0x3c && d === 0 && e === 0x3f) return 'utf-16be';
  if (a === 0x3c && c === 0 && d === 0x3f && e === 0) return 'utf-16le';
  return 'ascii';
}

/** The `charset` parameter of a Content-Type value, if any. */
export function httpCharset(contentType: string | string[] | undefined): string | null {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  if (!value) return null;
  for (const param of value.split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const v = param
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .trim();
    return v || null;
  }
  return null;
}

/** A label this module can decode, normalised, or null. */
function usable(label: string | null): string | null {
  if (!label) return null;
  const l = label.trim().toLowerCase();
  if (UTF32[l]) return UTF32[l];
  try {
    return new TextDecoder(l).encoding;
  } catch {
    return null; // an unknown or unsupported label: the next source decides
  }
}

function decodeUtf32(b: Uint8Array, le: boolean): string {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const parts: string[] = [];
  let chunk: number[] = [];
  for (let i = 0; i + 3 < b.length; i += 4) {
    const cp = view.getUint32(i, le);
    chunk.push(cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0xfffd : cp);
    if (chunk.length === 8192) {
      parts.push(String.fromCodePoint(...chunk));
      chunk = [];
    }
  }
  if (b.length % 4 !== 0) chunk.push(0xfffd); // a truncated last character
  parts.push(String.fromCodePoint(...chunk));
  return parts.join('');
}

/** windows-1252's 0x80–0x9F (WHATWG Encoding); the five bytes it leaves undefined stay C1 controls. */
const CP1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

function decodeAs(encoding: string, b: Uint8Array): string {
  if (encoding === 'windows-1252') {
    // Node 20's TextDecoder reads windows-1252 as ISO-8859-1 (C1 controls for 0x80–0x9F): mapped here.
    return new TextDecoder('windows-1252')
      .decode(b)
      .replace(/[\u0080-\u009f]/g, (c) => String.fromCharCode(CP1252_HIGH[c.charCodeAt(0) - 0x80]));
  }
  if (encoding === 'utf-32le' || encoding === 'utf-32be') {
    const s = decodeUtf32(b, encoding === 'utf-32le');
    return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
  }
  // Invalid bytes become U+FFFD rather than failing the whole feed; a matching BOM is dropped.
  return new TextDecoder(encoding).decode(b);
}

/** The encoding named by the XML declaration, read in the layout the first bytes show. */
function declared(b: Uint8Array): string | null {
  const l = layout(b);
  // Without a mark, the layout of `<?` already tells UTF-16/32 and their byte order.
  if (l !== 'ascii') return l;
  const head = new TextDecoder('latin1').decode(b.subarray(0, 512));
  const m = /^\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._:-]*)["']/.exec(head);
  const name = usable(m?.[1] ?? null);
  // A declaration that says UTF-16/32 over ASCII-compatible bytes is wrong about them.
  return name && !/^utf-(16|32)/.test(name) ? name : null;
}

/** Decodes a feed body; `encoding` is the one used (for logs and tests). */
export function decodeFeed(
  body: Uint8Array,
  contentType?: string | string[],
): { text: string; encoding: string; from: 'bom' | 'http' | 'xml' | 'default' } {
  const bom = byBom(body);
  if (bom) return { text: decodeAs(bom.encoding, body.subarray(bom.skip)), encoding: bom.encoding, from: 'bom' };
  const http = usable(httpCharset(contentType));
  if (http) return { text: decodeAs(http, body), encoding: http, from: 'http' };
  const xml = declared(body);
  if (xml) return { text: decodeAs(xml, body), encoding: xml, from: 'xml' };
  return { text: decodeAs('utf-8', body), encoding: 'utf-8', from: 'default' };
}
