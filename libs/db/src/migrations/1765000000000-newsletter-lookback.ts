import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `lookback_days`: how old an article not yet carried by a digest may be and still go into the
 * next one. Replaces "published after the last sent digest started", which lost every article
 * that arrived late (a feed polled after the digest, a back-dated CMS entry).
 */
export class NewsletterLookback1765000000000 implements MigrationInterface {
  name = 'NewsletterLookback1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE newsletters ADD COLUMN lookback_days int NOT NULL DEFAULT 7
        CONSTRAINT newsletters_lookback_days_range CHECK (lookback_days BETWEEN 1 AND 365)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE newsletters DROP COLUMN lookback_days`);
  }
}
