import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The console searches subscribers by the start of their address (`email LIKE 'prefix%'`). The
 * unique index on email serves that only under the C collation; this one serves it under any.
 */
export class SubscriberEmailSearch1764600000000 implements MigrationInterface {
  name = 'SubscriberEmailSearch1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX IF NOT EXISTS subscribers_email_prefix ON subscribers (email text_pattern_ops)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS subscribers_email_prefix`);
  }
}
