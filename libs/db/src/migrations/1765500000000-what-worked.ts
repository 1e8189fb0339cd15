import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What worked: a newsletter's public archive and link tracking switches, and the clicks on tracked
 * links. A click keeps no IP address and no user agent: only when, on what, by whom, and the
 * verdict (`human`, or `machine` with the rule that said so; see docs/clicks.md).
 */
export class WhatWorked1765500000000 implements MigrationInterface {
  name = 'WhatWorked1765500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE newsletters
        ADD COLUMN archive boolean NOT NULL DEFAULT true,
        ADD COLUMN tracking boolean NOT NULL DEFAULT true;
      ALTER TABLE digests ADD COLUMN tracking boolean NOT NULL DEFAULT false;
      -- No foreign key to digests or articles: every click of an issue would lock the same few rows
      -- (FOR KEY SHARE) from concurrent statements. The recorder inserts only clicks whose digest,
      -- article and reader exist, and the triggers below delete the clicks of deleted ones.
      CREATE TABLE link_clicks (
        id bigserial PRIMARY KEY,
        digest_id bigint NOT NULL,
        article_id bigint NOT NULL,
        subscriber_id bigint NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        clicked_at timestamptz NOT NULL DEFAULT now(),
        verdict text NOT NULL CHECK (verdict IN ('human','machine')),
        reason text CHECK (reason IN ('scanner','prefetch','early','burst')),
        CHECK ((verdict = 'human') = (reason IS NULL))
      );
      CREATE INDEX link_clicks_reader ON link_clicks (digest_id, subscriber_id, clicked_at);
      CREATE INDEX link_clicks_subscriber ON link_clicks (subscriber_id);
      CREATE FUNCTION link_clicks_of_deleted_digests() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM link_clicks c USING gone g WHERE c.digest_id = g.id;
        RETURN NULL;
      END $$;
      CREATE TRIGGER link_clicks_of_deleted_digests AFTER DELETE ON digests
        REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION link_clicks_of_deleted_digests();
      CREATE FUNCTION link_clicks_of_deleted_articles() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM link_clicks c USING gone g WHERE c.article_id = g.id;
        RETURN NULL;
      END $$;
      CREATE TRIGGER link_clicks_of_deleted_articles AFTER DELETE ON articles
        REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION link_clicks_of_deleted_articles();`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER link_clicks_of_deleted_digests ON digests;
      DROP TRIGGER link_clicks_of_deleted_articles ON articles;
      DROP FUNCTION link_clicks_of_deleted_digests(), link_clicks_of_deleted_articles();
      DROP TABLE link_clicks;
      ALTER TABLE digests DROP COLUMN tracking;
      ALTER TABLE newsletters DROP COLUMN archive, DROP COLUMN tracking;`);
  }
}
