import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The signup funnel per source: when a reader first downloaded the guide of a subscription's
 * newsletter (`guide_downloaded_at`, set once), and an index for "this newsletter's sign-ups since
 * …". No transaction: the index is built CONCURRENTLY, so sign-ups are never blocked while it
 * builds on a large table; every step is idempotent, so a failed run can simply run again.
 */
export class GuideDownloads1765510000000 implements MigrationInterface {
  name = 'GuideDownloads1765510000000';
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    // Adding a nullable column without a default is a catalog change only: no table rewrite.
    await q.query(`ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS guide_downloaded_at timestamptz`);
    // A concurrent build that failed leaves an invalid index behind: drop it and build anew.
    const invalid = (await q.query(
      `SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname = 'subscriptions_newsletter_created' AND NOT i.indisvalid`,
    )) as unknown[];
    if (invalid.length > 0) await q.query(`DROP INDEX CONCURRENTLY IF EXISTS subscriptions_newsletter_created`);
    await q.query(
      `CREATE INDEX CONCURRENTLY IF NOT EXISTS subscriptions_newsletter_created ON subscriptions (newsletter_id, created_at)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS subscriptions_newsletter_created`);
    await q.query(`ALTER TABLE subscriptions DROP COLUMN IF EXISTS guide_downloaded_at`);
  }
}
