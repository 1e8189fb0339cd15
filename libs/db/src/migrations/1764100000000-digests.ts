import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Digests1764100000000 implements MigrationInterface {
  name = 'Digests1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE newsletters
        ADD COLUMN feed_etag text,
        ADD COLUMN feed_last_modified text,
        ADD COLUMN feed_polled_at timestamptz,
        ADD COLUMN feed_error text;
      ALTER TABLE articles ADD COLUMN source text NOT NULL DEFAULT 'api' CHECK (source IN ('api','feed','seed'));
      CREATE TABLE digests (
        id bigserial PRIMARY KEY,
        newsletter_id int NOT NULL REFERENCES newsletters(id) ON DELETE CASCADE,
        status text NOT NULL CHECK (status IN ('scheduled','sending','sent','cancelled','failed','skipped')),
        trigger text NOT NULL CHECK (trigger IN ('manual','schedule')),
        trigger_key text UNIQUE,
        send_at timestamptz NOT NULL,
        subject text,
        html_template text,
        text_template text,
        recipients int,
        reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
      );
      CREATE INDEX digests_newsletter ON digests (newsletter_id, created_at DESC);
      CREATE INDEX digests_open ON digests (status) WHERE status IN ('scheduled','sending');
      CREATE TABLE digest_articles (
        digest_id bigint NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
        article_id bigint NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        position int NOT NULL,
        PRIMARY KEY (digest_id, article_id)
      );
      CREATE INDEX digest_articles_article ON digest_articles (article_id);
      CREATE TABLE deliveries (
        digest_id bigint NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
        subscriber_id bigint NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        subscription_id bigint NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','sending','sent','failed','skipped')),
        message_id text,
        detail text,
        claimed_at timestamptz,
        finished_at timestamptz,
        PRIMARY KEY (digest_id, subscriber_id)
      );
      CREATE INDEX deliveries_open ON deliveries (digest_id, subscriber_id) WHERE status IN ('pending','sending');
      CREATE UNLOGGED TABLE send_rate (
        slot bigint PRIMARY KEY,
        n int NOT NULL
      );
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE send_rate, deliveries, digest_articles, digests;
      ALTER TABLE articles DROP COLUMN source;
      ALTER TABLE newsletters DROP COLUMN feed_etag, DROP COLUMN feed_last_modified, DROP COLUMN feed_polled_at, DROP COLUMN feed_error;
    `);
  }
}
