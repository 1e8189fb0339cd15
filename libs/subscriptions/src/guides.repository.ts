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
