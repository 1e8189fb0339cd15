import { convert } from 'html-to-text';
import { type SaxesAttributeNS, SaxesParser, type SaxesTagNS } from 'saxes';
import { implausible, parseFeedDate } from './feed-date.js';

/**
 * RSS 0.9x/2.0, RSS 1.0 (RDF) and Atom 0.3/1.0 entries → article fields, one entry at a time: an
 * entry that cannot be read is reported and the others are still read. Titles and summaries come
 * out as plain text whatever their markup (Atom `type`/`mode`, RSS HTML); links are resolved
 * against `xml:base` and the feed's URL.
 */

const NS = {
  atom10: 'http://www.w3.org/2005/Atom',
  atom03: 'http://purl.org/atom/ns#',
  rss10: 'http://purl.org/rss/1.0/',
  rss090: 'http://my.netscape.com/rdf/simple/0.9/',
  dc: 'http://purl.org/dc/elements/1.1/',
  dcterms: 'http://purl.org/dc/terms/',
  content: 'http://purl.org/rss/1.0/modules/content/',
  media: 'http://search.yahoo.com/mrss/',
  xhtml: 'http://www.w3.org/1999/xhtml',
  xml: 'http://www.w3.org/XML/1998/namespace',
} as const;

/** Prefixes feeds often use without declaring them: read as their usual namespace, not refused. */
const KNOWN_PREFIXES: Record<string, string> = {
  dc: NS.dc,
  dcterms: NS.dcterms,
  content: NS.content,
  media: NS.media,
  atom: NS.atom10,
};

export interface FeedEntry {
  /** The entry's link, absolute http(s), or null. */
  url: string | null;
  title: string | null;
  summary: string | null;
  imageUrl: string | null;
  topics: string[];
  /** Null when the entry carries no date at all (the caller uses the poll time). */
  publishedAt: Date | null;
}

export type EntryOutcome = { ok: true; entry: FeedEntry } | { ok: false; problem: string };

/** The document is not well-formed XML, or not RSS/Atom: nothing in it can be read. */
export class FeedSyntaxError extends Error {}

interface El {
  local: string;
  uri: string;
  attrs: Record<string, SaxesAttributeNS>;
  /** xml:base in force for this element (the feed URL at the root). */
  base: string | null;
  children: (El | string)[];
}

type Kind = 'atom' | 'rss';

function parseXml(xml: string, feedUrl: string | null): El {
  const parser = new SaxesParser({
    xmlns: true,
    position: true,
    // Called for the undeclared default namespace too (''): left as no namespace.
    resolvePrefix: (prefix: string) =>
      prefix === '' ? undefined : (KNOWN_PREFIXES[prefix] ?? `urn:mailroom:unbound:${prefix}`),
  });
  const stack: El[] = [];
  let root: El | null = null;
  parser.on('opentag', (tag: SaxesTagNS) => {
    const parent = stack[stack.length - 1];
    const inherited = parent ? parent.base : feedUrl;
    const xmlBase = Object.values(tag.attributes).find((a) => a.uri === NS.xml && a.local === 'base')?.value;
    const el: El = {
      local: tag.local,
      uri: tag.uri,
      attrs: tag.attributes,
      base: xmlBase !== undefined ? (resolve(xmlBase, inherited) ?? inherited) : inherited,
      children: [],
    };
    if (parent) parent.children.push(el);
    else root = el;
    stack.push(el);
  });
  parser.on('closetag', () => void stack.pop());
  const text = (t: string) => stack[stack.length - 1]?.children.push(t);
  parser.on('text', text);
  parser.on('cdata', text);
  try {
    parser.write(xml).close();
  } catch (err) {
    // saxes messages start with the position ("3:17: unclosed tag: title"): no feed text in them.
    throw new FeedSyntaxError((err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 120));
  }
  if (!root) throw new FeedSyntaxError('no root element');
  return root;
}

function resolve(href: string, base: string | null): string | null {
  try {
    return new URL(href.trim(), base ?? undefined).toString();
  } catch {
    return null;
  }
}

function httpUrl(href: string | undefined | null, base: string | null): string | null {
  if (!href?.trim()) return null;
  const u = resolve(href, base);
  return u && /^https?:/i.test(u) ? u : null;
}

const isEl = (n: El | string): n is El => typeof n !== 'string';
const attr = (el: El, local: string): string | undefined =>
  Object.values(el.attrs).find((a) => a.local === local && (a.uri === '' || a.uri === undefined))?.value;
const textOf = (el: El): string => el.children.map((c) => (isEl(c) ? textOf(c) : c)).join('');

function isAtomNs(uri: string): boolean {
  return uri === NS.atom10 || uri === NS.atom03;
}

/** The entry's own elements: the feed format's namespace (or none), not an extension's. */
function core(kind: Kind, el: El): (name: string) => El[] {
  const own =
    kind === 'atom'
      ? (uri: string) => isAtomNs(uri) || uri === ''
      : (uri: string) => uri === '' || uri === NS.rss10 || uri === NS.rss090;
  return (name) => el.children.filter(isEl).filter((c) => c.local === name && own(c.uri));
}
const ext = (el: El, uri: string, name: string): El[] =>
  el.children.filter(isEl).filter((c) => c.uri === uri && c.local === name);

const TEXT_OPTIONS = {
  wordwrap: false as const,
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((h) => ({ selector: h, options: { uppercase: false } })),
    { selector: 'table', format: 'block' },
  ],
};

/** Markup → the text a reader sees: entities decoded, tags gone, whitespace collapsed. */
export function htmlText(html: string): string {
  return convert(html, TEXT_OPTIONS).replace(/\s+/g, ' ').trim();
}

const plain = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** Untyped text (RSS titles, decoded base64) that holds a tag or an entity reference is taken as HTML. */
function looksLikeHtml(s: string): boolean {
  return /<\/?[a-z][a-z0-9]*(\s[^<>]*)?\/?>/i.test(s) || /&(#\d+|#x[0-9a-f]+|[a-z][a-z0-9]*);/i.test(s);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** Inline XHTML back to markup (for html-to-text, which knows which elements are blocks). */
function serialize(nodes: (El | string)[]): string {
  return nodes
    .map((n) => {
      if (!isEl(n)) return escapeHtml(n);
      const attrs = Object.values(n.attrs)
        .filter((a) => a.prefix !== 'xmlns' && a.name !== 'xmlns')
        .map((a) => ` ${a.local}="${escapeHtml(a.value)}"`)
        .join('');
      return `<${n.local}${attrs}>${serialize(n.children)}</${n.local}>`;
    })
    .join('');
}

function decodeBase64(s: string): string {
  return Buffer.from(s.replace(/\s+/g, ''), 'base64').toString('utf8');
}

/**
 * An Atom text construct (or content) as plain text: `type` text/html/xhtml (1.0) or a MIME type
 * with `mode` xml/escaped/base64 (0.3); another non-text MIME type in 1.0 means base64 (RFC 4287 §4.1.3.3).
 */
function atomText(el: El): string {
  const type = (attr(el, 'type') ?? 'text').trim().toLowerCase();
  const mode = (attr(el, 'mode') ?? '').trim().toLowerCase();
  const xmlish = type === 'xhtml' || type.endsWith('+xml') || type.endsWith('/xml');
  const textual = type === 'text' || type === 'html' || type.startsWith('text/');
  if (mode === 'base64' || (!xmlish && !textual)) {
    const decoded = decodeBase64(textOf(el));
    return type.includes('html') || looksLikeHtml(decoded) ? htmlText(decoded) : plain(decoded);
  }
  if (xmlish || mode === 'xml' || el.children.some(isEl)) {
    // XHTML: a wrapping xhtml:div is not part of the content (RFC 4287 §4.1.1.3).
    const kids = el.children.filter((c) => isEl(c) || c.trim() !== '');
    const inner = kids.length === 1 && isEl(kids[0]) && kids[0].local === 'div' ? kids[0].children : el.children;
    return htmlText(serialize(inner));
  }
  if (type === 'html' || type.includes('html') || mode === 'escaped') return htmlText(textOf(el));
  return plain(textOf(el));
}

/** RSS: descriptions are HTML; other text is HTML only when it looks like it. */
function rssText(el: El, html: boolean): string {
  const t = textOf(el);
  return html || looksLikeHtml(t) ? htmlText(t) : plain(t);
}

/** The entry's date elements, best first: publication before modification. */
function dateElements(kind: Kind, el: El): El[] {
  const own = core(kind, el);
  const mine =
    kind === 'atom'
      ? [...own('published'), ...own('issued'), ...own('created')]
      : [...own('pubDate'), ...ext(el, NS.dc, 'date')];
  return [
    ...mine,
    ...ext(el, NS.dcterms, 'issued'),
    ...ext(el, NS.dcterms, 'created'),
    ...ext(el, NS.atom10, 'published'),
    ...(kind === 'atom' ? [...own('updated'), ...own('modified'), ...ext(el, NS.dc, 'date')] : []),
    ...ext(el, NS.dcterms, 'modified'),
    ...ext(el, NS.atom10, 'updated'),
  ];
}

/** The first readable date; a readable but implausible one, or only unreadable ones, is a problem. */
function entryDate(kind: Kind, el: El, now: Date): Date | null {
  const found = dateElements(kind, el)
    .map((d) => textOf(d).trim())
    .filter(Boolean);
  if (found.length === 0) return null;
  for (const raw of found) {
    const date = parseFeedDate(raw);
    if (!date) continue;
    const why = implausible(date, now);
    if (why) throw new EntryProblem(why);
    return date;
  }
  throw new EntryProblem(`unreadable date "${found[0].slice(0, 60)}"`);
}

class EntryProblem extends Error {}

function atomEntry(el: El, now: Date): FeedEntry {
  const own = core('atom', el);
  const links = own('link');
  const rel = (l: El) => (attr(l, 'rel') ?? 'alternate').trim().toLowerCase();
  const alternate =
    links.find((l) => rel(l) === 'alternate' && (attr(l, 'type') ?? 'text/html').includes('html')) ??
    links.find((l) => rel(l) === 'alternate');
  const enclosure = links.find(
    (l) => rel(l) === 'enclosure' && (attr(l, 'type') ?? '').toLowerCase().startsWith('image/'),
  );
  const id = own('id')[0];
  const title = own('title')[0];
  const summary = own('summary')[0] ?? own('content')[0];
  return {
    url:
      httpUrl(alternate && attr(alternate, 'href'), alternate?.base ?? el.base) ??
      (id ? httpUrl(textOf(id), id.base) : null),
    title: title ? atomText(title) || null : null,
    summary: summary ? atomText(summary) || null : null,
    imageUrl: (enclosure && httpUrl(attr(enclosure, 'href'), enclosure.base)) ?? mediaImage(el),
    topics: own('category')
      .map((c) => attr(c, 'term') ?? '')
      .concat(ext(el, NS.dc, 'subject').map(textOf)),
    publishedAt: entryDate('atom', el, now),
  };
}

function rssEntry(el: El, now: Date): FeedEntry {
  const own = core('rss', el);
  const link = own('link')[0];
  const guid = own('guid')[0];
  const permalink = guid && (attr(guid, 'isPermaLink') ?? 'true').trim().toLowerCase() !== 'false';
  const atomLink = ext(el, NS.atom10, 'link').find((l) => (attr(l, 'rel') ?? 'alternate') === 'alternate');
  const enclosure = own('enclosure').find((e) => (attr(e, 'type') ?? '').toLowerCase().startsWith('image/'));
  const title = own('title')[0] ?? ext(el, NS.dc, 'title')[0];
  const summary = own('description')[0] ?? ext(el, NS.content, 'encoded')[0] ?? ext(el, NS.dc, 'description')[0];
  return {
    url:
      (link ? httpUrl(textOf(link), link.base) : null) ??
      (atomLink ? httpUrl(attr(atomLink, 'href'), atomLink.base) : null) ??
      (permalink ? httpUrl(textOf(guid), guid.base) : null) ??
      (attr(el, 'about') ? httpUrl(attr(el, 'about'), el.base) : null),
    title: title ? rssText(title, false) || null : null,
    summary: summary ? rssText(summary, true) || null : null,
    imageUrl: (enclosure && httpUrl(attr(enclosure, 'url'), enclosure.base)) ?? mediaImage(el),
    topics: own('category')
      .map(textOf)
      .concat(ext(el, NS.dc, 'subject').map(textOf)),
    publishedAt: entryDate('rss', el, now),
  };
}

/** media:content (an image) or media:thumbnail, also inside a media:group. */
function mediaImage(el: El): string | null {
  const groups = [el, ...ext(el, NS.media, 'group')];
  for (const g of groups) {
    for (const m of ext(g, NS.media, 'content')) {
      const medium = (attr(m, 'medium') ?? '').toLowerCase();
      const type = (attr(m, 'type') ?? '').toLowerCase();
      if (medium === 'image' || type.startsWith('image/') || (!medium && !type)) {
        const u = httpUrl(attr(m, 'url'), m.base);
        if (u) return u;
      }
    }
    for (const t of ext(g, NS.media, 'thumbnail')) {
      const u = httpUrl(attr(t, 'url'), t.base);
      if (u) return u;
    }
  }
  return null;
}

/** The entries in document order: RSS `channel/item` (and RDF's top-level items), Atom `entry`. */
function entriesOf(root: El): { kind: Kind; entries: El[] } {
  const kids = (el: El, name: string) => el.children.filter(isEl).filter((c) => c.local === name);
  if (root.local === 'feed' && (isAtomNs(root.uri) || root.uri === ''))
    return { kind: 'atom', entries: kids(root, 'entry') };
  if (root.local === 'rss' || root.local === 'RDF') {
    const channels = kids(root, 'channel');
    return { kind: 'rss', entries: [...kids(root, 'item'), ...channels.flatMap((c) => kids(c, 'item'))] };
  }
  throw new FeedSyntaxError(`the document is <${root.local}>, not <rss> or <feed>`);
}

/** Topics as the API takes them: non-empty, at most 50 characters, at most 20, no repeats. */
function cleanTopics(list: string[]): string[] {
  return [...new Set(list.map(plain).filter((t) => t.length > 0 && t.length <= 50))].slice(0, 20);
}

/**
 * Reads a decoded feed. Throws FeedSyntaxError when the document itself cannot be read; an entry
 * that cannot be read is an `{ ok: false, problem }` in its place.
 */
export function readFeed(xml: string, feedUrl: string | null, now: Date = new Date()): EntryOutcome[] {
  const { kind, entries } = entriesOf(parseXml(xml, feedUrl));
  return entries.map((el): EntryOutcome => {
    try {
      const entry = kind === 'atom' ? atomEntry(el, now) : rssEntry(el, now);
      return { ok: true, entry: { ...entry, topics: cleanTopics(entry.topics) } };
    } catch (err) {
      if (err instanceof EntryProblem) return { ok: false, problem: err.message };
      // Anything else is a fault in reading this one entry: reported, not fatal to the rest.
      return {
        ok: false,
        problem: `unreadable entry (${err instanceof Error ? err.message : String(err)})`.slice(0, 200),
      };
    }
  });
}
