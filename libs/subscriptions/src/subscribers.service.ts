import { BadRequestException, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

export interface SubscriberQuery {
  email?: string;
  newsletter?: string;
  status?: string;
  limit?: number;
  after?: string;
}

const SUBSCRIPTION_STATUSES = ['pending', 'active', 'unsubscribed'];
const SUBSCRIBER_STATUSES = ['ok', 'bounced', 'complained', 'suppressed'];

@Injectable()
export class SubscribersService {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Subscribers with their subscriptions, keyset-paged by id. */
  async search(q: SubscriberQuery) {
    if (q.status && ![...SUBSCRIPTION_STATUSES, ...SUBSCRIBER_STATUSES].includes(q.status)) {
      throw new BadRequestException([
        `status must be one of ${[...SUBSCRIPTION_STATUSES, ...SUBSCRIBER_STATUSES].join(', ')}`,
      ]);
    }
    if (q.after !== undefined && !/^\d{1,19}$/.test(q.after))
      throw new BadRequestException(['after must be a subscriber id']);
    const limit = Math.min(Math.max(q.limit ?? 50, 1), 500);
    const params: unknown[] = [];
    const where: string[] = [];
    const p = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    if (q.email) where.push(`sub.email = ${p(q.email.trim().toLowerCase())}`);
    if (q.after) where.push(`sub.id > ${p(q.after)}`);
    if (q.status && SUBSCRIBER_STATUSES.includes(q.status)) where.push(`sub.status = ${p(q.status)}`);
    const subFilter: string[] = [];
    if (q.newsletter) subFilter.push(`n.slug = ${p(q.newsletter)}`);
    if (q.status && SUBSCRIPTION_STATUSES.includes(q.status)) subFilter.push(`s.status = ${p(q.status)}`);
    if (subFilter.length > 0) {
      where.push(
        `EXISTS (SELECT 1 FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id WHERE s.subscriber_id = sub.id AND ${subFilter.join(' AND ')})`,
      );
    }
    const rows: {
      id: string;
      email: string;
      name: string | null;
      timezone: string | null;
      status: string;
      created_at: Date;
      subscriptions: {
        newsletter: string;
        status: string;
        topics: string[];
        confirmedAt: string | null;
        unsubscribedAt: string | null;
      }[];
    }[] = await this.ds.query(
      `SELECT sub.id, sub.email, sub.name, sub.timezone, sub.status, sub.created_at,
         COALESCE((SELECT json_agg(json_build_object('newsletter', n.slug, 'status', s.status, 'topics', s.topics,
             'confirmedAt', s.confirmed_at, 'unsubscribedAt', s.unsubscribed_at) ORDER BY n.slug)
           FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id WHERE s.subscriber_id = sub.id), '[]') AS subscriptions
       FROM subscribers sub ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY sub.id LIMIT ${p(limit)}`,
      params,
    );
    return {
      items: rows.map((r) => ({
        email: r.email,
        name: r.name,
        timezone: r.timezone,
        status: r.status,
        createdAt: r.created_at,
        subscriptions: r.subscriptions,
      })),
      next: rows.length === limit ? rows[rows.length - 1].id : null,
    };
  }
}
