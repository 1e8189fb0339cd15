import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Topic variants of a digest: a newsletter's `personalize` mode; per digest the topics its
 * variants are keyed on and a note when readers were grouped; one row per variant (its article
 * order and templates), the reader topic sets that map to each, and each delivery's variant.
 */
export class DigestVariants1765300000000 implements MigrationInterface {
  name = 'DigestVariants1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE newsletters ADD COLUMN personalize text NOT NULL DEFAULT 'order'
        CONSTRAINT newsletters_personalize CHECK (personalize IN ('off', 'order', 'only'));
      ALTER TABLE digests ADD COLUMN variant_topics text[], ADD COLUMN variant_note text;
      CREATE TABLE digest_variants (
        digest_id bigint NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
        variant smallint NOT NULL,
        topics text[] NOT NULL,
        article_ids bigint[] NOT NULL,
        readers int NOT NULL DEFAULT 0,
        subject text,
        html_template text,
        text_template text,
        PRIMARY KEY (digest_id, variant)
      );
      CREATE TABLE digest_variant_keys (
        digest_id bigint NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
        topics text[] NOT NULL,
        variant smallint NOT NULL,
        PRIMARY KEY (digest_id, topics)
      );
      ALTER TABLE deliveries ADD COLUMN variant smallint NOT NULL DEFAULT 0;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE deliveries DROP COLUMN variant;
      DROP TABLE digest_variant_keys, digest_variants;
      ALTER TABLE digests DROP COLUMN variant_topics, DROP COLUMN variant_note;
      ALTER TABLE newsletters DROP COLUMN personalize;
    `);
  }
}
