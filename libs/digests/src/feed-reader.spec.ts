import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFeed } from './feed-charset.js';
import { type EntryOutcome, FeedSyntaxError, readFeed } from './feed-reader.js';

const NOW = new Date('2026-11-25T12:00:00Z');
const FIXTURES = join(__dirname, '../../../test/fixtures/feeds');

/** A feedparser test feed, decoded as the poller does, read as if served from example.com. */
function fixture(name: string, contentType?: string): EntryOutcome[] {
  return readFeed(decodeFeed(readFileSync(join(FIXTURES, name)), contentType).text, 'http://example.com/feed', NOW);
}

function only(outcomes: EntryOutcome[]) {
  expect(outcomes).toHaveLength(1);
  const [o] = outcomes;
  if (!o.ok) throw new Error(`entry not read: ${o.problem}`);
  return o.entry;
}

const atom = (entries: string, base = '') =>
  `<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"${base}><title>t</title>${entries}</feed>`;

describe('feed reader: feedparser test feeds (plain text where feedparser keeps markup)', () => {
  it.each([
    // feedparser: 'Example <b>Atom</b>' for all four; readers get the text.
    ['entry_title_inline_markup.xml', 'Example Atom'],
    ['entry_title_escaped_markup.xml', 'Example Atom'],
    ['entry_title_base64.xml', 'Example Atom'],
    // feedparser: '<p>History of the &lt;blink&gt; tag</p>' and 'History of the <blink> tag'.
    ['entry_title_base64_2.xml', 'History of the <blink> tag'],
    ['entry_title_text_plain_brackets.xml', 'History of the <blink> tag'],
  ])('%s → title %j', (file, title) => {
    expect(only(fixture(file)).title).toBe(title);
  });

  it('Atom 0.3 content mode="base64" is decoded (feedparser: "Example <b>Atom</b>")', () => {
    expect(only(fixture('entry_content_mode_base64.xml')).summary).toBe('Example Atom');
  });

  it('Atom 0.3 issued and RSS dcterms:issued are publication dates (feedparser: 2003-12-31 10:14:55)', () => {
    expect(only(fixture('entry_issued_parsed.xml')).publishedAt).toEqual(new Date('2003-12-31T10:14:55Z'));
    expect(only(fixture('item_dcterms_issued_parsed.xml')).publishedAt).toEqual(new Date('2003-12-31T10:14:55Z'));
  });

  it('UTF-32 with a BOM, UTF-16 without one, and an HTTP charset over the declaration', () => {
    expect(decodeFeed(readFileSync(join(FIXTURES, 'utf-32le-bom.xml')))).toMatchObject({ encoding: 'utf-32le' });
    expect(decodeFeed(readFileSync(join(FIXTURES, 'utf-16be.xml')))).toMatchObject({ encoding: 'utf-16be' });
    expect(fixture('utf-32le-bom.xml')).toEqual([]);
    expect(fixture('utf-16be.xml')).toEqual([]);
    const http = decodeFeed(
      readFileSync(join(FIXTURES, 'http_text_xml_charset_overrides_encoding.xml')),
      'text/xml;charset = us-ascii',
    );
    // WHATWG maps us-ascii to windows-1252 (its superset); the document's iso-8859-1 is overridden.
    expect(http).toMatchObject({ encoding: 'windows-1252', from: 'http' });
    expect(fixture('http_text_xml_charset_overrides_encoding.xml', 'text/xml;charset = us-ascii')).toEqual([]);
  });
});

describe('feed reader', () => {
  it('reads each entry on its own: an unreadable or implausible date skips that entry only', () => {
    const out = readFeed(
      atom(
        `<entry><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">Tips &amp; <em>tricks</em></div></title>
           <link href="https://x.example/1"/><published>2026-11-24T08:00:00Z</published></entry>
         <entry><title>Bad date</title><link href="https://x.example/2"/><published>last Tuesday</published></entry>
         <entry><title>Year one</title><link href="https://x.example/3"/><published>0001-01-01T00:00:00Z</published></entry>
         <entry><title>Far future</title><link href="https://x.example/4"/><published>2099-01-01T00:00:00Z</published></entry>
         <entry><title>Fine</title><link href="https://x.example/5"/><updated>2026-11-23T08:00:00+01:00</updated></entry>`,
      ),
      'https://x.example/feed',
      NOW,
    );
    expect(out).toEqual([
      {
        ok: true,
        entry: expect.objectContaining({ title: 'Tips & tricks', publishedAt: new Date('2026-11-24T08:00:00Z') }),
      },
      { ok: false, problem: 'unreadable date "last Tuesday"' },
      { ok: false, problem: 'date 0001-01-01T00:00:00.000Z is before 1970' },
      { ok: false, problem: 'date 2099-01-01T00:00:00.000Z is more than a day in the future' },
      { ok: true, entry: expect.objectContaining({ title: 'Fine', publishedAt: new Date('2026-11-23T07:00:00Z') }) },
    ]);
  });

  it('resolves links against xml:base (nested) and the feed URL', () => {
    const out = readFeed(
      atom(
        `<entry xml:base="posts/"><title>a</title><link href="one.html"/></entry>
         <entry><title>b</title><link href="/two.html"/></entry>`,
        ' xml:base="https://cms.example/blog/"',
      ),
      'https://feeds.example/atom.xml',
      NOW,
    );
    expect(out.map((o) => o.ok && o.entry.url)).toEqual([
      'https://cms.example/blog/posts/one.html',
      'https://cms.example/two.html',
    ]);
    const rss = readFeed(
      `<rss version="2.0"><channel><item><title>c</title><link>/three</link></item></channel></rss>`,
      'https://feeds.example/rss.xml',
      NOW,
    );
    expect(rss[0]).toMatchObject({ ok: true, entry: { url: 'https://feeds.example/three' } });
  });

  it('stores RSS titles and descriptions as text, with RFC 822 dates and their zones', () => {
    const out = readFeed(
      `<rss version="2.0"><channel><item><title>Tips &amp;amp; tricks for &lt;em&gt;lower&lt;/em&gt; back pain</title>
         <link>https://x.example/tips</link><description><![CDATA[<p>It&#8217;s &ldquo;easy&rdquo;</p><p>Two</p>]]></description>
         <pubDate>Tue, 24 Nov 26 08:00 EST</pubDate><category>Back Pain</category><category>Back Pain</category></item></channel></rss>`,
      null,
      NOW,
    );
    expect(only(out)).toEqual({
      url: 'https://x.example/tips',
      title: 'Tips & tricks for lower back pain',
      summary: 'It’s “easy” Two',
      imageUrl: null,
      topics: ['Back Pain'],
      publishedAt: new Date('2026-11-24T13:00:00Z'),
    });
  });

  it('an entry without any date has none (the poll time is used); a broken document is a FeedSyntaxError', () => {
    expect(only(readFeed(atom(`<entry><title>x</title></entry>`), null, NOW)).publishedAt).toBeNull();
    expect(() => readFeed('<rss><channel><item><title>oops', null, NOW)).toThrow(FeedSyntaxError);
    expect(() => readFeed('<html><body>hi</body></html>', null, NOW)).toThrow(/not <rss> or <feed>/);
  });

  it('undeclared media: prefixes are read, not refused', () => {
    const out = readFeed(
      `<rss version="2.0"><channel><item><title>m</title><link>https://x.example/m</link>
         <media:content url="https://img.example/m.jpg" medium="image"/></item></channel></rss>`,
      null,
      NOW,
    );
    expect(only(out).imageUrl).toBe('https://img.example/m.jpg');
  });
});
