import { BadRequestException, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { ArticlesRepository } from './articles.repository.js';

export interface ArticleInput {
  url: string;
  title: string;
  summary?: string | null;
  imageUrl?: string | null;
  topics?: string[];
  publishedAt: string | Date;
  /** An existing article keeps its publication time (a feed entry without a date, polled again). */
  keepPublishedAt?: boolean;
  newsletters?: string[];
}

export interface ArticleView {
  url: string;
  title: string;
  summary: string | null;
  imageUrl: string | null;
  topics: string[];
  publishedAt: Date;
  newsletters: string[];
}

/** Articles come in by the API/CMS webhook or by feeds: one upsert keyed by URL. */
@Injectable()
export class ArticlesService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: ArticlesRepository,
  ) {}

  private async newsletterIds(em: EntityManager, slugs: string[] | undefined): Promise<number[] | undefined> {
    if (slugs === undefined) return undefined;
    const unique = [...new Set(slugs)];
    const found = await this.repo.newslettersBySlug(em, unique);
    const missing = unique.filter((s) => !found.some((f) => f.slug === s));
    if (missing.length)
      throw new BadRequestException([
        `newsletters contains an unknown newsletter: ${missing.map((m) => `"${m}"`).join(', ')}`,
      ]);
    return found.map((f) => f.id);
  }

  /** Returns whether the article was created (201) or updated (200). */
  async upsert(
    input: ArticleInput,
    source: 'api' | 'feed' = 'api',
    em: EntityManager = this.ds.manager,
  ): Promise<{ created: boolean; article: ArticleView }> {
    // The API's newsletters list replaces the article's; a feed only adds its own newsletter.
    const replace = source === 'api';
    return em.transaction(async (tx) => {
      let ids = await this.newsletterIds(tx, input.newsletters);
      const row = await this.repo.upsert(tx, {
        url: input.url,
        title: input.title,
        summary: input.summary ?? null,
        imageUrl: input.imageUrl ?? null,
        topics: input.topics ?? [],
        publishedAt: new Date(input.publishedAt),
        source,
        keepPublishedAt: input.keepPublishedAt === true,
      });
      // A new article that names no newsletter goes to the default one.
      if (ids === undefined && row.created) ids = await this.repo.defaultNewsletterIds(tx);
      if (ids !== undefined) await this.repo.setNewsletters(tx, row.id, ids, replace);
      // Written just now in this transaction: it is there.
      const article = (await this.repo.findById(tx, row.id)) as ArticleView;
      return { created: row.created, article };
    });
  }

  /**
   * The console's article list: latest first, `q` matched (ILIKE, as a literal) against title and
   * URL, optionally one newsletter's, a page at a time.
   */
  async search(opts: {
    q?: string;
    newsletter?: string;
    page: number;
    pageSize: number;
  }): Promise<{ items: (ArticleView & { id: string })[]; total: number }> {
    const q = (opts.q ?? '').trim().slice(0, 200);
    const pageSize = Math.min(Math.max(Math.trunc(opts.pageSize), 1), 200);
    const offset = (Math.max(Math.trunc(opts.page), 1) - 1) * pageSize;
    return this.repo.search({ q, newsletter: opts.newsletter || null, limit: pageSize, offset });
  }

  /** One article by id (the console's edit page), or null. */
  async find(id: string): Promise<(ArticleView & { id: string }) | null> {
    if (!/^[1-9]\d{0,17}$/.test(id)) return null;
    const art = await this.repo.findById(this.ds, id);
    return art ? { ...art, id } : null;
  }

  async idByUrl(url: string): Promise<string | null> {
    return this.repo.idByUrl(url);
  }

  async list(newsletter: string | undefined, limit: number): Promise<ArticleView[]> {
    if (newsletter && !(await this.repo.newsletterExists(newsletter)))
      throw new BadRequestException([`newsletter "${newsletter}" does not exist`]);
    return this.repo.latest(newsletter, limit);
  }
}
