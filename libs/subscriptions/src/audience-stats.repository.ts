import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';

/** How many weekly points the overview shows (the last one is "now"). */
export const OVERVIEW_WEEKS = 8;

export interface NewsletterTrend {
  slug: string;
  name: string;
  isDefault: boolean;
  /** Active subscriptions at the end of each of the last 8 weeks, oldest first; the last is now. */
  weekly: number[];
  active: number;
  pending: number;
  /** Within the last 8 weeks: */
  signups: number;
  confirmations: number;
  unsubscribes: number;
  bounces: number;
  complaints: number;
}

export interface WeekActivity {
  weekStart: Date;
  signups: number;
  confirmations: number;
  unsubscribes: number;
  bounces: number;
  complaints: number;
}

export interface DigestFigures {
  id: string;
  newsletter: string;
  status: string;
  sendAt: Date;
  startedAt: Date | null;
  recipients: number | null;
  sent: number;
  failed: number;
  /** Recipients whose subscription was unsubscribed after the digest started. */
  unsubscribedAfter: number;
}

/**
 * Read-only figures for the console's overview: growth per newsletter over the last 8 weeks, what
 * happened each week, and the last digests. Each is one set-based query (a single scan of the
 * table behind it), so the page stays cheap however large the audience grows.
 */
@Injectable()
export class AudienceStatsRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  async trends(): Promise<NewsletterTrend[]> {
    // Point i is now − (7 − i) weeks. A subscription counts as active at t when it was confirmed
    // by t and is still active, or was unsubscribed only after t.
    const points = Array.from({ length: OVERVIEW_WEEKS }, (_, i) => {
      const t = `(now() - interval '${(OVERVIEW_WEEKS - 1 - i) * 7} days')`;
      return `count(s.id) FILTER (WHERE s.confirmed_at <= ${t} AND (s.status = 'active'
                OR (s.status = 'unsubscribed' AND s.unsubscribed_at > ${t})))::int`;
    });
    const since = `now() - interval '${OVERVIEW_WEEKS * 7} days'`;
    const found = await rows<Omit<NewsletterTrend, 'weekly'> & { weekly: number[] }>(
      this.ds,
      `WITH subs AS (
         SELECT n.id AS newsletter_id, ARRAY[${points.join(', ')}] AS weekly,
                count(s.id) FILTER (WHERE s.status = 'active')::int AS active,
                count(s.id) FILTER (WHERE s.status = 'pending')::int AS pending,
                count(s.id) FILTER (WHERE s.created_at >= ${since})::int AS signups,
                count(s.id) FILTER (WHERE s.confirmed_at >= ${since} AND s.status <> 'pending')::int AS confirmations,
                count(s.id) FILTER (WHERE s.status = 'unsubscribed' AND s.unsubscribed_at >= ${since})::int AS unsubscribes,
                count(s.id) FILTER (WHERE u.status = 'bounced' AND u.updated_at >= ${since})::int AS bounces,
                count(s.id) FILTER (WHERE u.status = 'complained' AND u.updated_at >= ${since})::int AS complaints
           FROM newsletters n
           LEFT JOIN subscriptions s ON s.newsletter_id = n.id
           LEFT JOIN subscribers u ON u.id = s.subscriber_id
          GROUP BY n.id)
       SELECT n.slug, n.name, n.is_default AS "isDefault", subs.weekly, subs.active, subs.pending, subs.signups,
              subs.confirmations, subs.unsubscribes, subs.bounces, subs.complaints
         FROM newsletters n JOIN subs ON subs.newsletter_id = n.id
        ORDER BY n.is_default DESC, n.name`,
    );
    return found;
  }

  /** Week by week (oldest first), across newsletters: consent events and suppressions. */
  async weeks(): Promise<WeekActivity[]> {
    return rows<WeekActivity>(
      this.ds,
      `WITH w AS (
         SELECT g AS i, now() - ((${OVERVIEW_WEEKS} - g) * interval '7 days') AS start_at,
                now() - ((${OVERVIEW_WEEKS - 1} - g) * interval '7 days') AS end_at
           FROM generate_series(0, ${OVERVIEW_WEEKS - 1}) g),
       c AS (
         SELECT action, created_at FROM consent_records
          WHERE created_at >= now() - interval '${OVERVIEW_WEEKS * 7} days' AND action IN ('subscribe', 'confirm', 'unsubscribe')),
       sup AS (
         SELECT reason, created_at FROM suppressions
          WHERE created_at >= now() - interval '${OVERVIEW_WEEKS * 7} days' AND reason IN ('bounced', 'complained'))
       SELECT w.start_at AS "weekStart",
              (SELECT count(*) FROM c WHERE c.action = 'subscribe' AND c.created_at >= w.start_at AND c.created_at < w.end_at)::int AS signups,
              (SELECT count(*) FROM c WHERE c.action = 'confirm' AND c.created_at >= w.start_at AND c.created_at < w.end_at)::int AS confirmations,
              (SELECT count(*) FROM c WHERE c.action = 'unsubscribe' AND c.created_at >= w.start_at AND c.created_at < w.end_at)::int AS unsubscribes,
              (SELECT count(*) FROM sup WHERE sup.reason = 'bounced' AND sup.created_at >= w.start_at AND sup.created_at < w.end_at)::int AS bounces,
              (SELECT count(*) FROM sup WHERE sup.reason = 'complained' AND sup.created_at >= w.start_at AND sup.created_at < w.end_at)::int AS complaints
         FROM w ORDER BY w.i`,
    );
  }

  /** The last digests (newest first) with their delivery figures. */
  async lastDigests(limit = 10): Promise<DigestFigures[]> {
    return rows<DigestFigures>(
      this.ds,
      `SELECT g.id, n.name AS newsletter, g.status, g.send_at AS "sendAt", g.started_at AS "startedAt", g.recipients,
              COALESCE(f.sent, 0) AS sent, COALESCE(f.failed, 0) AS failed, COALESCE(f.unsubscribed_after, 0) AS "unsubscribedAfter"
         FROM (SELECT * FROM digests WHERE status <> 'scheduled' ORDER BY COALESCE(started_at, send_at) DESC, id DESC LIMIT $1) g
         JOIN newsletters n ON n.id = g.newsletter_id
         LEFT JOIN LATERAL (
           SELECT count(*) FILTER (WHERE d.status = 'sent')::int AS sent,
                  count(*) FILTER (WHERE d.status = 'failed')::int AS failed,
                  count(*) FILTER (WHERE s.status = 'unsubscribed' AND s.unsubscribed_at > g.started_at)::int AS unsubscribed_after
             FROM deliveries d LEFT JOIN subscriptions s ON s.id = d.subscription_id
            WHERE d.digest_id = g.id) f ON true
        ORDER BY COALESCE(g.started_at, g.send_at) DESC, g.id DESC`,
      [limit],
    );
  }
}
