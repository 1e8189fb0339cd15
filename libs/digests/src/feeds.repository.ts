import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';

export interface FeedStatus {
  slug: string;
  name: string;
  feedUrl: string | null;
  polledAt: Date | null;
  error: string | null;
}

/** What a conditional GET of a newsletter's feed needs. */
export interface FeedPollState {
  slug: string;
  feedUrl: string | null;
  etag: string | null;
  lastModified: string | null;
}

/**
 * SQL for each newsletter's feed: its URL, validators (ETag, Last-Modified) and the last poll's
 * time and error. A poll's outcome is recorded only while the URL is still the one polled: a URL
 * changed meanwhile starts with a clean slate.
 */
@Injectable()
export class FeedsRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  async newslettersWithFeeds(): Promise<{ id: number; slug: string }[]> {
    return rows(this.ds, `SELECT id, slug FROM newsletters WHERE feed_url IS NOT NULL ORDER BY id`);
  }

  /** Every newsletter (by name), with or without a feed. */
  async status(): Promise<FeedStatus[]> {
    const list = await rows<{
      slug: string;
      name: string;
      feed_url: string | null;
      feed_polled_at: Date | null;
      feed_error: string | null;
    }>(this.ds, `SELECT slug, name, feed_url, feed_polled_at, feed_error FROM newsletters ORDER BY name`);
    return list.map((n) => ({
      slug: n.slug,
      name: n.name,
      feedUrl: n.feed_url,
      polledAt: n.feed_polled_at,
      error: n.feed_error,
    }));
  }

  async bySlug(slug: string): Promise<{ id: number; feedUrl: string | null } | null> {
    const found = await rows<{ id: number; feedUrl: string | null }>(
      this.ds,
      `SELECT id, feed_url AS "feedUrl" FROM newsletters WHERE slug = $1`,
      [slug],
    );
    return found[0] ?? null;
  }

  async pollState(newsletterId: number): Promise<FeedPollState | null> {
    const found = await rows<FeedPollState>(
      this.ds,
      `SELECT slug, feed_url AS "feedUrl", feed_etag AS etag, feed_last_modified AS "lastModified"
       FROM newsletters WHERE id = $1`,
      [newsletterId],
    );
    return found[0] ?? null;
  }

  async recordFailure(newsletterId: number, url: string, message: string): Promise<void> {
    await this.ds.query(
      `UPDATE newsletters SET feed_polled_at = now(), feed_error = $2 WHERE id = $1 AND feed_url = $3`,
      [newsletterId, message, url],
    );
  }

  async recordNotModified(newsletterId: number, url: string): Promise<void> {
    await this.ds.query(
      `UPDATE newsletters SET feed_polled_at = now(), feed_error = NULL WHERE id = $1 AND feed_url = $2`,
      [newsletterId, url],
    );
  }

  /** A poll that read the feed: its new validators are kept for the next conditional GET. */
  async recordRead(newsletterId: number, url: string, etag: string | null, lastModified: string | null): Promise<void> {
    await this.ds.query(
      `UPDATE newsletters SET feed_polled_at = now(), feed_error = NULL, feed_etag = $2, feed_last_modified = $3
       WHERE id = $1 AND feed_url = $4`,
      [newsletterId, etag, lastModified, url],
    );
  }
}
