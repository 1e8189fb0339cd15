import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Outgoing webhooks: endpoints, one delivery row per (event, endpoint) and every attempt.
 * Delivery rows are written by triggers, so every path that confirms, unsubscribes, suppresses
 * or finishes a digest (TypeScript, PL/pgSQL subscribe functions, imports) writes its events in
 * its own transaction, with nothing to forget. With no endpoint listening, a trigger costs one
 * lookup in a tiny table, and pending sign-ups do not run it at all (WHEN clauses).
 */
export class WebhookEndpoints1765610000000 implements MigrationInterface {
  name = 'WebhookEndpoints1765610000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE webhook_endpoints (
        id uuid PRIMARY KEY,
        url text NOT NULL,
        events text[] NOT NULL,
        -- AES-256-GCM under a key derived from APP_SECRET: it must be readable to sign.
        secret_sealed text NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE webhook_deliveries (
        id uuid PRIMARY KEY,
        endpoint_id uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
        -- The reader the event is about: erasing them erases their events too.
        subscriber_id bigint REFERENCES subscribers(id) ON DELETE CASCADE,
        type text NOT NULL,
        payload jsonb NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        -- Set while a worker's POST is under way (its claim); a crashed worker's claim runs out.
        claimed_until timestamptz,
        -- Retries run for a window from here (creation, or the last replay).
        window_start timestamptz NOT NULL DEFAULT now(),
        last_status_code int,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz
      );
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending';
      CREATE INDEX webhook_deliveries_claimed ON webhook_deliveries (endpoint_id) WHERE claimed_until IS NOT NULL;
      CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
      CREATE INDEX webhook_deliveries_subscriber ON webhook_deliveries (subscriber_id) WHERE subscriber_id IS NOT NULL;
      CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at) WHERE status <> 'pending';
      CREATE TABLE webhook_attempts (
        id bigserial PRIMARY KEY,
        delivery_id uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
        attempted_at timestamptz NOT NULL DEFAULT now(),
        status_code int,
        error text,
        duration_ms int NOT NULL,
        response_excerpt text
      );
      CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id DESC);

      -- One delivery per endpoint that listens to this event type, in the caller's transaction. A paused
      -- (disabled) endpoint's deliveries wait until it is enabled again.
      CREATE FUNCTION mailroom_webhook_emit(p_type text, p_subscriber bigint, p_data jsonb) RETURNS void
      LANGUAGE plpgsql AS $$
      BEGIN
        -- PL/pgSQL rather than SQL: its plans are cached for the session, a SQL function's are not.
        INSERT INTO webhook_deliveries (id, endpoint_id, subscriber_id, type, payload)
        SELECT gen_random_uuid(), e.id, p_subscriber, p_type,
               jsonb_build_object(
                 'type', p_type,
                 'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                 'data', p_data)
        FROM webhook_endpoints e
        WHERE p_type = ANY (e.events);
      END $$;

      CREATE FUNCTION mailroom_webhook_listening(p_type text) RETURNS boolean
      LANGUAGE plpgsql STABLE AS $$
      BEGIN
        RETURN EXISTS (SELECT 1 FROM webhook_endpoints WHERE p_type = ANY (events));
      END $$;

      -- subscription.confirmed (pending or unsubscribed -> active, or inserted active by an import)
      -- and subscription.unsubscribed (active -> unsubscribed).
      CREATE FUNCTION mailroom_webhook_subscription() RETURNS trigger
      LANGUAGE plpgsql AS $$
      DECLARE
        t text;
        d jsonb;
      BEGIN
        IF NEW.status = 'active' THEN
          t := 'subscription.confirmed';
        ELSIF NEW.status = 'unsubscribed' AND TG_OP = 'UPDATE' AND OLD.status = 'active' THEN
          t := 'subscription.unsubscribed';
        ELSE
          RETURN NULL;
        END IF;
        IF NOT mailroom_webhook_listening(t) THEN
          RETURN NULL;
        END IF;
        SELECT jsonb_build_object(
                 'subscriptionId', NEW.id::text,
                 'subscriberId', s.id::text,
                 'email', s.email,
                 'newsletter', n.slug,
                 'status', NEW.status,
                 'topics', to_jsonb(NEW.topics),
                 'at', to_char(coalesce(CASE WHEN NEW.status = 'active' THEN NEW.confirmed_at ELSE NEW.unsubscribed_at END, now())
                               AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
          INTO d
          FROM subscribers s, newsletters n
         WHERE s.id = NEW.subscriber_id AND n.id = NEW.newsletter_id;
        PERFORM mailroom_webhook_emit(t, NEW.subscriber_id, d);
        RETURN NULL;
      END $$;
      CREATE TRIGGER webhook_subscription_inserted AFTER INSERT ON subscriptions
        FOR EACH ROW WHEN (NEW.status = 'active') EXECUTE FUNCTION mailroom_webhook_subscription();
      CREATE TRIGGER webhook_subscription_changed AFTER UPDATE OF status ON subscriptions
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('active', 'unsubscribed'))
        EXECUTE FUNCTION mailroom_webhook_subscription();

      -- subscriber.suppressed: an address leaves good standing (bounce, complaint, by hand).
      CREATE FUNCTION mailroom_webhook_subscriber() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        IF mailroom_webhook_listening('subscriber.suppressed') THEN
          PERFORM mailroom_webhook_emit('subscriber.suppressed', NEW.id, jsonb_build_object(
            'subscriberId', NEW.id::text,
            'email', NEW.email,
            'status', NEW.status,
            'reason', NEW.status,
            'newsletters', coalesce((
              SELECT jsonb_agg(n.slug ORDER BY n.slug)
                FROM subscriptions x JOIN newsletters n ON n.id = x.newsletter_id
               WHERE x.subscriber_id = NEW.id AND x.status = 'active'), '[]'::jsonb)));
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER webhook_subscriber_suppressed AFTER UPDATE OF status ON subscribers
        FOR EACH ROW WHEN (OLD.status = 'ok' AND NEW.status <> 'ok') EXECUTE FUNCTION mailroom_webhook_subscriber();
      CREATE TRIGGER webhook_subscriber_inserted_suppressed AFTER INSERT ON subscribers
        FOR EACH ROW WHEN (NEW.status <> 'ok') EXECUTE FUNCTION mailroom_webhook_subscriber();

      -- digest.sent: a digest is marked sent, with its ledger's counts at that moment.
      CREATE FUNCTION mailroom_webhook_digest() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        IF mailroom_webhook_listening('digest.sent') THEN
          PERFORM mailroom_webhook_emit('digest.sent', NULL, (
            SELECT jsonb_build_object(
                     'digestId', NEW.id::text,
                     'newsletter', n.slug,
                     'subject', NEW.subject,
                     'trigger', NEW.trigger,
                     'sendAt', to_char(NEW.send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                     'finishedAt', to_char(coalesce(NEW.finished_at, now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                     'recipients', NEW.recipients,
                     'sent', c.sent, 'failed', c.failed, 'skipped', c.skipped)
              FROM newsletters n,
                   (SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
                           count(*) FILTER (WHERE status = 'failed') AS failed,
                           count(*) FILTER (WHERE status = 'skipped') AS skipped
                      FROM deliveries WHERE digest_id = NEW.id) c
             WHERE n.id = NEW.newsletter_id));
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER webhook_digest_sent AFTER UPDATE OF status ON digests
        FOR EACH ROW WHEN (NEW.status = 'sent' AND OLD.status IS DISTINCT FROM 'sent')
        EXECUTE FUNCTION mailroom_webhook_digest();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER webhook_digest_sent ON digests;
      DROP TRIGGER webhook_subscriber_inserted_suppressed ON subscribers;
      DROP TRIGGER webhook_subscriber_suppressed ON subscribers;
      DROP TRIGGER webhook_subscription_changed ON subscriptions;
      DROP TRIGGER webhook_subscription_inserted ON subscriptions;
      DROP FUNCTION mailroom_webhook_digest(), mailroom_webhook_subscriber(), mailroom_webhook_subscription(),
        mailroom_webhook_listening(text), mailroom_webhook_emit(text, bigint, jsonb);
      DROP TABLE webhook_attempts, webhook_deliveries, webhook_endpoints;
    `);
  }
}
