import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The editor's voice: a digest's own subject, preheader and Markdown intro (as written; rendered
 * with the issue), and a newsletter's default subject template.
 */
export class DigestVoice1765200000000 implements MigrationInterface {
  name = 'DigestVoice1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE digests
        ADD COLUMN subject_given text CONSTRAINT digests_subject_given_length CHECK (char_length(subject_given) <= 150),
        ADD COLUMN preheader text CONSTRAINT digests_preheader_length CHECK (char_length(preheader) <= 200),
        ADD COLUMN intro text CONSTRAINT digests_intro_length CHECK (char_length(intro) <= 5000)`);
    await q.query(`
      ALTER TABLE newsletters ADD COLUMN subject_template text
        CONSTRAINT newsletters_subject_template_length CHECK (char_length(subject_template) <= 200)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE newsletters DROP COLUMN subject_template`);
    await q.query(`ALTER TABLE digests DROP COLUMN subject_given, DROP COLUMN preheader, DROP COLUMN intro`);
  }
}
