import type { MigrationInterface, QueryRunner } from 'typeorm';

/** When the reconciler last re-queued a digest's batches: it waits before doing it again. */
export class DigestResumed1764200000000 implements MigrationInterface {
  name = 'DigestResumed1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE digests ADD COLUMN resumed_at timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE digests DROP COLUMN resumed_at`);
  }
}
