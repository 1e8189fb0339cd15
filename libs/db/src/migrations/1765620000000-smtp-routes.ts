import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SMTP routes per brand: the route a newsletter's mail leaves through (`newsletters.smtp_route`,
 * one of SMTP_ROUTES; null: SMTP_URL), and the per-route send-rate slots (`send_rate_route`),
 * counted like the global `send_rate` ones (unlogged too: a crash loses at most a second of counts).
 */
export class SmtpRoutes1765620000000 implements MigrationInterface {
  name = 'SmtpRoutes1765620000000';

  async up(q: QueryRunner): Promise<void> {
    // A nullable column without a default: a catalog change only, no table rewrite.
    await q.query(`ALTER TABLE newsletters ADD COLUMN IF NOT EXISTS smtp_route text`);
    await q.query(
      `CREATE UNLOGGED TABLE IF NOT EXISTS send_rate_route (
         route text NOT NULL,
         slot bigint NOT NULL,
         n int NOT NULL,
         PRIMARY KEY (route, slot)
       )`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS send_rate_route`);
    await q.query(`ALTER TABLE newsletters DROP COLUMN IF EXISTS smtp_route`);
  }
}
