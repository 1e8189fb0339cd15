import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type pg from 'pg';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { GroupWriter } from '#db/group-writer.js';
import { sidePool } from '#db/prepared-pg.service.js';
import { type ClickToken, clickKey, verifyClickToken } from '#digests/click-tokens.js';
import { requestVerdict } from './click-verdict.js';
import { articleUrl, type ClickRecord, recordClicks } from './clicks.repository.js';

/** Clicks waiting for their statement at most; past this a flood is redirected but not recorded. */
export const MAX_WAITING_CLICKS = 20_000;
/** Article URLs kept in memory (digest and article → URL): a click needs no query but its record. */
const URL_CACHE = 10_000;

/**
 * Tracked links: verifies a token, finds the article it names and records the click, group
 * committed (every click waiting when a statement starts goes in that one statement).
 */
@Injectable()
export class ClickRecorder implements OnApplicationShutdown {
  private readonly logger = new Logger(ClickRecorder.name);
  private readonly key: Buffer;
  private pool: pg.Pool | null = null;
  private readonly writer: GroupWriter<ClickRecord>;
  private readonly urls = new Map<string, string>();
  private waiting = 0;
  private closed = false;
  private readonly unwritten = new Set<Promise<void>>();
  private lastDropWarning = 0;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.key = clickKey(config.appSecret);
    this.writer = new GroupWriter<ClickRecord>(
      (clicks) => recordClicks(this.db(), clicks),
      (click) => recordClicks(this.db(), [click]),
      { maxTrips: 2, maxGroup: 500 },
    );
  }

  private db(): pg.Pool {
    if (this.closed) throw new Error('the api is shutting down');
    this.pool ??= sidePool(this.ds, { max: 4 }, this.logger, 'click');
    return this.pool;
  }

  verify(token: string): ClickToken | null {
    return token.length > 200 ? null : verifyClickToken(this.key, token);
  }

  /** Where the token's link goes: its article's URL, or null when the digest or article is gone. */
  target(t: ClickToken): string | Promise<string | null> {
    const k = `${t.digestId}:${t.articleId}`;
    const cached = this.urls.get(k);
    if (cached) return cached;
    return this.lookUp(t, k);
  }

  private async lookUp(t: ClickToken, k: string): Promise<string | null> {
    const url = await articleUrl(this.db(), t.digestId, t.articleId);
    if (url) {
      if (this.urls.size >= URL_CACHE) this.urls.delete(this.urls.keys().next().value as string);
      this.urls.set(k, url);
    }
    return url;
  }

  /**
   * Records a click: queued for the next group statement, not waited for (a reader gets to the
   * article whether or not the click could be written; a failure is logged). Every click queued is
   * written before the api shuts down.
   */
  record(t: ClickToken, headers: Record<string, string | string[] | undefined>): void {
    if (!t.subscriberId) return;
    if (this.waiting >= MAX_WAITING_CLICKS) {
      if (Date.now() - this.lastDropWarning > 60_000) {
        this.lastDropWarning = Date.now();
        this.logger.warn(`clicks: ${this.waiting} waiting to be written; clicks past that are not recorded`);
      }
      return;
    }
    this.waiting += 1;
    const written = this.writer
      .write({
        digestId: t.digestId,
        articleId: t.articleId,
        subscriberId: t.subscriberId,
        clickedAt: new Date(),
        reason: requestVerdict(headers),
      })
      .catch((err: unknown) => this.logger.warn(`clicks: a click could not be recorded: ${(err as Error).message}`))
      .finally(() => {
        this.waiting -= 1;
        this.unwritten.delete(written);
      });
    this.unwritten.add(written);
  }

  /** Clicks queued and not yet written (or failed). */
  get pending(): number {
    return this.waiting;
  }

  /** Last, after the HTTP server stopped taking requests: the clicks it answered are written first. */
  async onApplicationShutdown(): Promise<void> {
    while (this.unwritten.size > 0) await Promise.all([...this.unwritten]);
    this.closed = true;
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }
}
