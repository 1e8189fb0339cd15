import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A subscription request as one statement: `SELECT mailroom_subscribe(...)` runs the two steps of
 * SubscriptionsRepository.subscribe in one transaction and one round trip, without BEGIN and COMMIT
 * around them. Each statement of a volatile PL/pgSQL function takes a fresh snapshot (READ
 * COMMITTED), so the second still counts what concurrent requests for the same address committed
 * while the first waited for the subscriber's row lock.
 */
export class SubscribeFunction1764700000000 implements MigrationInterface {
  name = 'SubscribeFunction1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION mailroom_subscribe(
        p_email text, p_name text, p_timezone text, p_suppression_hash bytea, p_newsletter_ids int[],
        p_topics text[], p_source text, p_ip inet, p_user_agent text, p_source_url text,
        p_consent_text text, p_consent_version text, p_confirmations_per_day int,
        p_event_id uuid, p_event_type text)
      RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
      BEGIN
        -- 1. The subscriber (unless suppressed), its pending subscriptions and the consent record.
        --    The upsert locks the subscriber's row until the end of the transaction.
        WITH subscriber AS (
          INSERT INTO subscribers (email, name, timezone)
          SELECT p_email, p_name, p_timezone
          WHERE NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = p_suppression_hash AND reason <> 'erased')
          ON CONFLICT (email) DO UPDATE SET
            name = COALESCE(EXCLUDED.name, subscribers.name),
            timezone = COALESCE(EXCLUDED.timezone, subscribers.timezone),
            updated_at = now()
          RETURNING id, status),
        ok AS (SELECT id FROM subscriber WHERE status = 'ok'),
        consent AS (
          INSERT INTO consent_records (subscriber_id, newsletter_id, action, ip, user_agent, source_url, consent_text, consent_version)
          SELECT ok.id, nid, 'subscribe', p_ip, p_user_agent, p_source_url, p_consent_text, p_consent_version
          FROM ok, unnest(p_newsletter_ids) AS nid)
        INSERT INTO subscriptions (subscriber_id, newsletter_id, status, topics, source)
        SELECT ok.id, nid, 'pending', p_topics, p_source FROM ok, unnest(p_newsletter_ids) AS nid
        ON CONFLICT (subscriber_id, newsletter_id) DO UPDATE SET
          status = CASE WHEN subscriptions.status = 'unsubscribed' THEN 'pending' ELSE subscriptions.status END,
          unsubscribed_at = CASE WHEN subscriptions.status = 'unsubscribed' THEN NULL ELSE subscriptions.unsubscribed_at END,
          topics = CASE WHEN cardinality(EXCLUDED.topics) > 0 THEN EXCLUDED.topics ELSE subscriptions.topics END,
          source = COALESCE(EXCLUDED.source, subscriptions.source);

        -- 2. With the lock held and a fresh snapshot: a confirmation mail, within the daily limit.
        WITH pending AS (
          SELECT s.subscriber_id, array_agg(s.newsletter_id ORDER BY s.newsletter_id) AS newsletter_ids
          FROM subscriptions s
          WHERE s.subscriber_id = (
              SELECT id FROM subscribers WHERE email = p_email AND status = 'ok'
                AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = p_suppression_hash AND reason <> 'erased'))
            AND s.newsletter_id = ANY(p_newsletter_ids) AND s.status = 'pending'
          GROUP BY s.subscriber_id),
        allowed AS (
          INSERT INTO confirmation_requests (subscriber_id)
          SELECT p.subscriber_id FROM pending p
          WHERE (SELECT count(*) FROM confirmation_requests c
                 WHERE c.subscriber_id = p.subscriber_id AND c.created_at > now() - interval '24 hours') < p_confirmations_per_day
          RETURNING subscriber_id)
        INSERT INTO outbox (id, type, payload)
        SELECT p_event_id, p_event_type, jsonb_build_object('subscriberId', p.subscriber_id::text, 'newsletterIds', p.newsletter_ids)
        FROM pending p JOIN allowed a USING (subscriber_id);
      END
      $fn$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `DROP FUNCTION IF EXISTS mailroom_subscribe(text, text, text, bytea, int[], text[], text, inet, text, text, text, text, int, uuid, text)`,
    );
  }
}
