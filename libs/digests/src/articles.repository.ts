import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';
import type { ArticleView } from './articles.service.js';

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

/** An article's columns and its newsletters' slugs (sorted), as an ArticleRow. */
const ARTICLE_COLUMNS = `a.url, a.title, a.summary, a.image_url, a.topics, a.published_at,
  COALESCE((SELECT array_agg(n.slug ORDER BY n.slug) FROM article_newsletters an JOIN newsletters n ON n.id = an.newsletter_id
            WHERE an.article_id = a.id), '{}') AS newsletters`;

/** Articles of one newsletter, by slug (`$1`). */
const IN_NEWSLETTER = `EXISTS (SELECT 1 FROM article_newsletters an JOIN newsletters n ON n.id = an.newsletter_id
  WHERE an.article_id = a.id AND n.slug = $1)`;

export interface ArticleRecord {
  url: string;
  title: string;
  summary: string | null;
  imageUrl: string | null;
  topics: string[];
  publishedAt: Date;
  source: 'api' | 'feed';
  /** An existing article keeps its publication time. */
  keepPublishedAt: boolean;
}

type Db = EntityManager | DataSource;

/** SQL for articles and the newsletters each belongs to. */
@Injectable()
export class ArticlesRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** The newsletters of these slugs that exist (unknown slugs are left out). */
  async newslettersBySlug(db: Db, slugs: string[]): Promise<{ id: number; slug: string }[]> {
    return rows(db, `SELECT id, slug FROM newsletters WHERE slug = ANY($1::text[])`, [slugs]);
  }

  async defaultNewsletterIds(db: Db): Promise<number[]> {
    const def = await rows<{ id: number }>(db, `SELECT id FROM newsletters WHERE is_default`);
    return def.map((d) => d.id);
  }

  async newsletterExists(slug: string): Promise<boolean> {
    const n = await rows(this.ds, `SELECT 1 FROM newsletters WHERE slug = $1`, [slug]);
    return n.length > 0;
  }

  /** Insert, or update the article of that URL; `created` tells which. */
  async upsert(db: Db, a: ArticleRecord): Promise<{ id: string; created: boolean }> {
    const [row] = await rows<{ id: string; created: boolean }>(
      db,
      `INSERT INTO articles (url, title, summary, image_url, topics, published_at, source)
       VALUES ($1, $2, $3, $4, $5::text[], $6, $7)
       ON CONFLICT (url) DO UPDATE SET title = EXCLUDED.title, summary = EXCLUDED.summary, image_url = EXCLUDED.image_url,
         topics = EXCLUDED.topics, updated_at = now(),
         published_at = CASE WHEN $8 THEN articles.published_at ELSE EXCLUDED.published_at END
       RETURNING id, (xmax = 0) AS created`,
      [a.url, a.title, a.summary, a.imageUrl, a.topics, a.publishedAt, a.source, a.keepPublishedAt],
    );
    return row;
  }

  /** Adds the article to these newsletters; with `replace`, also removes it from every other one. */
  async setNewsletters(db: Db, articleId: string, newsletterIds: number[], replace: boolean): Promise<void> {
    if (replace)
      await db.query(`DELETE FROM article_newsletters WHERE article_id = $1 AND NOT (newsletter_id = ANY($2::int[]))`, [
        articleId,
        newsletterIds,
      ]);
    await db.query(
      `INSERT INTO article_newsletters (article_id, newsletter_id) SELECT $1, unnest($2::int[]) ON CONFLICT DO NOTHING`,
      [articleId, newsletterIds],
    );
  }

  async findById(db: Db, id: string): Promise<ArticleView | null> {
    const [art] = await this.select(db, `a.id = $1`, [id], 1);
    return art ?? null;
  }

  /** Latest first, of one newsletter (by slug) or of all. */
  async latest(newsletter: string | undefined, limit: number): Promise<ArticleView[]> {
    if (newsletter) return this.select(this.ds, IN_NEWSLETTER, [newsletter], limit);
    return this.select(this.ds, 'true', [], limit);
  }

  async idByUrl(url: string): Promise<string | null> {
    const found = await rows<{ id: string }>(this.ds, `SELECT id::text AS id FROM articles WHERE url = $1`, [url]);
    return found[0]?.id ?? null;
  }

  /**
   * Latest first, `q` matched (ILIKE, as a literal: `%`, `_` and `\` escaped) against title and
   * URL, optionally one newsletter's; one page, and how many match in all.
   */
  async search(opts: {
    q: string;
    newsletter: string | null;
    limit: number;
    offset: number;
  }): Promise<{ items: (ArticleView & { id: string })[]; total: number }> {
    const pattern = opts.q ? `%${opts.q.replace(/[\\%_]/g, '\\$&')}%` : null;
    const where = `($1::text IS NULL OR a.title ILIKE $1 OR a.url ILIKE $1)
      AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM article_newsletters an JOIN newsletters n ON n.id = an.newsletter_id
                                       WHERE an.article_id = a.id AND n.slug = $2))`;
    const params = [pattern, opts.newsletter];
    const [{ total }] = await rows<{ total: number }>(
      this.ds,
      `SELECT count(*)::int AS total FROM articles a WHERE ${where}`,
      params,
    );
    const list = await rows<ArticleRow & { id: string }>(
      this.ds,
      `SELECT a.id::text AS id, ${ARTICLE_COLUMNS}
       FROM articles a WHERE ${where} ORDER BY a.published_at DESC, a.id DESC LIMIT $3 OFFSET $4`,
      [...params, opts.limit, opts.offset],
    );
    return { items: list.map((r) => ({ ...view(r), id: r.id })), total };
  }

  private async select(db: Db, where: string, params: unknown[], limit: number): Promise<ArticleView[]> {
    const list = await rows<ArticleRow>(
      db,
      `SELECT ${ARTICLE_COLUMNS}
       FROM articles a WHERE ${where} ORDER BY a.published_at DESC, a.id DESC LIMIT ${Number(limit)}`,
      params,
    );
    return list.map(view);
  }
}
