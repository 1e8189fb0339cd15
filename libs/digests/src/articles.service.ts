import { BadRequestException, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';

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

interface ArticleRow {
  url: string;
  title: string;
  summary: string | null;
  image_url: string | null;
  topics: string[];
  published_at: Date;
  newsletters: string[];
}

const view = (r: ArticleRow): ArticleView => ({
  url: r.url,
  title: r.title,
  summary: r.summary,
  imageUrl: r.image_url,
  topics: r.topics,
  publishedAt: r.published_at,
  newsletters: r.newsletters ?? [],
});

/** Articles come in by the API/CMS webhook or by feeds: one upsert keyed by URL. */
@Injectable()
export class ArticlesService {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  private async newsletterIds(em: EntityManager, slugs: string[] | undefined): Promise<number[] | undefined> {
    if (slugs === undefined) return undefined;
    const unique = [...new Set(slugs)];
    const found: { id: number; slug: string }[] = await em.query(
      `SELECT id, slug FROM newsletters WHERE slug = ANY($1::text[])`,
      [unique],
    );
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
      const [row]: { id: string; created: boolean }[] = await tx.query(
        `INSERT INTO articles (url, title, summary, image_url, topics, published_at, source)
         VALUES ($1, $2, $3, $4, $5::text[], $6, $7)
         ON CONFLICT (url) DO UPDATE SET title = EXCLUDED.title, summary = EXCLUDED.summary, image_url = EXCLUDED.image_url,
           topics = EXCLUDED.topics, updated_at = now(),
           published_at = CASE WHEN $8 THEN articles.published_at ELSE EXCLUDED.published_at END
         RETURNING id, (xmax = 0) AS created`,
        [
          input.url,
          input.title,
          input.summary ?? null,
          input.imageUrl ?? null,
          input.topics ?? [],
          new Date(input.publishedAt),
          source,
          input.keepPublishedAt === true,
        ],
      );
      if (ids === undefined && row.created) {
        // A new article that names no newsletter goes to the default one.
        const def: { id: number }[] = await tx.query(`SELECT id FROM newsletters WHERE is_default`);
        ids = def.map((d) => d.id);
      }
      if (ids !== undefined) {
        if (replace)
          await tx.query(
            `DELETE FROM article_newsletters WHERE article_id = $1 AND NOT (newsletter_id = ANY($2::int[]))`,
            [row.id, ids],
          );
        await tx.query(
          `INSERT INTO article_newsletters (article_id, newsletter_id) SELECT $1, unnest($2::int[]) ON CONFLICT DO NOTHING`,
          [row.id, ids],
        );
      }
      const [art] = await this.select(tx, `a.id = $1`, [row.id], 1);
      return { created: row.created, article: art };
    });
  }

  private async select(em: EntityManager, where: string, params: unknown[], limit: number): Promise<ArticleView[]> {
    const list: ArticleRow[] = await em.query(
      `SELECT a.url, a.title, a.summary, a.image_url, a.topics, a.published_at,
         COALESCE((SELECT array_agg(n.slug ORDER BY n.slug) FROM article_newsletters an JOIN newsletters n ON n.id = an.newsletter_id
                   WHERE an.article_id = a.id), '{}') AS newsletters
       FROM articles a WHERE ${where} ORDER BY a.published_at DESC, a.id DESC LIMIT ${Number(limit)}`,
      params,
    );
    return list.map(view);
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
    const pattern = q ? `%${q.replace(/[\\%_]/g, '\\$&')}%` : null;
    const where = `($1::text IS NULL OR a.title ILIKE $1 OR a.url ILIKE $1)
      AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM article_newsletters an JOIN newsletters n ON n.id = an.newsletter_id
                                       WHERE an.article_id = a.id AND n.slug = $2))`;
    const params = [pattern, opts.newsletter || null];
    const [{ total }]: { total: number }[] = await this.ds.query(
      `SELECT count(*)::int AS total FROM articles a WHERE ${where}`,
      params,
    );
    const pageSize = Math.min(Math.max(Math.trunc(opts.pageSize), 1), 200);
    const offset = (Math.max(Math.trunc(opts.page), 1) - 1) * pageSize;
    const list: (ArticleRow & { id: string })[] = await this.ds.query(
      `SELECT a.id::text AS id, a.url, a.title, a.summary, a.image_url, a.topics, a.published_at,
         COALESCE((SELECT array_agg(n.slug ORDER BY n.slug) FROM article_newsletters an JOIN newsletters n ON n.id = an.newsletter_id
                   WHERE an.article_id = a.id), '{}') AS newsletters
       FROM articles a WHERE ${where} ORDER BY a.published_at DESC, a.id DESC LIMIT $3 OFFSET $4`,
      [...params, pageSize, offset],
    );
    return { items: list.map((r) => ({ ...view(r), id: r.id })), total };
  }

  /** One article by id (the console's edit page), or null. */
  async find(id: string): Promise<(ArticleView & { id: string }) | null> {
    if (!/^[1-9]\d{0,17}$/.test(id)) return null;
    const [art] = await this.select(this.ds.manager, `a.id = $1`, [id], 1);
    return art ? { ...art, id } : null;
  }

  async idByUrl(url: string): Promise<string | null> {
    const found: { id: string }[] = await this.ds.query(`SELECT id::text AS id FROM articles WHERE url = $1`, [url]);
    return found[0]?.id ?? null;
  }

  async list(newsletter: string | undefined, limit: number): Promise<ArticleView[]> {
    if (newsletter) {
      const n: unknown[] = await this.ds.query(`SELECT 1 FROM newsletters WHERE slug = $1`, [newsletter]);
      if (n.length === 0) throw new BadRequestException([`newsletter "${newsletter}" does not exist`]);
      return this.select(
        this.ds.manager,
        `EXISTS (SELECT 1 FROM article_newsletters an JOIN newsletters n ON n.id = an.newsletter_id WHERE an.article_id = a.id AND n.slug = $1)`,
        [newsletter],
        limit,
      );
    }
    return this.select(this.ds.manager, 'true', [], limit);
  }
}
