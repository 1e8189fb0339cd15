import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * DKIM keys per From domain and selector. The private key is stored encrypted (AES-256-GCM under
 * a key derived from APP_SECRET); the public key as base64 DER, as the DNS record's `p=` carries
 * it. At most one active (not retired) key per domain; retired keys stay listed so their DNS
 * records can be left up until mail signed with them has been delivered.
 */
export class DkimKeys1765600000000 implements MigrationInterface {
  name = 'DkimKeys1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE dkim_keys (
        id bigserial PRIMARY KEY,
        domain text NOT NULL,
        selector text NOT NULL,
        public_key text NOT NULL,
        private_key_enc bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        retired_at timestamptz,
        CONSTRAINT dkim_keys_domain_selector UNIQUE (domain, selector)
      );
      CREATE UNIQUE INDEX dkim_keys_one_active ON dkim_keys (domain) WHERE retired_at IS NULL;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS dkim_keys`);
  }
}
