import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Init1764000000000 implements MigrationInterface {
  name = 'Init1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE guides (
        id serial PRIMARY KEY,
        slug text NOT NULL UNIQUE,
        title text NOT NULL,
        description text,
        file_name text NOT NULL,
        content_type text NOT NULL DEFAULT 'text/html; charset=utf-8',
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE newsletters (
        id serial PRIMARY KEY,
        slug text NOT NULL UNIQUE,
        name text NOT NULL,
        description text,
        from_name text,
        from_email text,
        guide_id int REFERENCES guides(id) ON DELETE SET NULL,
        feed_url text,
        is_default boolean NOT NULL DEFAULT false,
        schedule_cron text,
        schedule_timezone text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX newsletters_one_default ON newsletters (is_default) WHERE is_default;
      CREATE TABLE subscribers (
        id bigserial PRIMARY KEY,
        email text NOT NULL UNIQUE,
        name text,
        timezone text,
        status text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok','bounced','complained','suppressed')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE subscriptions (
        id bigserial PRIMARY KEY,
        subscriber_id bigint NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        newsletter_id int NOT NULL REFERENCES newsletters(id) ON DELETE CASCADE,
        status text NOT NULL CHECK (status IN ('pending','active','unsubscribed')),
        topics text[] NOT NULL DEFAULT '{}',
        source text,
        created_at timestamptz NOT NULL DEFAULT now(),
        confirmed_at timestamptz,
        unsubscribed_at timestamptz,
        guide_sent_at timestamptz,
        UNIQUE (subscriber_id, newsletter_id)
      );
      CREATE INDEX subscriptions_newsletter_status ON subscriptions (newsletter_id, status, subscriber_id);
      CREATE TABLE consent_records (
        id bigserial PRIMARY KEY,
        subscriber_id bigint REFERENCES subscribers(id) ON DELETE CASCADE,
        newsletter_id int REFERENCES newsletters(id) ON DELETE SET NULL,
        action text NOT NULL CHECK (action IN ('subscribe','confirm','unsubscribe','preferences','import')),
        ip inet,
        user_agent text,
        source_url text,
        consent_text text,
        consent_version text,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX consent_records_subscriber ON consent_records (subscriber_id, created_at);
      CREATE TABLE tokens (
        id bigserial PRIMARY KEY,
        token_hash bytea NOT NULL UNIQUE,
        purpose text NOT NULL CHECK (purpose IN ('confirm')),
        subscriber_id bigint NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        newsletter_ids int[] NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE confirmation_requests (
        id bigserial PRIMARY KEY,
        subscriber_id bigint NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX confirmation_requests_subscriber ON confirmation_requests (subscriber_id, created_at);
      CREATE TABLE outbox (
        id uuid PRIMARY KEY,
        type text NOT NULL,
        payload jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        dispatched_at timestamptz,
        handled_at timestamptz
      );
      CREATE INDEX outbox_pending ON outbox (created_at) WHERE dispatched_at IS NULL;
      CREATE TABLE mail_log (
        id bigserial PRIMARY KEY,
        subscriber_id bigint REFERENCES subscribers(id) ON DELETE CASCADE,
        newsletter_id int REFERENCES newsletters(id) ON DELETE SET NULL,
        kind text NOT NULL,
        message_id text,
        status text NOT NULL CHECK (status IN ('sent','failed','skipped')),
        detail text,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX mail_log_subscriber ON mail_log (subscriber_id, created_at);
      CREATE TABLE suppressions (
        id bigserial PRIMARY KEY,
        email_hash bytea NOT NULL UNIQUE,
        reason text NOT NULL,
        detail text,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE articles (
        id bigserial PRIMARY KEY,
        url text NOT NULL UNIQUE,
        title text NOT NULL,
        summary text,
        image_url text,
        topics text[] NOT NULL DEFAULT '{}',
        published_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE article_newsletters (
        article_id bigint NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        newsletter_id int NOT NULL REFERENCES newsletters(id) ON DELETE CASCADE,
        PRIMARY KEY (newsletter_id, article_id)
      );
      CREATE INDEX articles_published ON articles (published_at DESC);
      CREATE TABLE api_keys (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        key_hash bytea NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz
      );
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE api_keys, article_newsletters, articles, suppressions, mail_log, outbox, confirmation_requests, tokens,
        consent_records, subscriptions, subscribers, newsletters, guides;
    `);
  }
}
