import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import type { SubscriberStatus, SubscriptionStatus } from '#db/entities/index.js';
import { rows } from '#db/sql.js';

type Db = EntityManager | DataSource;

/** What a subscriber search filters on (every field optional; all given must hold). */
export interface SubscriberFilter {
  /** The whole address, normalised. */
  email?: string;
  /** The start of the address, lower case ("%" and "_" are letters). */
  emailStartsWith?: string;
  newsletter?: string;
  subscriptionStatus?: SubscriptionStatus;
  subscriberStatus?: SubscriberStatus;
  /** Keyset cursor: only subscribers with a greater id. */
  after?: string;
}

export interface SubscriberSearchRow {
  id: string;
  email: string;
  name: string | null;
  timezone: string | null;
  status: SubscriberStatus;
  created_at: Date;
  subscriptions: {
    newsletter: string;
    status: SubscriptionStatus;
    topics: string[];
    confirmedAt: string | null;
    unsubscribedAt: string | null;
  }[];
}

export interface SubscriberRow {
  id: string;
  email: string;
  name: string | null;
  timezone: string | null;
  status: SubscriberStatus;
  created_at: Date;
  updated_at: Date;
}

/** A LIKE pattern for a prefix: "%" and "_" typed into a search box are letters, not wildcards. */
function likePrefix(q: string): string {
  return `${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The subscribers table: readers' addresses, names, time zones and standing. */
@Injectable()
export class SubscribersRepository {
  /** Subscribers matching `filter` in id order, at most `limit`, each with its subscriptions (by newsletter slug). */
  async search(db: Db, filter: SubscriberFilter, limit: number): Promise<SubscriberSearchRow[]> {
    const params: unknown[] = [];
    const p = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    const where: string[] = [];
    if (filter.email) where.push(`sub.email = ${p(filter.email)}`);
    if (filter.emailStartsWith) where.push(`sub.email LIKE ${p(likePrefix(filter.emailStartsWith))} ESCAPE '\\'`);
    if (filter.after) where.push(`sub.id > ${p(filter.after)}`);
    if (filter.subscriberStatus) where.push(`sub.status = ${p(filter.subscriberStatus)}`);
    const subFilter: string[] = [];
    if (filter.newsletter) subFilter.push(`n.slug = ${p(filter.newsletter)}`);
    if (filter.subscriptionStatus) subFilter.push(`s.status = ${p(filter.subscriptionStatus)}`);
    if (subFilter.length > 0) {
      where.push(
        `EXISTS (SELECT 1 FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id WHERE s.subscriber_id = sub.id AND ${subFilter.join(' AND ')})`,
      );
    }
    return rows<SubscriberSearchRow>(
      db,
      `SELECT sub.id, sub.email, sub.name, sub.timezone, sub.status, sub.created_at,
         COALESCE((SELECT json_agg(json_build_object('newsletter', n.slug, 'status', s.status, 'topics', s.topics,
             'confirmedAt', s.confirmed_at, 'unsubscribedAt', s.unsubscribed_at) ORDER BY n.slug)
           FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id WHERE s.subscriber_id = sub.id), '[]') AS subscriptions
       FROM subscribers sub ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY sub.id LIMIT ${p(limit)}`,
      params,
    );
  }

  async idByEmail(db: Db, email: string): Promise<string | null> {
    const r = await rows<{ id: string }>(db, `SELECT id FROM subscribers WHERE email = $1`, [email]);
    return r[0]?.id ?? null;
  }

  async emailById(db: Db, id: string): Promise<string | null> {
    const r = await rows<{ email: string }>(db, `SELECT email FROM subscribers WHERE id = $1`, [id]);
    return r[0]?.email ?? null;
  }

  async byId(db: Db, id: string): Promise<SubscriberRow | null> {
    const r = await rows<SubscriberRow>(
      db,
      `SELECT id, email, name, timezone, status, created_at, updated_at FROM subscribers WHERE id = $1`,
      [id],
    );
    return r[0] ?? null;
  }

  /** Sets the name and time zone given (null keeps the stored one). */
  async updateProfile(em: EntityManager, id: string, name: string | null, timezone: string | null): Promise<void> {
    await em.query(
      `UPDATE subscribers SET name = COALESCE($2, name), timezone = COALESCE($3, timezone), updated_at = now() WHERE id = $1`,
      [id, name, timezone],
    );
  }

  /** Marks a subscriber in good standing as bounced, complained or suppressed: every send checks it. */
  async markUnmailable(em: EntityManager, email: string, status: Exclude<SubscriberStatus, 'ok'>): Promise<void> {
    await em.query(`UPDATE subscribers SET status = $2, updated_at = now() WHERE email = $1 AND status = 'ok'`, [
      email,
      status,
    ]);
  }

  /** Back in good standing; returns the subscriber's id, or null when there is none. */
  async restore(em: EntityManager, email: string): Promise<string | null> {
    const r = await rows<{ id: string }>(
      em,
      `UPDATE subscribers SET status = 'ok', updated_at = now() WHERE email = $1 RETURNING id`,
      [email],
    );
    return r[0]?.id ?? null;
  }

  async delete(em: EntityManager, id: string): Promise<void> {
    await em.query(`DELETE FROM subscribers WHERE id = $1`, [id]);
  }

  /** Subscribers not in good standing changed since `since`, in id order after `after`. */
  async unmailableChangedSince(
    db: Db,
    since: Date,
    after: string,
    limit: number,
  ): Promise<{ id: string; email: string }[]> {
    return rows<{ id: string; email: string }>(
      db,
      `SELECT id, email FROM subscribers WHERE status <> 'ok' AND updated_at >= $1 AND id > $2 ORDER BY id LIMIT $3`,
      [since, after, limit],
    );
  }
}
