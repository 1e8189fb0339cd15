import Handlebars from 'handlebars';

/** What the archive pages tell search engines, link previews and feed readers. */
export interface HeadTags {
  description: string;
  /** The page's public address (canonical and og:url). */
  url: string;
  type: 'article' | 'website';
  siteName: string;
  title: string;
  feedTitle: string;
  feedUrl: string;
  /** ISO time of an issue (article:published_time). */
  publishedTime?: string;
  image?: string | null;
}

/**
 * The head of the archive pages, escaped by Handlebars. The shared layout has no slot for it, so
 * `withHead` puts it in before `</head>`, with the styles of the issue list and the issue.
 */
const HEAD = Handlebars.create().compile(
  `<meta name="description" content="{{description}}">
<link rel="canonical" href="{{url}}">
<link rel="alternate" type="application/rss+xml" title="{{feedTitle}}" href="{{feedUrl}}">
<meta property="og:type" content="{{type}}">
<meta property="og:site_name" content="{{siteName}}">
<meta property="og:title" content="{{title}}">
<meta property="og:description" content="{{description}}">
<meta property="og:url" content="{{url}}">
{{#if image}}<meta property="og:image" content="{{image}}">
{{/if}}{{#if publishedTime}}<meta property="article:published_time" content="{{publishedTime}}">
{{/if}}<meta name="twitter:card" content="{{#if image}}summary_large_image{{else}}summary{{/if}}">
<meta name="twitter:title" content="{{title}}">
<meta name="twitter:description" content="{{description}}">
`,
  { strict: false },
);

/** Styles of the archive pages, in the layout's colours (its custom properties). */
const STYLE = `<style>
  .back { display: inline-block; margin: 0 0 18px; font-size: 15px; font-weight: 600; }
  .issue-meta { color: var(--muted); font-size: 15px; margin: -6px 0 22px; }
  .intro { margin: 0 0 8px; }
  .intro a { color: var(--brand); }
  .articles { list-style: none; padding: 0; margin: 0; }
  .article { padding: 22px 0; border-top: 1px solid var(--line); }
  .article img { display: block; width: 100%; height: auto; border-radius: 8px; margin: 0 0 14px; }
  .topic-line { margin: 0 0 4px; font-size: 13px; font-weight: 700; letter-spacing: .08em; text-transform: uppercase; color: var(--brand-dark); }
  .article h2 { margin: 0 0 8px; font-size: 21px; line-height: 1.3; }
  .article h2 a { color: var(--ink); text-decoration: underline; text-decoration-color: var(--line); }
  .article h2 a:hover { text-decoration-color: currentColor; }
  .summary { color: var(--muted); margin: 0 0 10px; }
  .read-more { font-weight: 600; }
  .issue-list { list-style: none; padding: 0; margin: 0 0 8px; }
  .issue-list li { padding: 16px 0; border-top: 1px solid var(--line); }
  .issue-list h2 { margin: 0 0 4px; font-size: 19px; }
  .issue-list p { margin: 0; }
  .pager { display: flex; justify-content: space-between; gap: 16px; margin: 20px 0 0; font-weight: 600; }
  .pager .older { margin-left: auto; }
  .get-it { margin: 28px 0 0; padding: 20px; border-radius: var(--radius); background: var(--tint); border: 1px solid #cfe6da; }
  .get-it p { margin: 0 0 6px; }
  .get-it .button { margin: 14px 0 0; }
  .feed-link { margin: 16px 0 0; font-size: 15px; }
</style>
`;

const ROBOTS_NOINDEX = '<meta name="robots" content="noindex">';

/**
 * A rendered page with the archive's head tags and styles. A page of the archive is public on
 * purpose (the newsletter's `archive` switch), so the layout's `noindex` is dropped unless `indexable` is false.
 */
export function withHead(html: string, tags: HeadTags | null, indexable: boolean): string {
  const head = (tags ? HEAD(tags) : '') + STYLE;
  const at = html.indexOf('</head>');
  const out = at < 0 ? html : `${html.slice(0, at)}${head}${html.slice(at)}`;
  return indexable ? out.replace(ROBOTS_NOINDEX, '') : out;
}
