import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Local-time delivery and "never the same article twice": a schedule's and a digest's `delivery`
 * (`newsletter` or `local`) and a local digest's wall-clock time; one row per wave (readers whose
 * local time falls on one instant) and each delivery's wave; each variant key also names the
 * articles its readers had already been sent (`seen`), which that variant leaves out.
 */
export class DigestWaves1765400000000 implements MigrationInterface {
  name = 'DigestWaves1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE newsletters ADD COLUMN schedule_delivery text NOT NULL DEFAULT 'newsletter'
        CONSTRAINT newsletters_schedule_delivery CHECK (schedule_delivery IN ('newsletter', 'local'));
      ALTER TABLE digests ADD COLUMN delivery text NOT NULL DEFAULT 'newsletter'
        CONSTRAINT digests_delivery CHECK (delivery IN ('newsletter', 'local')),
        ADD COLUMN local_time text;
      CREATE TABLE digest_waves (
        digest_id bigint NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
        wave smallint NOT NULL,
        send_at timestamptz NOT NULL,
        utc_offset text NOT NULL,
        timezone text NOT NULL,
        timezones text[] NOT NULL,
        readers int NOT NULL,
        status text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'sending', 'skipped')),
        reason text,
        PRIMARY KEY (digest_id, wave)
      );
      ALTER TABLE deliveries ADD COLUMN wave smallint NOT NULL DEFAULT 0;
      ALTER TABLE digest_variants ADD COLUMN seen bigint[] NOT NULL DEFAULT '{}';
      ALTER TABLE digest_variant_keys ADD COLUMN seen bigint[] NOT NULL DEFAULT '{}',
        DROP CONSTRAINT digest_variant_keys_pkey, ADD PRIMARY KEY (digest_id, topics, seen);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DELETE FROM digest_variant_keys WHERE seen <> '{}';
      ALTER TABLE digest_variant_keys DROP CONSTRAINT digest_variant_keys_pkey, DROP COLUMN seen,
        ADD PRIMARY KEY (digest_id, topics);
      ALTER TABLE digest_variants DROP COLUMN seen;
      ALTER TABLE deliveries DROP COLUMN wave;
      DROP TABLE digest_waves;
      ALTER TABLE digests DROP COLUMN delivery, DROP COLUMN local_time;
      ALTER TABLE newsletters DROP COLUMN schedule_delivery;
    `);
  }
}
