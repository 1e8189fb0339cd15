import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';

/** The guides (lead magnets) and the newsletters that offer them. */
@Injectable()
export class GuidesRepository {
  /** The file of guide `slug` when it is the guide of this subscription's newsletter, else null. */
  async fileFor(
    db: EntityManager | DataSource,
    subscriptionId: string,
    slug: string,
  ): Promise<{ fileName: string; contentType: string } | null> {
    const found = await rows<{ file_name: string; content_type: string }>(
      db,
      `SELECT g.file_name, g.content_type FROM subscriptions s
       JOIN newsletters n ON n.id = s.newsletter_id JOIN guides g ON g.id = n.guide_id
       WHERE s.id = $1 AND g.slug = $2`,
      [subscriptionId, slug],
    );
    return found[0] ? { fileName: found[0].file_name, contentType: found[0].content_type } : null;
  }

  /**
   * `fileFor` and the first download in one statement (one round trip): when the file is found,
   * every subscription of the same reader to a newsletter offering this guide that has no
   * `guide_downloaded_at` yet gets it now. A second download changes nothing. `marked` counts the
   * subscriptions this download marked.
   */
  async fileForDownload(
    db: EntityManager | DataSource,
    subscriptionId: string,
    slug: string,
  ): Promise<{ fileName: string; contentType: string; marked: number } | null> {
    // A data-modifying CTE runs whether or not the outer SELECT reads it.
    const found = await rows<{ file_name: string; content_type: string; marked: number }>(
      db,
      `WITH file AS (
         SELECT s.subscriber_id, g.id AS guide_id, g.file_name, g.content_type FROM subscriptions s
         JOIN newsletters n ON n.id = s.newsletter_id JOIN guides g ON g.id = n.guide_id
         WHERE s.id = $1 AND g.slug = $2
       ), first_download AS (
         UPDATE subscriptions s SET guide_downloaded_at = now()
         FROM file f, newsletters n
         WHERE s.subscriber_id = f.subscriber_id AND n.id = s.newsletter_id AND n.guide_id = f.guide_id
           AND s.guide_downloaded_at IS NULL
         RETURNING s.id
       )
       SELECT file_name, content_type, (SELECT count(*) FROM first_download)::int AS marked FROM file`,
      [subscriptionId, slug],
    );
    const r = found[0];
    return r ? { fileName: r.file_name, contentType: r.content_type, marked: r.marked } : null;
  }

  /** One subscription per guide among these active subscriptions (the first by id), with the guide's slug and title. */
  async ofActiveSubscriptions(
    db: EntityManager | DataSource,
    subscriberId: string,
    newsletterIds: number[],
  ): Promise<{ subscriptionId: string; slug: string; title: string }[]> {
    const found = await rows<{ id: string; slug: string; title: string }>(
      db,
      `SELECT DISTINCT ON (g.id) s.id, g.slug, g.title FROM subscriptions s
       JOIN newsletters n ON n.id = s.newsletter_id JOIN guides g ON g.id = n.guide_id
       WHERE s.subscriber_id = $1 AND s.newsletter_id = ANY($2::int[]) AND s.status = 'active'
       ORDER BY g.id, s.id`,
      [subscriberId, newsletterIds],
    );
    return found.map((r) => ({ subscriptionId: r.id, slug: r.slug, title: r.title }));
  }
}
