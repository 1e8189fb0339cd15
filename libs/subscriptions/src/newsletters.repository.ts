import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';

type Db = EntityManager | DataSource;

/** The newsletters table, for the reads and writes TypeORM's entity repository does not cover. */
@Injectable()
export class NewslettersRepository {
  /** Every newsletter's id, slug, name and default flag (the subscribe path's catalog). */
  async catalog(db: Db): Promise<{ id: number; slug: string; name: string; is_default: boolean }[]> {
    return rows(db, `SELECT id, slug, name, is_default FROM newsletters`);
  }

  /** The names of these newsletters, by name. */
  async names(db: Db, ids: number[]): Promise<string[]> {
    const found = await rows<{ name: string }>(
      db,
      `SELECT name FROM newsletters WHERE id = ANY($1::int[]) ORDER BY name`,
      [ids],
    );
    return found.map((n) => n.name);
  }

  /** The newsletters of these slugs that exist. */
  async bySlugs(db: Db, slugs: string[]): Promise<{ id: number; slug: string }[]> {
    return rows(db, `SELECT id, slug FROM newsletters WHERE slug = ANY($1::text[])`, [slugs]);
  }

  /** The hosted signup box's choices: the default first, then by name, each with its guide's title. */
  async signupChoices(
    db: Db,
  ): Promise<
    { slug: string; name: string; description: string | null; is_default: boolean; guide_title: string | null }[]
  > {
    return rows(
      db,
      `SELECT n.slug, n.name, n.description, n.is_default, g.title AS guide_title FROM newsletters n
       LEFT JOIN guides g ON g.id = n.guide_id ORDER BY n.is_default DESC, n.name`,
    );
  }

  /** No newsletter but `slug` stays the default. */
  async clearDefaultExcept(em: EntityManager, slug: string): Promise<void> {
    await em.query(`UPDATE newsletters SET is_default = false WHERE is_default AND slug <> $1`, [slug]);
  }
}
