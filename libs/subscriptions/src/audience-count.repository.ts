import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';

/** How many readers a send would reach now: the console's "Send to N readers?" confirmation. */
@Injectable()
export class AudienceCountRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Active subscriptions of a newsletter whose subscriber may be mailed (not bounced, complained or suppressed). */
  async activeRecipients(slug: string): Promise<number> {
    const r = await rows<{ n: number }>(
      this.ds,
      `SELECT count(*)::int AS n FROM subscriptions s
         JOIN newsletters n ON n.id = s.newsletter_id
         JOIN subscribers u ON u.id = s.subscriber_id
        WHERE n.slug = $1 AND s.status = 'active' AND u.status = 'ok'`,
      [slug],
    );
    return r[0]?.n ?? 0;
  }
}
