import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Revocation notices for the digest sender: whatever makes a claimed delivery unsendable (a
 * subscription leaving `active`, a subscriber leaving `ok` or erased, a digest leaving `sending`)
 * sends `NOTIFY mailroom_revocations` with `n:<subscription id>`, `s:<subscriber id>` or
 * `d:<digest id>`, delivered when its transaction commits. Triggers, so that every path (one-click
 * unsubscribe, preference centre, admin PATCH, bounce webhooks, erasure, cancel) is covered.
 * A worker that listens may claim rows further ahead of sending them: a revocation that commits
 * after the claim still reaches it before the message is handed to SMTP.
 */
export class RevocationNotices1764800000000 implements MigrationInterface {
  name = 'RevocationNotices1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION mailroom_notify_revocation() RETURNS trigger LANGUAGE plpgsql AS $fn$
      DECLARE
        tag text := CASE TG_TABLE_NAME WHEN 'subscriptions' THEN 'n:' WHEN 'subscribers' THEN 's:' ELSE 'd:' END;
      BEGIN
        PERFORM pg_notify('mailroom_revocations', tag || OLD.id::text);
        RETURN NULL;
      END
      $fn$`);
    await q.query(`
      CREATE TRIGGER subscriptions_revoked AFTER UPDATE OF status ON subscriptions FOR EACH ROW
        WHEN (OLD.status = 'active' AND NEW.status IS DISTINCT FROM 'active')
        EXECUTE FUNCTION mailroom_notify_revocation()`);
    await q.query(`
      CREATE TRIGGER subscriptions_deleted AFTER DELETE ON subscriptions FOR EACH ROW
        WHEN (OLD.status = 'active') EXECUTE FUNCTION mailroom_notify_revocation()`);
    await q.query(`
      CREATE TRIGGER subscribers_revoked AFTER UPDATE OF status ON subscribers FOR EACH ROW
        WHEN (OLD.status = 'ok' AND NEW.status IS DISTINCT FROM 'ok')
        EXECUTE FUNCTION mailroom_notify_revocation()`);
    await q.query(`
      CREATE TRIGGER subscribers_deleted AFTER DELETE ON subscribers FOR EACH ROW
        EXECUTE FUNCTION mailroom_notify_revocation()`);
    await q.query(`
      CREATE TRIGGER digests_stopped AFTER UPDATE OF status ON digests FOR EACH ROW
        WHEN (OLD.status = 'sending' AND NEW.status IS DISTINCT FROM 'sending')
        EXECUTE FUNCTION mailroom_notify_revocation()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER IF EXISTS digests_stopped ON digests`);
    await q.query(`DROP TRIGGER IF EXISTS subscribers_deleted ON subscribers`);
    await q.query(`DROP TRIGGER IF EXISTS subscribers_revoked ON subscribers`);
    await q.query(`DROP TRIGGER IF EXISTS subscriptions_deleted ON subscriptions`);
    await q.query(`DROP TRIGGER IF EXISTS subscriptions_revoked ON subscriptions`);
    await q.query(`DROP FUNCTION IF EXISTS mailroom_notify_revocation()`);
  }
}
