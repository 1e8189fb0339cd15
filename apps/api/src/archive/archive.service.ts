import { Injectable } from '@nestjs/common';
import { introHtml } from '#digests/digest-voice.js';
import { SLUG } from '../common/validation.js';
import { PagesService } from '../pages/pages.service.js';
import { rssXml } from './archive-feed.js';
import { type HeadTags, withHead } from './archive-head.js';
import { type ArchivedIssue, type ArchivedNewsletter, ArchiveRepository } from './archive.repository.js';
import { safeUrl } from '#digests/digest-renderer.service.js';

/** Issues per archive page, and in the feed. */
export const PAGE_SIZE = 20;
export const FEED_SIZE = 50;
/** A digest id as the archive links it: no sign, no leading zero, within bigint. */
const ISSUE_ID = /^[1-9]\d{0,17}$/;

/** What a route answers: status, body and headers, for the controller to send as they are. */
export interface ArchiveAnswer {
  status: 200 | 404;
  contentType: string;
  body: string;
  headers: Record<string, string>;
}

/** A plain value from the request (route parameter or query), untouched: anything else is unknown. */
function plain(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** At most `max` characters, cut at a word with an ellipsis. */
function clip(text: string, max: number): string {
  const t = text.replace(/\s+/g, ' ').trim();
  if (t.length <= max) return t;
  const cut = t.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > max / 2 ? cut.slice(0, space) : cut).replace(/[\s,.;:–-]+$/, '')}…`;
}

/** The date of an issue in the newsletter's zone (UTC when it has none or an unknown one). */
function issueDate(date: Date, zone: string | null): string {
  const opts: Intl.DateTimeFormatOptions = { year: 'numeric', month: 'long', day: 'numeric' };
  try {
    return date.toLocaleDateString('en-US', { ...opts, timeZone: zone ?? 'UTC' });
  } catch {
    return date.toLocaleDateString('en-US', { ...opts, timeZone: 'UTC' });
  }
}

/**
 * The public archive of a newsletter: its sent digests as a paged list, each issue's web version,
 * and an RSS feed. Nothing about readers or the send: no greeting, no tokens, no tracked links.
 * Unknown newsletters, those with `archive` off, and issues not sent (or not theirs) are all 404.
 */
@Injectable()
export class ArchiveService {
  constructor(
    private readonly repo: ArchiveRepository,
    private readonly pages: PagesService,
  ) {}

  private archiveUrl(slug: string, page = 1): string {
    const base = `${this.pages.publicUrl}/newsletters/${encodeURIComponent(slug)}/issues`;
    return page > 1 ? `${base}?page=${page}` : base;
  }

  private issueUrl(slug: string, id: string): string {
    return `${this.archiveUrl(slug)}/${id}`;
  }

  private feedUrl(slug: string): string {
    return `${this.archiveUrl(slug)}.rss`;
  }

  private subscribeUrl(slug: string): string {
    return `${this.pages.publicUrl}/subscribe?newsletter=${encodeURIComponent(slug)}`;
  }

  /** A plain summary of an issue: the editor's preheader, else its article titles. */
  private summary(issue: ArchivedIssue): string {
    if (issue.preheader?.trim()) return clip(issue.preheader, 200);
    return issue.titles.length ? clip(`In this issue: ${issue.titles.join(' · ')}`, 200) : '';
  }

  private subject(issue: ArchivedIssue, n: ArchivedNewsletter): string {
    return issue.subject?.trim() || `${n.name}, ${issueDate(issue.sentAt, n.timezone)}`;
  }

  /** The newsletter named by a route's slug, when its archive is public. */
  private async newsletter(rawSlug: unknown): Promise<ArchivedNewsletter | null> {
    const slug = plain(rawSlug);
    if (slug === null || !SLUG.test(slug)) return null;
    return this.repo.newsletter(slug);
  }

  /** Reader-page headers, with images from the articles' sites allowed (article pictures). */
  private headers(cache: string): Record<string, string> {
    const base = this.pages.headers();
    const csp = base['content-security-policy'].replace('img-src data:', 'img-src data: https: http:');
    return { ...base, 'content-security-policy': csp, 'cache-control': cache };
  }

  private html(body: string): ArchiveAnswer {
    return {
      status: 200,
      contentType: 'text/html; charset=utf-8',
      body,
      headers: this.headers('public, max-age=300'),
    };
  }

  /** The 404 page: one message for unknown, switched-off and unsent alike (it tells nothing more). */
  notFound(kind: 'archive' | 'issue', n: ArchivedNewsletter | null = null): ArchiveAnswer {
    const missing =
      kind === 'issue' && n
        ? {
            heading: 'This issue is not in the archive',
            message: `There is no published issue of ${n.name} at this address. It may have been mistyped.`,
            archiveUrl: this.archiveUrl(n.slug),
          }
        : {
            heading: 'No archive here',
            message: 'There is no public newsletter archive at this address. It may have been mistyped.',
            archiveUrl: null,
          };
    const page = this.pages.render('issues', missing.heading, { missing }, { newsletters: n ? [n.name] : [] });
    return {
      status: 404,
      contentType: 'text/html; charset=utf-8',
      body: withHead(page, null, false),
      headers: this.headers('no-cache'),
    };
  }

  /** `GET /newsletters/:slug/issues?page=`: sent issues, newest first, PAGE_SIZE a page. */
  async archive(rawSlug: unknown, rawPage: unknown): Promise<ArchiveAnswer> {
    const n = await this.newsletter(rawSlug);
    if (!n) return this.notFound('archive');
    const pageText = rawPage === undefined ? '1' : plain(rawPage);
    if (pageText === null || !/^[1-9]\d{0,5}$/.test(pageText)) return this.notFound('archive', n);
    const page = Number(pageText);
    const total = await this.repo.countSent(n.id);
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    if (page > pages) return this.notFound('archive', n);
    const issues = await this.repo.sentIssues(n.id, PAGE_SIZE, (page - 1) * PAGE_SIZE);
    const url = this.archiveUrl(n.slug, page);
    const title = page > 1 ? `${n.name} archive, page ${page}` : `${n.name} archive`;
    const description = clip(
      `Every issue of ${n.name} we have sent, newest first.${n.description ? ` ${n.description}` : ''}`,
      200,
    );
    const body = this.pages.render(
      'issues',
      title,
      {
        name: n.name,
        description: n.description,
        listLabel: pages > 1 ? `Issues, page ${page} of ${pages}` : 'Issues',
        issues: issues.map((i) => ({
          url: this.issueUrl(n.slug, i.id),
          subject: this.subject(i, n),
          date: issueDate(i.sentAt, n.timezone),
          iso: i.sentAt.toISOString(),
          summary: this.summary(i),
        })),
        newerUrl: page > 1 ? this.archiveUrl(n.slug, page - 1) : null,
        olderUrl: page < pages ? this.archiveUrl(n.slug, page + 1) : null,
        pager: pages > 1,
        feedUrl: this.feedUrl(n.slug),
        subscribeUrl: this.subscribeUrl(n.slug),
      },
      { newsletters: [n.name] },
    );
    const tags: HeadTags = {
      description,
      url,
      type: 'website',
      siteName: n.name,
      title,
      feedTitle: `${n.name} issues`,
      feedUrl: this.feedUrl(n.slug),
    };
    return this.html(withHead(body, tags, true));
  }

  /** `GET /newsletters/:slug/issues/:id`: the web version of one sent issue, as every reader's copy began. */
  async issue(rawSlug: unknown, rawId: unknown): Promise<ArchiveAnswer> {
    const n = await this.newsletter(rawSlug);
    if (!n) return this.notFound('archive');
    const id = plain(rawId);
    const issue = id !== null && ISSUE_ID.test(id) ? await this.repo.sentIssue(n.id, id) : null;
    if (!issue) return this.notFound('issue', n);
    const articles = (await this.repo.articles(issue.id)).map((a) => ({
      url: safeUrl(a.url),
      title: a.title,
      summary: a.summary,
      imageUrl: safeUrl(a.imageUrl),
      topicLine: a.topics.slice(0, 3).join(' · '),
    }));
    const subject = this.subject(issue, n);
    const date = issueDate(issue.sentAt, n.timezone);
    const url = this.issueUrl(n.slug, issue.id);
    const body = this.pages.render(
      'issue',
      subject,
      {
        name: n.name,
        subject,
        date,
        iso: issue.sentAt.toISOString(),
        // Markdown rendered to safe HTML (no raw HTML, no images, web and mail links only).
        introHtml: introHtml(issue.intro),
        articles,
        archiveUrl: this.archiveUrl(n.slug),
        feedUrl: this.feedUrl(n.slug),
        subscribeUrl: this.subscribeUrl(n.slug),
      },
      { newsletters: [n.name] },
    );
    const tags: HeadTags = {
      description: this.summary(issue) || clip(`An issue of ${n.name}, sent ${date}.`, 200),
      url,
      type: 'article',
      siteName: n.name,
      title: subject,
      feedTitle: `${n.name} issues`,
      feedUrl: this.feedUrl(n.slug),
      publishedTime: issue.sentAt.toISOString(),
      image: articles.find((a) => a.imageUrl?.startsWith('https:'))?.imageUrl ?? null,
    };
    return this.html(withHead(body, tags, true));
  }

  /** `GET /newsletters/:slug/issues.rss`: RSS 2.0 of the newest FEED_SIZE sent issues. */
  async feed(rawSlug: unknown): Promise<ArchiveAnswer> {
    const n = await this.newsletter(rawSlug);
    if (!n) return this.notFound('archive');
    const issues = await this.repo.sentIssues(n.id, FEED_SIZE, 0);
    const body = rssXml({
      title: n.name,
      link: this.archiveUrl(n.slug),
      self: this.feedUrl(n.slug),
      description: n.description?.trim() || `Every issue of ${n.name}, newest first.`,
      items: issues.map((i) => ({
        title: this.subject(i, n),
        url: this.issueUrl(n.slug, i.id),
        publishedAt: i.sentAt,
        description: this.summary(i) || this.subject(i, n),
      })),
    });
    return {
      status: 200,
      contentType: 'application/rss+xml; charset=utf-8',
      body,
      headers: { 'cache-control': 'public, max-age=300', 'x-content-type-options': 'nosniff' },
    };
  }
}
