import { BadRequestException, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { SubscriberStatus, SubscriptionStatus } from '#db/entities/index.js';
import { type SubscriberSearchRow, SubscribersRepository } from './subscribers.repository.js';

/** Statuses a search filters on: a subscription's (per newsletter), then a subscriber's own. */
export const SUBSCRIPTION_STATUSES = ['pending', 'active', 'unsubscribed'] as const satisfies SubscriptionStatus[];
export const SUBSCRIBER_STATUSES = ['ok', 'bounced', 'complained', 'suppressed'] as const satisfies SubscriberStatus[];
export const SEARCH_STATUSES = [...SUBSCRIPTION_STATUSES, ...SUBSCRIBER_STATUSES];
export type SearchStatus = (typeof SEARCH_STATUSES)[number];

/** Page size: 50 unless asked, at most 500. */
export const SEARCH_PAGE_DEFAULT = 50;
export const SEARCH_PAGE_MAX = 500;

export interface SubscriberQuery {
  /** The whole address (case-insensitive). */
  email?: string;
  /** The start of the address (case-insensitive; "%" and "_" are letters). */
  emailStartsWith?: string;
  newsletter?: string;
  status?: string;
  limit?: number;
  /** Keyset cursor: the `next` of the previous page. */
  after?: string;
}

export interface SubscriberSummary {
  id: string;
  email: string;
  name: string | null;
  timezone: string | null;
  status: SubscriberStatus;
  createdAt: Date;
  subscriptions: SubscriberSearchRow['subscriptions'];
}

export interface SubscriberPage {
  items: SubscriberSummary[];
  /** The last id of a full page (the cursor of the next one), else null. */
  next: string | null;
}

/** The admin API's view of a subscriber: everything but the internal id (its cursor is the page's `next`). */
export function publicSubscriber(s: SubscriberSummary): Omit<SubscriberSummary, 'id'> {
  return {
    email: s.email,
    name: s.name,
    timezone: s.timezone,
    status: s.status,
    createdAt: s.createdAt,
    subscriptions: s.subscriptions,
  };
}

const isIn = <T extends string>(list: readonly T[], v: string): v is T => (list as readonly string[]).includes(v);

/** The one subscriber search, for the admin API and the console. */
@Injectable()
export class SubscribersService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly subscribers: SubscribersRepository,
  ) {}

  /** Subscribers with their subscriptions, keyset-paged by id. */
  async search(q: SubscriberQuery): Promise<SubscriberPage> {
    const status = q.status || undefined;
    if (status !== undefined && !isIn(SEARCH_STATUSES, status))
      throw new BadRequestException([`status must be one of ${SEARCH_STATUSES.join(', ')}`]);
    if (q.after !== undefined && !/^\d{1,19}$/.test(q.after))
      throw new BadRequestException(['after must be a subscriber id']);
    const limit = Math.min(Math.max(q.limit ?? SEARCH_PAGE_DEFAULT, 1), SEARCH_PAGE_MAX);
    const prefix = (q.emailStartsWith ?? '').trim().toLowerCase().slice(0, 254);
    const found = await this.subscribers.search(
      this.ds,
      {
        email: q.email ? q.email.trim().toLowerCase() : undefined,
        emailStartsWith: prefix || undefined,
        newsletter: q.newsletter || undefined,
        subscriptionStatus: status !== undefined && isIn(SUBSCRIPTION_STATUSES, status) ? status : undefined,
        subscriberStatus: status !== undefined && isIn(SUBSCRIBER_STATUSES, status) ? status : undefined,
        after: q.after || undefined,
      },
      limit,
    );
    return {
      items: found.map((r) => ({
        id: r.id,
        email: r.email,
        name: r.name,
        timezone: r.timezone,
        status: r.status,
        createdAt: r.created_at,
        subscriptions: r.subscriptions,
      })),
      next: found.length === limit ? found[found.length - 1].id : null,
    };
  }
}
