import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';

type Db = EntityManager | DataSource;

export interface NewsletterRow {
  id: number;
  slug: string;
  name: string;
  from_name: string | null;
  from_email: string | null;
  /** The SMTP_ROUTES entry its mail leaves through; null: SMTP_URL. */
  smtp_route: string | null;
  guide_title: string | null;
  guide_slug: string | null;
}

export interface MailLogEntry {
  subscriberId: string | null;
  newsletterId: number | null;
  kind: string;
  status: 'sent' | 'failed' | 'skipped';
  messageId: string | null;
  detail: string | null;
}

/** SQL of the mail lib: lifecycle mail's reads and claims, the mail log, the send-rate slots. */
@Injectable()
export class MailRepository {
  async newsletters(db: Db, ids: number[]): Promise<NewsletterRow[]> {
    return rows<NewsletterRow>(
      db,
      `SELECT n.id, n.slug, n.name, n.from_name, n.from_email, n.smtp_route, g.title AS guide_title, g.slug AS guide_slug
       FROM newsletters n LEFT JOIN guides g ON g.id = n.guide_id WHERE n.id = ANY($1::int[]) ORDER BY n.name`,
      [ids],
    );
  }

  async subscriber(
    db: Db,
    id: string,
  ): Promise<{ id: string; email: string; name: string | null; status: string } | null> {
    const [s] = await rows<{ id: string; email: string; name: string | null; status: string }>(
      db,
      `SELECT id, email, name, status FROM subscribers WHERE id = $1`,
      [id],
    );
    return s ?? null;
  }

  /** A subscriber whose address bounced or complained (the suppression is `SuppressionsRepository`'s). */
  async markSubscriber(db: Db, subscriberId: string, reason: 'bounced' | 'complained'): Promise<void> {
    await db.query(`UPDATE subscribers SET status = $2, updated_at = now() WHERE id = $1`, [subscriberId, reason]);
  }

  async log(db: Db, e: MailLogEntry): Promise<void> {
    await db.query(
      `INSERT INTO mail_log (subscriber_id, newsletter_id, kind, message_id, status, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
      [e.subscriberId, e.newsletterId, e.kind, e.messageId, e.status, e.detail],
    );
  }

  /** The subscriber's subscriptions to these newsletters still waiting for confirmation. */
  async pendingSubscriptions(
    db: Db,
    subscriberId: string,
    newsletterIds: number[],
  ): Promise<{ newsletter_id: number; source: string | null }[]> {
    return rows(
      db,
      `SELECT newsletter_id, source FROM subscriptions WHERE subscriber_id = $1 AND newsletter_id = ANY($2::int[]) AND status = 'pending'`,
      [subscriberId, newsletterIds],
    );
  }

  async insertConfirmToken(
    db: Db,
    tokenHash: Buffer,
    subscriberId: string,
    newsletterIds: number[],
    ttlHours: number,
  ): Promise<void> {
    await db.query(
      `INSERT INTO tokens (token_hash, purpose, subscriber_id, newsletter_ids, expires_at)
       VALUES ($1, 'confirm', $2, $3::int[], now() + make_interval(hours => $4))`,
      [tokenHash, subscriberId, newsletterIds, ttlHours],
    );
  }

  async subscription(db: Db, id: string): Promise<{ subscriber_id: string; newsletter_id: number } | null> {
    const [s] = await rows<{ subscriber_id: string; newsletter_id: number }>(
      db,
      `SELECT subscriber_id, newsletter_id FROM subscriptions WHERE id = $1`,
      [id],
    );
    return s ?? null;
  }

  /** Claims the guide mail of an active subscription: true at most once per subscription. */
  async claimGuide(db: Db, subscriptionId: string): Promise<boolean> {
    const claimed = await rows(
      db,
      `UPDATE subscriptions SET guide_sent_at = now() WHERE id = $1 AND status = 'active' AND guide_sent_at IS NULL RETURNING id`,
      [subscriptionId],
    );
    return claimed.length > 0;
  }

  /** The guide mail did not go out: claimable again. */
  async releaseGuide(db: Db, subscriptionId: string): Promise<void> {
    await db.query(`UPDATE subscriptions SET guide_sent_at = NULL WHERE id = $1`, [subscriptionId]);
  }

  /**
   * Counts `take` more permits into rate slot `slot`, from position `past` on, unless that would
   * pass `capacity`: `after` is the slot's count with them (null when refused), `current` its count.
   */
  async takeSlotPermits(
    db: Db,
    slot: number,
    take: number,
    capacity: number,
    past: number,
  ): Promise<{ after: number | null; current: number | null }> {
    const [r] = await rows<{ after: number | null; current: number | null }>(
      db,
      `WITH up AS (
         INSERT INTO send_rate (slot, n) VALUES ($1, $4::int + $2::int)
         ON CONFLICT (slot) DO UPDATE SET n = GREATEST(send_rate.n, $4::int) + $2::int
           WHERE GREATEST(send_rate.n, $4::int) + $2::int <= $3::int
         RETURNING n)
       SELECT (SELECT n FROM up) AS after, (SELECT n FROM send_rate WHERE slot = $1) AS current`,
      [slot, take, capacity, past],
    );
    return r;
  }

  async deleteSlotsBefore(db: Db, slot: number): Promise<void> {
    await db.query(`DELETE FROM send_rate WHERE slot < $1`, [slot]);
  }

  /** `takeSlotPermits` for one SMTP route's own rate (`send_rate_route`). */
  async takeRouteSlotPermits(
    db: Db,
    route: string,
    slot: number,
    take: number,
    capacity: number,
    past: number,
  ): Promise<{ after: number | null; current: number | null }> {
    const [r] = await rows<{ after: number | null; current: number | null }>(
      db,
      `WITH up AS (
         INSERT INTO send_rate_route (route, slot, n) VALUES ($5, $1, $4::int + $2::int)
         ON CONFLICT (route, slot) DO UPDATE SET n = GREATEST(send_rate_route.n, $4::int) + $2::int
           WHERE GREATEST(send_rate_route.n, $4::int) + $2::int <= $3::int
         RETURNING n)
       SELECT (SELECT n FROM up) AS after, (SELECT n FROM send_rate_route WHERE route = $5 AND slot = $1) AS current`,
      [slot, take, capacity, past, route],
    );
    return r;
  }

  async deleteRouteSlotsBefore(db: Db, route: string, slot: number): Promise<void> {
    await db.query(`DELETE FROM send_rate_route WHERE route = $1 AND slot < $2`, [route, slot]);
  }
}
