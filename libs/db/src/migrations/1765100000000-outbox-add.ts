import type { MigrationInterface, QueryRunner } from 'typeorm';
import { suppressedSql } from '#subscriptions/suppression-check.js';
import { SubscribeRehearsal1764900000000 } from './1764900000000-subscribe-rehearsal.js';

/**
 * One way to add an outbox event: `mailroom_outbox_add(id, type, payload)`, called by
 * OutboxRepository.add and by the subscribe functions, re-created here to call it. Their suppression
 * check comes from suppressedSql (libs/subscriptions), the one definition of "suppressed".
 * Same statements, events and payloads as before.
 */
export class OutboxAdd1765100000000 implements MigrationInterface {
  name = 'OutboxAdd1765100000000';

  async up(q: QueryRunner): Promise<void> {
    // PL/pgSQL keeps the INSERT's plan for the session (a plain SQL function would plan it per call).
    await q.query(`
      CREATE OR REPLACE FUNCTION mailroom_outbox_add(p_id uuid, p_type text, p_payload jsonb)
      RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
      BEGIN
        INSERT INTO outbox (id, type, payload) VALUES (p_id, p_type, p_payload);
      END
      $fn$`);
    const suppressed = suppressedSql('p_suppression_hash', 'opt-in');
    await q.query(`
      CREATE OR REPLACE FUNCTION mailroom_subscribe_steps(
        p_email text, p_name text, p_timezone text, p_suppression_hash bytea, p_newsletter_ids int[],
        p_topics text[], p_source text, p_ip inet, p_user_agent text, p_source_url text,
        p_consent_text text, p_consent_version text, p_confirmations_per_day int,
        p_event_id uuid, p_event_type text, p_rehearsal boolean)
      RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
      DECLARE
        v_subscriber_id bigint;
        v_newsletter_ids int[];
      BEGIN
        -- 1. The subscriber, its pending subscriptions and the consent record (as SubscribeFunction).
        WITH subscriber AS (
          INSERT INTO subscribers (email, name, timezone)
          SELECT p_email, p_name, p_timezone
          WHERE NOT ${suppressed} OR p_rehearsal
          ON CONFLICT (email) DO UPDATE SET
            name = COALESCE(EXCLUDED.name, subscribers.name),
            timezone = COALESCE(EXCLUDED.timezone, subscribers.timezone),
            updated_at = now()
          RETURNING id, status),
        ok AS (SELECT id FROM subscriber WHERE status = 'ok' OR p_rehearsal),
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

        -- 2. With the subscriber's row locked and a fresh snapshot: a confirmation mail, within the limit.
        WITH pending AS (
          SELECT s.subscriber_id, array_agg(s.newsletter_id ORDER BY s.newsletter_id) AS newsletter_ids
          FROM subscriptions s
          WHERE s.subscriber_id = (
              SELECT id FROM subscribers WHERE email = p_email AND (status = 'ok' OR p_rehearsal)
                AND (NOT ${suppressed} OR p_rehearsal))
            AND s.newsletter_id = ANY(p_newsletter_ids) AND s.status = 'pending'
          GROUP BY s.subscriber_id),
        allowed AS (
          INSERT INTO confirmation_requests (subscriber_id)
          SELECT p.subscriber_id FROM pending p
          WHERE (SELECT count(*) FROM confirmation_requests c
                 WHERE c.subscriber_id = p.subscriber_id AND c.created_at > now() - interval '24 hours') < p_confirmations_per_day
          RETURNING subscriber_id)
        SELECT p.subscriber_id, p.newsletter_ids INTO v_subscriber_id, v_newsletter_ids
        FROM pending p JOIN allowed a USING (subscriber_id);
        IF v_subscriber_id IS NOT NULL THEN
          PERFORM mailroom_outbox_add(p_event_id, p_event_type,
            jsonb_build_object('subscriberId', v_subscriber_id::text, 'newsletterIds', v_newsletter_ids));
        END IF;
      END
      $fn$`);
    await q.query(`
      CREATE OR REPLACE FUNCTION mailroom_subscribe(
        p_email text, p_name text, p_timezone text, p_suppression_hash bytea, p_newsletter_ids int[],
        p_topics text[], p_source text, p_ip inet, p_user_agent text, p_source_url text,
        p_consent_text text, p_consent_version text, p_confirmations_per_day int,
        p_event_id uuid, p_event_type text)
      RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
      BEGIN
        -- Neither suppressed (bounced, complained, blocked; an erased hash does not stop a new opt-in)
        -- nor a subscriber out of good standing: the request, for real.
        IF NOT ${suppressed}
           AND NOT EXISTS (SELECT 1 FROM subscribers WHERE email = p_email AND status <> 'ok') THEN
          PERFORM mailroom_subscribe_steps(p_email, p_name, p_timezone, p_suppression_hash, p_newsletter_ids, p_topics,
            p_source, p_ip, p_user_agent, p_source_url, p_consent_text, p_consent_version, p_confirmations_per_day,
            p_event_id, p_event_type, false);
          RETURN;
        END IF;
        -- Otherwise the same statements as for anyone, in a subtransaction undone at once: the same
        -- locks, rows, WAL and commit flush, and nothing of it stays.
        BEGIN
          PERFORM mailroom_subscribe_steps(p_email, p_name, p_timezone, p_suppression_hash, p_newsletter_ids, p_topics,
            p_source, p_ip, p_user_agent, p_source_url, p_consent_text, p_consent_version, p_confirmations_per_day,
            p_event_id, p_event_type, true);
          RAISE SQLSTATE 'MR001';
        EXCEPTION WHEN SQLSTATE 'MR001' THEN NULL;
        END;
      END
      $fn$`);
  }

  async down(q: QueryRunner): Promise<void> {
    // The previous bodies of the subscribe functions (CREATE OR REPLACE), then the function they no longer call.
    await new SubscribeRehearsal1764900000000().up(q);
    await q.query(`DROP FUNCTION IF EXISTS mailroom_outbox_add(uuid, text, jsonb)`);
  }
}
