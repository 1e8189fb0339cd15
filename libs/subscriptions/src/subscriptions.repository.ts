import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { ConsentAction, SubscriptionStatus } from '#db/entities/index.js';
import type { DomainEvent } from '#queue/jobs.js';
import type { PreparedPg } from '#db/prepared-pg.service.js';
import { rows } from '#db/sql.js';

/** One sign-up as `mailroom_subscribe` takes it. */
export interface SignupRequest {
  email: string;
  name: string | null;
  timezone: string | null;
  suppressionHash: Buffer;
  newsletterIds: number[];
  topics: string[];
  source: string | null;
  consent: ConsentContext;
  confirmationsPerDay: number;
}

const SUBSCRIPTION_REQUESTED = 'subscription.requested' satisfies DomainEvent['type'];

export interface ConsentContext {
  ip: string | null;
  userAgent: string | null;
  sourceUrl: string | null;
  consentText?: string | null;
  consentVersion?: string | null;
}

/**
 * Set-based SQL for the subscription lifecycle. Every method runs inside the caller's transaction,
 * except subscribe(), a transaction of its own.
 */
@Injectable()
export class SubscriptionsRepository {
  /**
   * Subscription requests, one or several, in one statement and one round trip: the
   * `mailroom_subscribe` function (migration SubscribeFunction) runs these two steps for each,
   * whatever is known about the address, so neither the answer nor its timing tells.
   *
   * 1. Creates or refreshes the subscriber, unless the address is suppressed (bounced,
   *    complained, blocked; an erased address's hash does not stop it: a new double opt-in may
   *    begin). For a subscriber in good standing, creates pending subscriptions (an unsubscribed
   *    one becomes pending again) and writes the consent record of the request. The upsert locks
   *    the subscriber's row until COMMIT, so concurrent requests for one address queue up here.
   * 2. With that lock held and a fresh snapshot (so it counts what those requests committed):
   *    if any of these subscriptions is pending and fewer than `perDay` confirmation mails went
   *    to the address in a rolling 24 h, counts one and writes the event that sends it.
   *
   * An address that must get nothing (suppressed, or its subscriber not in good standing) runs
   * the same two steps as if it were new or in good standing, in a subtransaction rolled back at
   * once (migration SubscribeRehearsal): the same statements, writes and commit flush, nothing kept.
   *
   * Several requests run in the order of their addresses, in one transaction: every group takes
   * the subscribers' row locks in that one order, so two groups under way at once wait for each
   * other but never deadlock. All or nothing: when it fails, none of them was written.
   */
  async subscribe(db: PreparedPg, reqs: SignupRequest[]): Promise<void> {
    const sorted = [...reqs].sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));
    await db.statement({
      name: 'subscribe',
      text: `SELECT mailroom_subscribe(x.email, x.name, x.timezone, x.hash, x.newsletter_ids, x.topics, x.source,
               x.ip, x.user_agent, x.source_url, x.consent_text, x.consent_version, x.per_day, x.event_id, $2)
             FROM jsonb_to_recordset($1::jsonb) AS x(email text, name text, timezone text, hash bytea,
               newsletter_ids int[], topics text[], source text, ip inet, user_agent text, source_url text,
               consent_text text, consent_version text, per_day int, event_id uuid)`,
      values: [
        JSON.stringify(
          sorted.map((r) => ({
            email: r.email,
            name: r.name,
            timezone: r.timezone,
            hash: `\\x${r.suppressionHash.toString('hex')}`,
            newsletter_ids: r.newsletterIds,
            topics: r.topics,
            source: r.source,
            ip: r.consent.ip,
            user_agent: r.consent.userAgent,
            source_url: r.consent.sourceUrl,
            consent_text: r.consent.consentText ?? null,
            consent_version: r.consent.consentVersion ?? null,
            per_day: r.confirmationsPerDay,
            event_id: randomUUID(),
          })),
        ),
        SUBSCRIPTION_REQUESTED,
      ],
    });
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
    const subscriberId = await this.ownerOf(em, subscriptionId);
    if (subscriberId === null) return null;
    const left = await rows<{ newsletter_id: number }>(
      em,
      `UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
       WHERE status <> 'unsubscribed' AND ${scope === 'one' ? 'id = $1' : 'subscriber_id = $1'}
       RETURNING newsletter_id`,
      [scope === 'one' ? subscriptionId : subscriberId],
    );
    return { subscriberId, newsletterIds: left.map((r) => r.newsletter_id) };
  }

  /** The subscriber of a subscription, or null. */
  async ownerOf(em: EntityManager, subscriptionId: string): Promise<string | null> {
    const owner = await rows<{ subscriber_id: string }>(em, `SELECT subscriber_id FROM subscriptions WHERE id = $1`, [
      subscriptionId,
    ]);
    return owner[0]?.subscriber_id ?? null;
  }

  /** The names of the newsletters of one subscription, or of every subscription of its subscriber. */
  async newsletterNames(
    em: EntityManager,
    key: { subscriptionId: string } | { subscriberId: string },
  ): Promise<string[]> {
    const names = await rows<{ name: string }>(
      em,
      `SELECT n.name FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id
       WHERE ${'subscriptionId' in key ? 's.id' : 's.subscriber_id'} = $1 ORDER BY n.name`,
      ['subscriptionId' in key ? key.subscriptionId : key.subscriberId],
    );
    return names.map((n) => n.name);
  }

  /** Unsubscribes a subscriber from these newsletters; returns those that were not unsubscribed yet. */
  async unsubscribeFrom(em: EntityManager, subscriberId: string, newsletterIds: number[]): Promise<number[]> {
    const left = await rows<{ newsletter_id: number }>(
      em,
      `UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
       WHERE subscriber_id = $1 AND newsletter_id = ANY($2::int[]) AND status <> 'unsubscribed' RETURNING newsletter_id`,
      [subscriberId, newsletterIds],
    );
    return left.map((l) => l.newsletter_id);
  }

  /** Ends every active subscription of a subscriber; returns their newsletters. */
  async endActive(em: EntityManager, subscriberId: string): Promise<number[]> {
    const ended = await rows<{ newsletter_id: number }>(
      em,
      `UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
        WHERE subscriber_id = $1 AND status = 'active' RETURNING newsletter_id`,
      [subscriberId],
    );
    return ended.map((r) => r.newsletter_id);
  }

  /** The same topics on every subscription of a subscriber. */
  async setTopicsOfSubscriber(em: EntityManager, subscriberId: string, topics: string[]): Promise<void> {
    await em.query(`UPDATE subscriptions SET topics = $2::text[] WHERE subscriber_id = $1`, [subscriberId, topics]);
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
