import { Inject, Injectable, Logger, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import Parser from 'rss-parser';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../config/src/config.js';
import { ArticlesService } from './articles.service.js';
import { SafeFetchError, safeFetch } from './safe-fetch.js';

const MAX_FEED_BYTES = 5 * 1024 * 1024;

export interface FeedResult {
  status: 'ok' | 'not-modified';
  /** Entries in the feed. */
  items: number;
  created: number;
  updated: number;
  /** Entries past config.feeds.maxItems (the feed's last ones, usually the oldest): not read this poll nor later. */
  skipped: number;
}

export class FeedError extends Error {}

/** A failure whose message is ours and safe to store and show (never a raw parser, socket or body text). */
class PollProblem extends Error {}

type Item = {
  link?: string;
  guid?: string;
  title?: string;
  contentSnippet?: string;
  summary?: string;
  content?: string;
  isoDate?: string;
  pubDate?: string;
  categories?: (string | { _: string })[];
  enclosure?: { url?: string; type?: string };
  'media:content'?: { $?: { url?: string } };
};

function httpUrl(v: string | undefined): string | null {
  if (!v) return null;
  try {
    const u = new URL(v.trim());
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.toString() : null;
  } catch {
    return null;
  }
}

function clip(v: string | undefined, max: number): string | null {
  const t = (v ?? '').replace(/\s+/g, ' ').trim();
  if (!t) return null;
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** RSS 2.0 and Atom feeds: conditional GET (ETag / Last-Modified), items upserted as articles by link. */
@Injectable()
export class FeedsService {
  private readonly logger = new Logger(FeedsService.name);
  private readonly parser = new Parser<Record<string, unknown>, Item>({
    customFields: { item: ['media:content', 'summary'] },
  });

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly articles: ArticlesService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async newslettersWithFeeds(): Promise<{ id: number; slug: string }[]> {
    return this.ds.query(`SELECT id, slug FROM newsletters WHERE feed_url IS NOT NULL ORDER BY id`);
  }

  /** Every newsletter's feed: its URL, when it was last polled and the last error (null when that poll went well). */
  async status(): Promise<
    { slug: string; name: string; feedUrl: string | null; polledAt: Date | null; error: string | null }[]
  > {
    const list: {
      slug: string;
      name: string;
      feed_url: string | null;
      feed_polled_at: Date | null;
      feed_error: string | null;
    }[] = await this.ds.query(`SELECT slug, name, feed_url, feed_polled_at, feed_error FROM newsletters ORDER BY name`);
    return list.map((n) => ({
      slug: n.slug,
      name: n.name,
      feedUrl: n.feed_url,
      polledAt: n.feed_polled_at,
      error: n.feed_error,
    }));
  }

  async pollBySlug(slug: string): Promise<FeedResult> {
    const rows: { id: number; feed_url: string | null }[] = await this.ds.query(
      `SELECT id, feed_url FROM newsletters WHERE slug = $1`,
      [slug],
    );
    if (rows.length === 0) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
    if (!rows[0].feed_url) throw new FeedError(`Newsletter "${slug}" has no feedUrl`);
    return this.poll(rows[0].id);
  }

  /** Polls one feed. A failure is recorded on the newsletter and rethrown as FeedError (retried by the job). */
  async poll(newsletterId: number): Promise<FeedResult> {
    const [n]: {
      slug: string;
      feed_url: string | null;
      feed_etag: string | null;
      feed_last_modified: string | null;
    }[] = await this.ds.query(`SELECT slug, feed_url, feed_etag, feed_last_modified FROM newsletters WHERE id = $1`, [
      newsletterId,
    ]);
    if (!n?.feed_url) return { status: 'not-modified', items: 0, created: 0, updated: 0, skipped: 0 };
    try {
      const result = await this.fetchAndStore(n.slug, n.feed_url, n.feed_etag, n.feed_last_modified, newsletterId);
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
      await this.ds.query(`UPDATE newsletters SET feed_polled_at = now(), feed_error = $2 WHERE id = $1`, [
        newsletterId,
        message,
      ]);
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
      await this.ds.query(`UPDATE newsletters SET feed_polled_at = now(), feed_error = NULL WHERE id = $1`, [
        newsletterId,
      ]);
      return { status: 'not-modified', items: 0, created: 0, updated: 0, skipped: 0 };
    }
    if (res.status < 200 || res.status > 299) throw new PollProblem(`HTTP ${res.status} from the feed`);
    const body = new TextDecoder().decode(res.body);
    let feed: Awaited<ReturnType<Parser<Record<string, unknown>, Item>['parseString']>>;
    try {
      feed = await this.parser.parseString(body);
    } catch (err) {
      // The parser's first line names the syntax problem (e.g. "Unclosed root tag"), not the content.
      const why = (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 120);
      throw new PollProblem(`not a valid RSS or Atom feed (${why})`);
    }
    const all = feed.items ?? [];
    const items = all.slice(0, feeds.maxItems);
    let created = 0;
    let updated = 0;
    for (const item of items) {
      const link = httpUrl(item.link) ?? httpUrl(item.guid);
      const title = clip(item.title, 300);
      if (!link || !title) continue;
      const date = new Date(item.isoDate ?? item.pubDate ?? Date.now());
      const image =
        httpUrl(item.enclosure?.type?.startsWith('image/') ? item.enclosure.url : undefined) ??
        httpUrl(item['media:content']?.$?.url);
      const topics = (item.categories ?? [])
        .map((c) => (typeof c === 'string' ? c : c?._))
        .filter((c): c is string => typeof c === 'string' && c.length > 0 && c.length <= 50)
        .slice(0, 20);
      const r = await this.articles.upsert(
        {
          url: link,
          title,
          summary: clip(item.contentSnippet ?? (typeof item.summary === 'string' ? item.summary : undefined), 1000),
          imageUrl: image,
          topics,
          publishedAt: Number.isNaN(date.getTime()) ? new Date() : date,
          newsletters: [slug],
        },
        'feed',
      );
      if (r.created) created += 1;
      else updated += 1;
    }
    await this.ds.query(
      `UPDATE newsletters SET feed_polled_at = now(), feed_error = NULL, feed_etag = $2, feed_last_modified = $3 WHERE id = $1`,
      [newsletterId, res.headers.etag ?? null, res.headers['last-modified'] ?? null],
    );
    return { status: 'ok', items: all.length, created, updated, skipped: all.length - items.length };
  }
}
