import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { ConsentAction, SubscriptionStatus } from '../../db/src/entities/index.js';
import type { DomainEvent } from '../../queue/src/jobs.js';
import { emailHash } from './tokens.js';
import type { PipelinedPg } from '../../db/src/pg-client.js';
import { rows } from '../../db/src/sql.js';

export interface ConsentContext {
  ip: string | null;
  userAgent: string | null;
  sourceUrl: string | null;
  consentText?: string | null;
  consentVersion?: string | null;
}

/**
 * Set-based SQL for the subscription lifecycle. Every method runs inside the caller's transaction,
 * except subscribe(), which is a transaction of its own.
 */
@Injectable()
export class SubscriptionsRepository {
  /**
   * A subscription request in one transaction and one round trip (see PipelinedPg): two prepared
   * statements between BEGIN and COMMIT, whatever is known about the address, so neither the
   * answer nor its timing tells.
   *
   * 1. Creates or refreshes the subscriber, unless the address is suppressed (bounced,
   *    complained, blocked; an erased address's hash does not stop it: a new double opt-in may
   *    begin). For a subscriber in good standing, creates pending subscriptions (an unsubscribed
   *    one becomes pending again) and writes the consent record of the request. The upsert locks
   *    the subscriber's row until COMMIT, so concurrent requests for one address queue up here.
   * 2. With that lock held and a fresh snapshot (so it counts what those requests committed):
   *    if any of these subscriptions is pending and fewer than `perDay` confirmation mails went
   *    to the address in a rolling 24 h, counts one and writes the event that sends it.
   */
  async subscribe(
    db: PipelinedPg,
    req: {
      email: string;
      name: string | null;
      timezone: string | null;
      suppressionHash: Buffer;
      newsletterIds: number[];
      topics: string[];
      source: string | null;
      consent: ConsentContext;
      confirmationsPerDay: number;
    },
  ): Promise<void> {
    await db.transaction([
      {
        name: 'subscribe.upsert',
        text: `WITH subscriber AS (
           INSERT INTO subscribers (email, name, timezone)
           SELECT $1, $2, $3
           WHERE NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $4 AND reason <> 'erased')
           ON CONFLICT (email) DO UPDATE SET
             name = COALESCE(EXCLUDED.name, subscribers.name),
             timezone = COALESCE(EXCLUDED.timezone, subscribers.timezone),
             updated_at = now()
           RETURNING id, status),
         ok AS (SELECT id FROM subscriber WHERE status = 'ok'),
         consent AS (
           INSERT INTO consent_records (subscriber_id, newsletter_id, action, ip, user_agent, source_url, consent_text, consent_version)
           SELECT ok.id, nid, 'subscribe', $8::inet, $9, $10, $11, $12 FROM ok, unnest($5::int[]) AS nid)
         INSERT INTO subscriptions (subscriber_id, newsletter_id, status, topics, source)
         SELECT ok.id, nid, 'pending', $6::text[], $7 FROM ok, unnest($5::int[]) AS nid
         ON CONFLICT (subscriber_id, newsletter_id) DO UPDATE SET
           status = CASE WHEN subscriptions.status = 'unsubscribed' THEN 'pending' ELSE subscriptions.status END,
           unsubscribed_at = CASE WHEN subscriptions.status = 'unsubscribed' THEN NULL ELSE subscriptions.unsubscribed_at END,
           topics = CASE WHEN cardinality(EXCLUDED.topics) > 0 THEN EXCLUDED.topics ELSE subscriptions.topics END,
           source = COALESCE(EXCLUDED.source, subscriptions.source)`,
        values: [
          req.email,
          req.name,
          req.timezone,
          req.suppressionHash,
          req.newsletterIds,
          req.topics,
          req.source,
          req.consent.ip,
          req.consent.userAgent,
          req.consent.sourceUrl,
          req.consent.consentText ?? null,
          req.consent.consentVersion ?? null,
        ],
      },
      {
        name: 'subscribe.request-confirmation',
        // The subscriber is looked up first, as a single value: the subscriptions are then read by
        // (subscriber_id, newsletter_id). Written as a join, the plan PostgreSQL caches for this
        // prepared statement while the tables are still small can scan every pending subscription
        // of the newsletter instead, and each request gets slower as the list grows.
        text: `WITH pending AS (
           SELECT s.subscriber_id, array_agg(s.newsletter_id ORDER BY s.newsletter_id) AS newsletter_ids
           FROM subscriptions s
           WHERE s.subscriber_id = (
               SELECT id FROM subscribers WHERE email = $1 AND status = 'ok'
                 AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $3 AND reason <> 'erased'))
             AND s.newsletter_id = ANY($2::int[]) AND s.status = 'pending'
           GROUP BY s.subscriber_id),
         allowed AS (
           INSERT INTO confirmation_requests (subscriber_id)
           SELECT p.subscriber_id FROM pending p
           WHERE (SELECT count(*) FROM confirmation_requests c
                  WHERE c.subscriber_id = p.subscriber_id AND c.created_at > now() - interval '24 hours') < $4
           RETURNING subscriber_id)
         INSERT INTO outbox (id, type, payload)
         SELECT $5, $6, jsonb_build_object('subscriberId', p.subscriber_id::text, 'newsletterIds', p.newsletter_ids)
         FROM pending p JOIN allowed a USING (subscriber_id)`,
        values: [
          req.email,
          req.newsletterIds,
          req.suppressionHash,
          req.confirmationsPerDay,
          randomUUID(),
          'subscription.requested' satisfies DomainEvent['type'],
        ],
      },
    ]);
  }

  async recordConsent(
    em: EntityManager,
    subscriberId: string,
    newsletterIds: number[],
    action: ConsentAction,
    ctx: ConsentContext,
  ): Promise<void> {
    if (newsletterIds.length === 0) return;
    await em.query(
      `INSERT INTO consent_records (subscriber_id, newsletter_id, action, ip, user_agent, source_url, consent_text, consent_version)
       SELECT $1, nid, $3, $4::inet, $5, $6, $7, $8 FROM unnest($2::int[]) AS nid`,
      [
        subscriberId,
        newsletterIds,
        action,
        ctx.ip,
        ctx.userAgent,
        ctx.sourceUrl,
        ctx.consentText ?? null,
        ctx.consentVersion ?? null,
      ],
    );
  }

  async addEvent(em: EntityManager, event: DomainEvent): Promise<string> {
    const id = randomUUID();
    await em.query(`INSERT INTO outbox (id, type, payload) VALUES ($1, $2, $3)`, [id, event.type, event.payload]);
    return id;
  }

  /** A confirmed new double opt-in lifts the hash an erasure left behind (and nothing else). */
  async liftErasure(em: EntityManager, subscriberId: string, secret: string): Promise<void> {
    const [s]: { email: string }[] = await em.query(`SELECT email FROM subscribers WHERE id = $1`, [subscriberId]);
    if (s)
      await em.query(`DELETE FROM suppressions WHERE email_hash = $1 AND reason = 'erased'`, [
        emailHash(secret, s.email),
      ]);
  }

  async lockConfirmToken(
    em: EntityManager,
    hash: Buffer,
  ): Promise<{
    id: string;
    subscriberId: string;
    newsletterIds: number[];
    expiresAt: Date;
    usedAt: Date | null;
  } | null> {
    const rows: {
      id: string;
      subscriber_id: string;
      newsletter_ids: number[];
      expires_at: Date;
      used_at: Date | null;
    }[] = await em.query(
      `SELECT id, subscriber_id, newsletter_ids, expires_at, used_at FROM tokens
       WHERE token_hash = $1 AND purpose = 'confirm' FOR UPDATE`,
      [hash],
    );
    const r = rows[0];
    return r
      ? {
          id: r.id,
          subscriberId: r.subscriber_id,
          newsletterIds: r.newsletter_ids,
          expiresAt: r.expires_at,
          usedAt: r.used_at,
        }
      : null;
  }

  async activate(
    em: EntityManager,
    subscriberId: string,
    newsletterIds: number[],
  ): Promise<{ id: string; newsletterId: number; needsGuide: boolean }[]> {
    const updated = await rows<{ id: string; newsletter_id: number; needs_guide: boolean }>(
      em,
      `UPDATE subscriptions s SET status = 'active', confirmed_at = now()
       FROM newsletters n
       WHERE s.subscriber_id = $1 AND s.newsletter_id = ANY($2::int[]) AND s.status = 'pending' AND n.id = s.newsletter_id
       RETURNING s.id, s.newsletter_id, (n.guide_id IS NOT NULL AND s.guide_sent_at IS NULL) AS needs_guide`,
      [subscriberId, newsletterIds],
    );
    return updated.map((r) => ({ id: r.id, newsletterId: r.newsletter_id, needsGuide: r.needs_guide }));
  }

  async countActive(em: EntityManager, subscriberId: string, newsletterIds: number[]): Promise<number> {
    const [{ n }]: { n: number }[] = await em.query(
      `SELECT count(*)::int AS n FROM subscriptions WHERE subscriber_id = $1 AND newsletter_id = ANY($2::int[]) AND status = 'active'`,
      [subscriberId, newsletterIds],
    );
    return n;
  }

  async markTokenUsed(em: EntityManager, tokenId: string): Promise<void> {
    await em.query(`UPDATE tokens SET used_at = now() WHERE id = $1`, [tokenId]);
  }

  /** Unsubscribes one subscription, or every subscription of its subscriber. Returns the newsletters left. */
  async unsubscribe(
    em: EntityManager,
    subscriptionId: string,
    scope: 'one' | 'all',
  ): Promise<{ subscriberId: string; newsletterIds: number[] } | null> {
    const owner: { subscriber_id: string }[] = await em.query(`SELECT subscriber_id FROM subscriptions WHERE id = $1`, [
      subscriptionId,
    ]);
    if (owner.length === 0) return null;
    const subscriberId = owner[0].subscriber_id;
    const left = await rows<{ newsletter_id: number }>(
      em,
      `UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
       WHERE status <> 'unsubscribed' AND ${scope === 'one' ? 'id = $1' : 'subscriber_id = $1'}
       RETURNING newsletter_id`,
      [scope === 'one' ? subscriptionId : subscriberId],
    );
    return { subscriberId, newsletterIds: left.map((r) => r.newsletter_id) };
  }

  async setTopics(em: EntityManager, subscriptionId: string, topics: string[]): Promise<void> {
    await em.query(`UPDATE subscriptions SET topics = $2::text[] WHERE id = $1`, [subscriptionId, topics]);
  }

  async preferences(
    em: EntityManager,
    subscriptionId: string,
  ): Promise<{
    subscriptionId: string;
    email: string;
    topics: string[];
    status: SubscriptionStatus;
    newsletter: { id: number; slug: string; name: string };
    others: { slug: string; name: string; status: SubscriptionStatus }[];
  } | null> {
    const rows: {
      id: string;
      email: string;
      topics: string[];
      status: SubscriptionStatus;
      newsletter_id: number;
      slug: string;
      name: string;
      subscriber_id: string;
    }[] = await em.query(
      `SELECT s.id, sub.email, s.topics, s.status, s.newsletter_id, n.slug, n.name, s.subscriber_id
       FROM subscriptions s JOIN subscribers sub ON sub.id = s.subscriber_id JOIN newsletters n ON n.id = s.newsletter_id
       WHERE s.id = $1`,
      [subscriptionId],
    );
    const r = rows[0];
    if (!r) return null;
    const others: { slug: string; name: string; status: SubscriptionStatus }[] = await em.query(
      `SELECT n.slug, n.name, s.status FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id
       WHERE s.subscriber_id = $1 AND s.id <> $2 ORDER BY n.name`,
      [r.subscriber_id, r.id],
    );
    return {
      subscriptionId: r.id,
      email: r.email,
      topics: r.topics,
      status: r.status,
      newsletter: { id: r.newsletter_id, slug: r.slug, name: r.name },
      others,
    };
  }
}
