/** One item of the archive's RSS feed: an issue and its web version. */
export interface FeedItem {
  title: string;
  /** The web version: the item's link and its permalink guid. */
  url: string;
  publishedAt: Date;
  /** Plain text (escaped here). */
  description: string;
}

export interface FeedChannel {
  title: string;
  /** The archive page. */
  link: string;
  /** The feed's own address (atom:link rel="self", which feed validators ask for). */
  self: string;
  description: string;
  items: FeedItem[];
}

// Characters XML 1.0 does not allow at all (C0 controls but tab and line breaks, lone surrogates,
// U+FFFE/U+FFFF): dropped, since no escape makes them legal.
const NOT_XML =
  // eslint-disable-next-line no-control-regex -- matching these control characters is the point
  /[\0-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** A value for XML text or a double-quoted attribute. */
export function xmlEscape(value: string): string {
  return value
    .replace(NOT_XML, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** RFC 822 date as RSS 2.0 wants it (`Tue, 10 Jun 2025 04:00:00 GMT`). */
export function rfc822(date: Date): string {
  return date.toUTCString();
}

/** RSS 2.0 of the channel, every value escaped; `lastBuildDate` is the newest item's date (stable for caches). */
export function rssXml(channel: FeedChannel): string {
  const el = (name: string, value: string) => `<${name}>${xmlEscape(value)}</${name}>`;
  const newest = channel.items.reduce<Date | null>(
    (max, i) => (max === null || i.publishedAt > max ? i.publishedAt : max),
    null,
  );
  const items = channel.items.map((i) =>
    [
      '    <item>',
      `      ${el('title', i.title)}`,
      `      ${el('link', i.url)}`,
      `      <guid isPermaLink="true">${xmlEscape(i.url)}</guid>`,
      `      ${el('pubDate', rfc822(i.publishedAt))}`,
      `      ${el('description', i.description)}`,
      '    </item>',
    ].join('\n'),
  );
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">',
    '  <channel>',
    `    ${el('title', channel.title)}`,
    `    ${el('link', channel.link)}`,
    `    ${el('description', channel.description)}`,
    '    <language>en</language>',
    `    <atom:link href="${xmlEscape(channel.self)}" rel="self" type="application/rss+xml"/>`,
    ...(newest ? [`    ${el('lastBuildDate', rfc822(newest))}`] : []),
    ...items,
    '  </channel>',
    '</rss>',
    '',
  ].join('\n');
}
