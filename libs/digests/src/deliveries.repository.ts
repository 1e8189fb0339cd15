import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';

type Db = EntityManager | DataSource;

/** PostgreSQL regex for an SMTP reply with enhanced status 5.7.x ("554 5.7.1", "550-5.7.26"). */
const POLICY_RE = '\\m5\\d\\d[ -]5\\.7\\.';

/** The send path's SQL beyond `DigestsRepository`'s: empty and paused digests, policy rejections. */
@Injectable()
export class DeliveriesRepository {
  /** A digest that reached 0 recipients: `skipped`, reason "no active subscribers" (false if it is no longer sending). */
  async skipIfEmpty(db: Db, digestId: string): Promise<boolean> {
    const r = await rows(
      db,
      `UPDATE digests SET status = 'skipped', finished_at = now(), reason = 'no active subscribers'
        WHERE id = $1 AND status = 'sending' AND recipients = 0 RETURNING 1`,
      [digestId],
    );
    return r.length > 0;
  }

  /** The digest's deliveries refused by the receiving side's policy (5.7.x). */
  async policyRejections(db: Db, digestId: string): Promise<number> {
    const [{ n }] = await rows<{ n: number }>(
      db,
      `SELECT count(*)::int AS n FROM deliveries WHERE digest_id = $1 AND status = 'failed' AND detail ~ $2`,
      [digestId, POLICY_RE],
    );
    return n;
  }

  /** Stops a sending digest as failed, saying why; false when it was no longer sending. */
  async pause(db: Db, digestId: string, reason: string): Promise<boolean> {
    const r = await rows(
      db,
      `UPDATE digests SET status = 'failed', finished_at = now(),
         reason = $2 WHERE id = $1 AND status = 'sending' RETURNING 1`,
      [digestId, reason],
    );
    return r.length > 0;
  }

  /**
   * Stops, as `pause` does, every other digest still sending through the same SMTP route (null:
   * the newsletters without one, on SMTP_URL); returns their ids.
   */
  async pauseRoute(db: Db, route: string | null, exceptDigestId: string, reason: string): Promise<string[]> {
    const r = await rows<{ id: string }>(
      db,
      `UPDATE digests d SET status = 'failed', finished_at = now(), reason = $3
         FROM newsletters n
        WHERE n.id = d.newsletter_id AND n.smtp_route IS NOT DISTINCT FROM $1 AND d.id <> $2 AND d.status = 'sending'
        RETURNING d.id::text AS id`,
      [route, exceptDigestId, reason],
    );
    return r.map((x) => x.id);
  }
}
