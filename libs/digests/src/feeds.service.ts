import { Inject, Injectable, Logger, NotFoundException } from '@nestjs/common';
import { QueryFailedError } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { ArticlesService } from './articles.service.js';
import { decodeFeed } from './feed-charset.js';
import { FeedSyntaxError, readFeed } from './feed-reader.js';
import { type FeedStatus, FeedsRepository } from './feeds.repository.js';
import { SafeFetchError, safeFetch } from './safe-fetch.js';

const MAX_FEED_BYTES = 5 * 1024 * 1024;
/** Longest article URL kept (as the API's limit). */
const MAX_URL_LENGTH = 2048;
/** Per poll, at most this many skipped entries are logged one by one. */
const LOGGED_PROBLEMS = 10;

export interface FeedResult {
  status: 'ok' | 'not-modified';
  /** Entries in the feed. */
  items: number;
  created: number;
  updated: number;
  /** Entries past config.feeds.maxItems (the feed's last ones, usually the oldest): not read this poll nor later. */
  skipped: number;
  /** Entries read but not stored: no link or title, an unreadable or implausible date (each logged). */
  invalid: number;
}

export class FeedError extends Error {}

/** A failure whose message is ours and safe to store and show (never a raw parser, socket or body text). */
class PollProblem extends Error {}

function clip(v: string | null, max: number): string | null {
  const t = (v ?? '').replace(/\s+/g, ' ').trim();
  if (!t) return null;
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/**
 * RSS and Atom feeds: conditional GET (ETag / Last-Modified), entries upserted as articles by link,
 * each on its own (see feed-reader.ts): one bad entry is counted as `invalid`, logged and skipped.
 */
@Injectable()
export class FeedsService {
  private readonly logger = new Logger(FeedsService.name);

  constructor(
    private readonly repo: FeedsRepository,
    private readonly articles: ArticlesService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async newslettersWithFeeds(): Promise<{ id: number; slug: string }[]> {
    return this.repo.newslettersWithFeeds();
  }

  /** Every newsletter's feed: its URL, when it was last polled and the last error (null when that poll went well). */
  async status(): Promise<FeedStatus[]> {
    return this.repo.status();
  }

  async pollBySlug(slug: string): Promise<FeedResult> {
    const n = await this.repo.bySlug(slug);
    if (!n) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
    if (!n.feedUrl) throw new FeedError(`Newsletter "${slug}" has no feedUrl`);
    return this.poll(n.id);
  }

  /** Polls one feed. A failure is recorded on the newsletter and rethrown as FeedError (retried by the job). */
  async poll(newsletterId: number): Promise<FeedResult> {
    const n = await this.repo.pollState(newsletterId);
    if (!n?.feedUrl) return { status: 'not-modified', items: 0, created: 0, updated: 0, skipped: 0, invalid: 0 };
    try {
      const result = await this.fetchAndStore(n.slug, n.feedUrl, n.etag, n.lastModified, newsletterId);
      if (result.invalid > 0)
        this.logger.warn(`Feed of ${n.slug}: ${result.invalid} of ${result.items} entries could not be stored`);
      if (result.skipped > 0) {
        this.logger.warn(
          `Feed of ${n.slug}: read the first ${this.config.feeds.maxItems} of ${result.items} entries, skipped ${result.skipped}`,
        );
      }
      return result;
    } catch (err) {
      const known = err instanceof SafeFetchError || err instanceof PollProblem;
      if (!known) this.logger.error(`Feed of ${n.slug} failed unexpectedly`, err instanceof Error ? err.stack : err);
      const message = (known ? err.message : 'the feed could not be polled (internal error)').slice(0, 500);
      // Only while the URL is the one polled: a URL changed meanwhile starts with a clean slate.
      await this.repo.recordFailure(newsletterId, n.feedUrl, message);
      this.logger.warn(`Feed of ${n.slug} failed: ${message}`);
      throw new FeedError(`Feed of ${n.slug} failed: ${message}`);
    }
  }

  private async fetchAndStore(
    slug: string,
    url: string,
    etag: string | null,
    lastModified: string | null,
    newsletterId: number,
  ): Promise<FeedResult> {
    const headers: Record<string, string> = {
      'user-agent': 'Mailroom feed poller',
      accept: 'application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1',
    };
    if (etag) headers['if-none-match'] = etag;
    if (lastModified) headers['if-modified-since'] = lastModified;
    const { feeds } = this.config;
    const res = await safeFetch(url, {
      headers,
      timeoutMs: feeds.timeoutMs,
      maxBytes: MAX_FEED_BYTES,
      maxBytesLabel: '5 MB',
      allowPrivate: feeds.allowPrivate,
      allowedPorts: feeds.allowedPorts,
    });
    if (res.status === 304) {
      await this.repo.recordNotModified(newsletterId, url);
      return { status: 'not-modified', items: 0, created: 0, updated: 0, skipped: 0, invalid: 0 };
    }
    if (res.status < 200 || res.status > 299) throw new PollProblem(`HTTP ${res.status} from the feed`);
    // BOM, then the HTTP charset, then the XML declaration (feed-charset.ts).
    const { text } = decodeFeed(res.body, res.headers['content-type']);
    const now = new Date();
    let all: ReturnType<typeof readFeed>;
    try {
      // Relative links resolve against xml:base, else the URL the feed was finally read from.
      all = readFeed(text, res.url, now);
    } catch (err) {
      if (!(err instanceof FeedSyntaxError)) throw err;
      throw new PollProblem(`not a valid RSS or Atom feed (${err.message})`);
    }
    const items = all.slice(0, feeds.maxItems);
    let created = 0;
    let updated = 0;
    let invalid = 0;
    const problem = (i: number, why: string) => {
      invalid += 1;
      if (invalid <= LOGGED_PROBLEMS) this.logger.warn(`Feed of ${slug}: entry ${i + 1} skipped: ${why}`);
    };
    for (const [i, outcome] of items.entries()) {
      if (!outcome.ok) {
        problem(i, outcome.problem);
        continue;
      }
      const e = outcome.entry;
      const title = clip(e.title, 300);
      if (!e.url || e.url.length > MAX_URL_LENGTH) {
        problem(i, e.url ? 'link longer than 2048 characters' : 'no http(s) link');
        continue;
      }
      if (!title) {
        problem(i, 'no title');
        continue;
      }
      try {
        const r = await this.articles.upsert(
          {
            url: e.url,
            title,
            summary: clip(e.summary, 1000),
            imageUrl: e.imageUrl && e.imageUrl.length <= MAX_URL_LENGTH ? e.imageUrl : null,
            topics: e.topics,
            // An undated entry: the poll time when first seen, kept on later polls.
            publishedAt: e.publishedAt ?? now,
            keepPublishedAt: e.publishedAt === null,
            newsletters: [slug],
          },
          'feed',
        );
        if (r.created) created += 1;
        else updated += 1;
      } catch (err) {
        // A value the database refuses (SQLSTATE class 22, e.g. a NUL byte) loses that entry only.
        const code = err instanceof QueryFailedError ? (err.driverError as { code?: string }).code : undefined;
        if (!code?.startsWith('22')) throw err;
        problem(i, `refused by the database (${code})`);
      }
    }
    await this.repo.recordRead(newsletterId, url, res.headers.etag ?? null, res.headers['last-modified'] ?? null);
    return { status: 'ok', items: all.length, created, updated, skipped: all.length - items.length, invalid };
  }
}
