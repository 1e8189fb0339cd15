import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Delivery reports received on the VERP bounce listener: one row per report and reader (the key is
 * a hash of the VERP token and the report's Message-ID, so a report delivered twice is one row).
 * `applied_at` is set once the suppression it calls for is written: a crash between the two is
 * finished by the report's next delivery. The digest's bounces are counted from here.
 */
export class BounceReports1765630000000 implements MigrationInterface {
  name = 'BounceReports1765630000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE bounce_reports (
        id bigserial PRIMARY KEY,
        report_key bytea NOT NULL UNIQUE,
        outcome text NOT NULL CHECK (outcome IN ('bounced','complained','policy','failed')),
        status text,
        mail_kind text NOT NULL CHECK (mail_kind IN ('digest','confirmation','guide','test')),
        digest_id bigint REFERENCES digests(id) ON DELETE CASCADE,
        subscriber_id bigint REFERENCES subscribers(id) ON DELETE CASCADE,
        detail text,
        received_at timestamptz NOT NULL DEFAULT now(),
        applied_at timestamptz
      );
      CREATE INDEX bounce_reports_digest ON bounce_reports (digest_id, outcome) WHERE digest_id IS NOT NULL;
      CREATE INDEX bounce_reports_subscriber ON bounce_reports (subscriber_id) WHERE subscriber_id IS NOT NULL;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS bounce_reports`);
  }
}
