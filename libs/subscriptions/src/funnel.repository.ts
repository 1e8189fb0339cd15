import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';

/** One signup source of a newsletter: what became of the subscriptions it brought in. */
export interface FunnelRow {
  /** The article page the signup box sat on (subscriptions.source); null when none was recorded. */
  source: string | null;
  /** Subscriptions created in the period. */
  signups: number;
  /** Of those, confirmed (confirmed_at set). */
  confirmed: number;
  /** Of those, whose reader downloaded the guide at least once. */
  guideDownloads: number;
  /** Of those, active now. */
  activeNow: number;
}

/** The signup funnel per source: one set-based query over a newsletter's recent subscriptions. */
@Injectable()
export class FunnelRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /**
   * The funnel of newsletter `slug` for subscriptions created at or after `since`, most sign-ups
   * first, then by source (byte order, no source last). Null when there is no such newsletter.
   */
  async bySource(slug: string, since: Date): Promise<FunnelRow[] | null> {
    // The LEFT JOIN tells "no such newsletter" (no row) from "no sign-ups" (one row with 0) in one
    // round trip; the index on (newsletter_id, created_at) keeps it to the period's rows.
    const found = await rows<{
      source: string | null;
      signups: number;
      confirmed: number;
      guide_downloads: number;
      active_now: number;
    }>(
      this.ds,
      `SELECT s.source,
              count(s.id)::int AS signups,
              count(s.confirmed_at)::int AS confirmed,
              count(s.guide_downloaded_at)::int AS guide_downloads,
              count(s.id) FILTER (WHERE s.status = 'active')::int AS active_now
         FROM newsletters n
         LEFT JOIN subscriptions s ON s.newsletter_id = n.id AND s.created_at >= $2
        WHERE n.slug = $1
        GROUP BY s.source
        ORDER BY signups DESC, s.source COLLATE "C" NULLS LAST`,
      [slug, since],
    );
    if (found.length === 0) return null;
    return found
      .filter((r) => r.signups > 0)
      .map((r) => ({
        source: r.source,
        signups: r.signups,
        confirmed: r.confirmed,
        guideDownloads: r.guide_downloads,
        activeNow: r.active_now,
      }));
  }
}
