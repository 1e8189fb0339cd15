import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { ConsentAction, SubscriptionStatus } from '../../db/src/entities/index.js';
import type { DomainEvent } from '../../queue/src/jobs.js';
import { emailHash } from './tokens.js';
import { rows } from '../../db/src/sql.js';

export interface ConsentContext {
  ip: string | null;
  userAgent: string | null;
  sourceUrl: string | null;
  consentText?: string | null;
  consentVersion?: string | null;
}

/** Set-based SQL for the subscription lifecycle; every method runs inside the caller's transaction. */
@Injectable()
export class SubscriptionsRepository {
  /**
   * Creates or refreshes the subscriber, unless the address is suppressed (bounced, complained,
   * blocked: null). An erased address's hash does not stop it: a new double opt-in may begin.
   */
  async upsertSubscriber(
    em: EntityManager,
    email: string,
    name: string | null,
    timezone: string | null,
    suppressionHash: Buffer,
  ): Promise<{ id: string; status: string } | null> {
    const rows: { id: string; status: string }[] = await em.query(
      `INSERT INTO subscribers (email, name, timezone)
       SELECT $1, $2, $3
       WHERE NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $4 AND reason <> 'erased')
       ON CONFLICT (email) DO UPDATE SET
         name = COALESCE(EXCLUDED.name, subscribers.name),
         timezone = COALESCE(EXCLUDED.timezone, subscribers.timezone),
         updated_at = now()
       RETURNING id, status`,
      [email, name, timezone, suppressionHash],
    );
    return rows[0] ?? null;
  }

  /**
   * Creates pending subscriptions; an unsubscribed one becomes pending again. Returns each state
   * after. The consent record of the request is written in the same statement.
   */
  async upsertSubscriptions(
    em: EntityManager,
    subscriberId: string,
    newsletterIds: number[],
    topics: string[],
    source: string | null,
    consent: ConsentContext,
  ): Promise<{ id: string; newsletterId: number; status: SubscriptionStatus }[]> {
    const rows: { id: string; newsletter_id: number; status: SubscriptionStatus }[] = await em.query(
      `WITH consent AS (
         INSERT INTO consent_records (subscriber_id, newsletter_id, action, ip, user_agent, source_url, consent_text, consent_version)
         SELECT $1, nid, 'subscribe', $5::inet, $6, $7, $8, $9 FROM unnest($2::int[]) AS nid)
       INSERT INTO subscriptions (subscriber_id, newsletter_id, status, topics, source)
       SELECT $1, nid, 'pending', $3::text[], $4 FROM unnest($2::int[]) AS nid
       ON CONFLICT (subscriber_id, newsletter_id) DO UPDATE SET
         status = CASE WHEN subscriptions.status = 'unsubscribed' THEN 'pending' ELSE subscriptions.status END,
         unsubscribed_at = CASE WHEN subscriptions.status = 'unsubscribed' THEN NULL ELSE subscriptions.unsubscribed_at END,
         topics = CASE WHEN cardinality(EXCLUDED.topics) > 0 THEN EXCLUDED.topics ELSE subscriptions.topics END,
         source = COALESCE(EXCLUDED.source, subscriptions.source)
       RETURNING id, newsletter_id, status`,
      [
        subscriberId,
        newsletterIds,
        topics,
        source,
        consent.ip,
        consent.userAgent,
        consent.sourceUrl,
        consent.consentText ?? null,
        consent.consentVersion ?? null,
      ],
    );
    return rows.map((r) => ({ id: r.id, newsletterId: r.newsletter_id, status: r.status }));
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

  /**
   * Takes one of the address's confirmation mails for the rolling 24 h, if any is left.
   * The subscriber row is locked by the upsert in the same transaction, so concurrent requests count in turn.
   */
  /**
   * At most `perDay` confirmation mails per address in a rolling 24 h: when one is still allowed,
   * counts it and writes the event that sends it, in one statement. The caller holds the
   * subscriber's row lock (the upsert), so concurrent requests for one address queue up here.
   */
  async requestConfirmation(
    em: EntityManager,
    subscriberId: string,
    perDay: number,
    event: DomainEvent,
  ): Promise<boolean> {
    const rows: unknown[] = await em.query(
      `WITH allowed AS (
         INSERT INTO confirmation_requests (subscriber_id)
         SELECT $1 WHERE (SELECT count(*) FROM confirmation_requests
                          WHERE subscriber_id = $1 AND created_at > now() - interval '24 hours') < $2
         RETURNING 1)
       INSERT INTO outbox (id, type, payload) SELECT $3, $4, $5 FROM allowed RETURNING 1`,
      [subscriberId, perDay, randomUUID(), event.type, event.payload],
    );
    return rows.length > 0;
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
