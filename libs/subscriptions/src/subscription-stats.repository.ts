import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';

export interface NewsletterCounts {
  slug: string;
  name: string;
  isDefault: boolean;
  active: number;
  pending: number;
  unsubscribed: number;
}

/** Read-only figures for the console's overview. */
@Injectable()
export class SubscriptionStatsRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Every newsletter, with its subscriptions counted by status (zeros included). */
  async countsByNewsletter(): Promise<NewsletterCounts[]> {
    return rows<NewsletterCounts>(
      this.ds,
      `SELECT n.slug, n.name, n.is_default AS "isDefault",
              count(s.id) FILTER (WHERE s.status = 'active')::int AS active,
              count(s.id) FILTER (WHERE s.status = 'pending')::int AS pending,
              count(s.id) FILTER (WHERE s.status = 'unsubscribed')::int AS unsubscribed
         FROM newsletters n LEFT JOIN subscriptions s ON s.newsletter_id = n.id
        GROUP BY n.id ORDER BY n.is_default DESC, n.name`,
    );
  }
}
