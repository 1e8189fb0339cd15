import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';

/** One of the issue's articles and the clicks on its tracked link. */
export interface ArticleClicks {
  url: string;
  title: string;
  /** Human clicks (every click, not distinct readers). */
  clicks: number;
  /** Clicks judged automatic (security scanners, link prefetch, a burst of every link at once). */
  machineClicks: number;
  /** Distinct readers with at least one human click on this article. */
  uniqueClickers: number;
}

/** One topic variant of the issue: who got it and how many human clicks came from them. */
export interface VariantClicks {
  variant: number;
  /** The topics the variant is keyed on (empty: the issue as it is). */
  topics: string[];
  /** Its deliveries with status `sent`. */
  recipients: number;
  /** Human clicks by its recipients. */
  clicks: number;
}

/** `GET /v1/digests/:id/stats`: what a sent digest did (see docs/stats.md). */
export interface DigestStats {
  sent: number;
  failed: number;
  /** Recipients (status `sent`) whose subscription was unsubscribed after their copy went out. */
  unsubscribed: number;
  clicks: { human: number; machine: number };
  /** Distinct readers with at least one human click. */
  uniqueClickers: number;
  /** uniqueClickers / sent, 4 decimals; 0 when nothing was sent. */
  clickRate: number;
  /** Whether the digest was sent with tracked links (without them every click figure is 0). */
  tracking: boolean;
  /** Every article of the issue, in issue order, 0 clicks where none. */
  articles: ArticleClicks[];
  /** Every variant of the issue, by number. */
  variants: VariantClicks[];
  /**
   * Readers of this issue whose relay sent a report back to its VERP address (BOUNCE_DOMAIN; see
   * docs/bounces.md): suppressed as bounced or complained, or refused by policy or failed otherwise.
   */
  bounces: { bounced: number; complained: number; policy: number; failed: number };
}

/** One sent issue of a newsletter on its trend chart. */
export interface IssueTrendPoint {
  id: string;
  sendAt: Date;
  subject: string | null;
  tracking: boolean;
  sent: number;
  uniqueClickers: number;
  /** uniqueClickers / sent, 4 decimals; 0 when nothing was sent. */
  clickRate: number;
  unsubscribed: number;
}

/** How many sent issues the newsletter page's trend shows. */
export const TREND_ISSUES = 12;

/** A share with 4 decimals (0.3333), 0 when there is nothing to divide by. */
export function rate(part: number, whole: number): number {
  return whole > 0 ? Math.round((part / whole) * 10_000) / 10_000 : 0;
}

/**
 * The figures of "what worked": a digest's ledger and the clicks on its tracked links (the
 * verdicts in `link_clicks` are final, this only reads them), and a newsletter's trend across its
 * last issues. Each is one set-based statement; link_clicks is read through its
 * (digest_id, subscriber_id, clicked_at) index, the ledger through its primary key.
 */
@Injectable()
export class DigestStatsRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** A digest's figures; null when there is no such digest (or `id` cannot be one). */
  async forDigest(id: string): Promise<DigestStats | null> {
    if (!/^[1-9]\d{0,17}$/.test(id)) return null;
    const [r] = await rows<{
      tracking: boolean;
      sent: number;
      failed: number;
      unsubscribed: number;
      human: number;
      machine: number;
      unique_clickers: number;
      articles: ArticleClicks[] | null;
      variants: VariantClicks[] | null;
      bounces: DigestStats['bounces'];
    }>(
      this.ds,
      `WITH d AS (SELECT id, tracking FROM digests WHERE id = $1),
       per_variant AS (
         SELECT x.variant,
                count(*) FILTER (WHERE x.status = 'sent')::int AS sent,
                count(*) FILTER (WHERE x.status = 'failed')::int AS failed,
                count(*) FILTER (WHERE x.status = 'sent' AND s.unsubscribed_at > x.finished_at)::int AS unsubscribed
           FROM deliveries x LEFT JOIN subscriptions s ON s.id = x.subscription_id
          WHERE x.digest_id = $1 GROUP BY x.variant),
       clicks AS MATERIALIZED (
         SELECT c.article_id, c.subscriber_id, c.verdict FROM link_clicks c WHERE c.digest_id = $1),
       per_article AS (
         SELECT article_id,
                count(*) FILTER (WHERE verdict = 'human')::int AS clicks,
                count(*) FILTER (WHERE verdict = 'machine')::int AS machine_clicks,
                count(DISTINCT subscriber_id) FILTER (WHERE verdict = 'human')::int AS unique_clickers
           FROM clicks GROUP BY article_id),
       issue AS (
         -- The issue's order; articles only a variant or a click knows of (older digests) after it.
         SELECT DISTINCT ON (article_id) article_id, k1, k2 FROM (
           SELECT da.article_id, 0 AS k1, da.position::bigint AS k2 FROM digest_articles da WHERE da.digest_id = $1
           UNION ALL
           SELECT a.id, 1, v.variant::bigint * 100000 + a.pos
             FROM digest_variants v, unnest(v.article_ids) WITH ORDINALITY AS a(id, pos) WHERE v.digest_id = $1
           UNION ALL
           SELECT article_id, 2, article_id FROM per_article) u
         ORDER BY article_id, k1, k2),
       variant_clicks AS (
         SELECT x.variant, count(*)::int AS clicks
           FROM clicks c JOIN deliveries x ON x.digest_id = $1 AND x.subscriber_id = c.subscriber_id
          WHERE c.verdict = 'human' GROUP BY x.variant),
       variant_ids AS (
         SELECT variant FROM digest_variants WHERE digest_id = $1
         UNION SELECT variant FROM per_variant
         UNION SELECT variant FROM variant_clicks)
       SELECT d.tracking,
              COALESCE((SELECT sum(sent) FROM per_variant), 0)::int AS sent,
              COALESCE((SELECT sum(failed) FROM per_variant), 0)::int AS failed,
              COALESCE((SELECT sum(unsubscribed) FROM per_variant), 0)::int AS unsubscribed,
              (SELECT count(*) FROM clicks WHERE verdict = 'human')::int AS human,
              (SELECT count(*) FROM clicks WHERE verdict = 'machine')::int AS machine,
              (SELECT count(DISTINCT subscriber_id) FROM clicks WHERE verdict = 'human')::int AS unique_clickers,
              (SELECT json_agg(json_build_object(
                        'url', a.url, 'title', a.title, 'clicks', COALESCE(p.clicks, 0),
                        'machineClicks', COALESCE(p.machine_clicks, 0), 'uniqueClickers', COALESCE(p.unique_clickers, 0))
                      ORDER BY i.k1, i.k2, i.article_id)
                 FROM issue i JOIN articles a ON a.id = i.article_id
                 LEFT JOIN per_article p ON p.article_id = i.article_id) AS articles,
              (SELECT json_agg(json_build_object(
                        'variant', v.variant, 'topics', COALESCE(dv.topics, '{}'::text[]),
                        'recipients', COALESCE(pv.sent, 0), 'clicks', COALESCE(vc.clicks, 0))
                      ORDER BY v.variant)
                 FROM variant_ids v
                 LEFT JOIN digest_variants dv ON dv.digest_id = $1 AND dv.variant = v.variant
                 LEFT JOIN per_variant pv ON pv.variant = v.variant
                 LEFT JOIN variant_clicks vc ON vc.variant = v.variant) AS variants,
              (SELECT json_build_object(
                        'bounced', count(DISTINCT subscriber_id) FILTER (WHERE outcome = 'bounced'),
                        'complained', count(DISTINCT subscriber_id) FILTER (WHERE outcome = 'complained'),
                        'policy', count(DISTINCT subscriber_id) FILTER (WHERE outcome = 'policy'),
                        'failed', count(DISTINCT subscriber_id) FILTER (WHERE outcome = 'failed'))
                 FROM bounce_reports WHERE digest_id = $1) AS bounces
         FROM d`,
      [id],
    );
    if (!r) return null;
    return {
      sent: r.sent,
      failed: r.failed,
      unsubscribed: r.unsubscribed,
      clicks: { human: r.human, machine: r.machine },
      uniqueClickers: r.unique_clickers,
      clickRate: rate(r.unique_clickers, r.sent),
      tracking: r.tracking,
      articles: r.articles ?? [],
      variants: r.variants ?? [],
      bounces: r.bounces,
    };
  }

  /**
   * The newsletter's last `limit` sent issues (by slug), oldest first: recipients, distinct human
   * clickers, click rate and the recipients who unsubscribed after their copy.
   */
  async newsletterTrend(slug: string, limit = TREND_ISSUES): Promise<IssueTrendPoint[]> {
    const found = await rows<{
      id: string;
      send_at: Date;
      subject: string | null;
      tracking: boolean;
      sent: number;
      unsubscribed: number;
      clickers: number;
    }>(
      this.ds,
      `WITH last AS (
         SELECT g.id, g.send_at, g.subject, g.tracking, COALESCE(g.started_at, g.send_at) AS at
           FROM digests g JOIN newsletters n ON n.id = g.newsletter_id
          WHERE n.slug = $1 AND g.status = 'sent'
          ORDER BY COALESCE(g.started_at, g.send_at) DESC, g.id DESC LIMIT $2)
       SELECT l.id::text AS id, l.send_at, l.subject, l.tracking, f.sent, f.unsubscribed,
              (SELECT count(DISTINCT c.subscriber_id) FROM link_clicks c
                WHERE c.digest_id = l.id AND c.verdict = 'human')::int AS clickers
         FROM last l
         CROSS JOIN LATERAL (
           SELECT count(*)::int AS sent, count(*) FILTER (WHERE s.unsubscribed_at > x.finished_at)::int AS unsubscribed
             FROM deliveries x LEFT JOIN subscriptions s ON s.id = x.subscription_id
            WHERE x.digest_id = l.id AND x.status = 'sent') f
        ORDER BY l.at, l.id`,
      [slug, limit],
    );
    return found.map((r) => ({
      id: r.id,
      sendAt: r.send_at,
      subject: r.subject,
      tracking: r.tracking,
      sent: r.sent,
      uniqueClickers: r.clickers,
      clickRate: rate(r.clickers, r.sent),
      unsubscribed: r.unsubscribed,
    }));
  }
}
