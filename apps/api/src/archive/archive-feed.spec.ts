import { SaxesParser } from 'saxes';
import { rfc822, rssXml, xmlEscape } from './archive-feed.js';

/** The text of every element named `name`, by a strict XML parser (malformed XML throws). */
function texts(xml: string, name: string): string[] {
  const parser = new SaxesParser({ xmlns: true });
  const found: string[] = [];
  let inside = false;
  parser.on('error', (err) => {
    throw err;
  });
  parser.on('opentag', (tag) => {
    inside = tag.name === name;
    if (inside) found.push('');
  });
  parser.on('text', (t) => {
    if (inside) found[found.length - 1] += t;
  });
  parser.on('closetag', () => {
    inside = false;
  });
  parser.write(xml).close();
  return found;
}

describe('archive RSS', () => {
  const hostile = 'A & B <b>"quoted"</b> \'it\' ]]> \u0000\u0007\u000b\ud800 end 😀';

  it('escapes every value and drops characters XML cannot carry', () => {
    expect(xmlEscape(hostile)).toBe('A &amp; B &lt;b&gt;&quot;quoted&quot;&lt;/b&gt; &apos;it&apos; ]]&gt;  end 😀');
    const xml = rssXml({
      title: hostile,
      link: 'https://example.com/n/issues?a=1&b=2',
      self: 'https://example.com/n/issues.rss',
      description: hostile,
      items: [
        {
          title: hostile,
          url: 'https://example.com/n/issues/2',
          publishedAt: new Date(Date.UTC(2025, 5, 10, 4)),
          description: hostile,
        },
      ],
    });
    const clean = 'A & B <b>"quoted"</b> \'it\' ]]>  end 😀';
    expect(texts(xml, 'title')).toEqual([clean, clean]);
    expect(texts(xml, 'link')).toEqual(['https://example.com/n/issues?a=1&b=2', 'https://example.com/n/issues/2']);
    expect(texts(xml, 'pubDate')).toEqual(['Tue, 10 Jun 2025 04:00:00 GMT']);
    expect(texts(xml, 'lastBuildDate')).toEqual(['Tue, 10 Jun 2025 04:00:00 GMT']);
  });

  it('gives an empty channel without lastBuildDate', () => {
    const xml = rssXml({
      title: 'N',
      link: 'https://e.com/',
      self: 'https://e.com/f.rss',
      description: 'd',
      items: [],
    });
    expect(texts(xml, 'item')).toEqual([]);
    expect(texts(xml, 'lastBuildDate')).toEqual([]);
    expect(rfc822(new Date(0))).toBe('Thu, 01 Jan 1970 00:00:00 GMT');
  });
});
