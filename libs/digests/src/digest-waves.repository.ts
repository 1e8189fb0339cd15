import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';
import type { DigestRow } from './digests.repository.js';
import type { Wave, ZoneReaders } from './local-waves.js';
import { isTimeZone } from './weekly-schedule.js';

type Db = EntityManager | DataSource;

export type WaveStatus = 'waiting' | 'sending' | 'skipped';

/** A stored wave, without its ledger figures. */
export interface WaveState {
  wave: number;
  sendAt: Date;
  timezone: string;
  status: WaveStatus;
}

/** A stored wave (as planned) with its ledger figures. */
export interface WaveRow extends Wave {
  status: WaveStatus;
  reason: string | null;
  recipients: number;
  sent: number;
  failed: number;
  skipped: number;
  open: number;
}

/** The zone of a local digest's readers without one: the newsletter's schedule zone, else UTC. */
export function fallbackZone(d: Pick<DigestRow, 'schedule_timezone'>): string {
  return d.schedule_timezone && isTimeZone(d.schedule_timezone) ? d.schedule_timezone : 'UTC';
}

/** SQL for a local digest's waves: readers whose local send time falls on one instant (see local-waves.ts). */
@Injectable()
export class DigestWavesRepository {
  /**
   * The newsletter's active readers by zone. Readers without a zone, or with one this runtime does
   * not know, count in the fallback zone (see `fallbackZone`).
   */
  async zones(db: Db, d: Pick<DigestRow, 'newsletter_id' | 'schedule_timezone'>): Promise<ZoneReaders[]> {
    const fallback = fallbackZone(d);
    const found = await rows<ZoneReaders>(
      db,
      `SELECT COALESCE(u.timezone, $2) AS timezone, count(*)::int AS readers
       FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
       WHERE s.newsletter_id = $1 AND s.status = 'active' AND u.status = 'ok' GROUP BY 1`,
      [d.newsletter_id, fallback],
    );
    return found.map((z) => (isTimeZone(z.timezone) ? z : { timezone: fallback, readers: z.readers }));
  }

  /** A digest's waves, once (a retried plan keeps the first). */
  async store(em: EntityManager, digestId: string, waves: Wave[]): Promise<void> {
    for (const w of waves) {
      await em.query(
        `INSERT INTO digest_waves (digest_id, wave, send_at, utc_offset, timezone, timezones, readers)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
        [digestId, w.wave, w.sendAt, w.utcOffset, w.timezone, w.timezones, w.readers],
      );
    }
  }

  async list(db: Db, digestId: string): Promise<WaveRow[]> {
    return rows<WaveRow>(
      db,
      `SELECT w.wave, w.send_at AS "sendAt", w.utc_offset AS "utcOffset", w.timezone, w.timezones, w.readers,
         w.status, w.reason,
         count(x.subscriber_id)::int AS recipients,
         count(*) FILTER (WHERE x.status = 'sent')::int AS sent,
         count(*) FILTER (WHERE x.status = 'failed')::int AS failed,
         count(*) FILTER (WHERE x.status = 'skipped')::int AS skipped,
         count(*) FILTER (WHERE x.status IN ('pending', 'sending'))::int AS open
       FROM digest_waves w LEFT JOIN deliveries x ON x.digest_id = w.digest_id AND x.wave = w.wave
       WHERE w.digest_id = $1 GROUP BY w.digest_id, w.wave ORDER BY w.wave`,
      [digestId],
    );
  }

  async states(db: Db, digestId: string): Promise<WaveState[]> {
    return rows<WaveState>(
      db,
      `SELECT wave, send_at AS "sendAt", timezone, status FROM digest_waves WHERE digest_id = $1 ORDER BY wave`,
      [digestId],
    );
  }

  /** The wave goes out: true for the one caller that moved it from waiting. */
  async start(db: Db, digestId: string, wave: number): Promise<boolean> {
    const r = await rows(
      db,
      `UPDATE digest_waves SET status = 'sending' WHERE digest_id = $1 AND wave = $2 AND status = 'waiting' RETURNING 1`,
      [digestId, wave],
    );
    return r.length > 0;
  }

  /** Rows still pending in waves that were skipped: skipped with their wave's reason. */
  async skipRowsOfSkipped(db: Db, digestId: string): Promise<void> {
    await db.query(
      `UPDATE deliveries x SET status = 'skipped', detail = w.reason, finished_at = now()
       FROM digest_waves w
       WHERE w.digest_id = $1 AND w.status = 'skipped' AND x.digest_id = $1 AND x.wave = w.wave AND x.status = 'pending'`,
      [digestId],
    );
  }

  /** A wave that will not be sent: it and its rows still pending are marked skipped with the reason. */
  async skip(em: EntityManager, digestId: string, wave: number, reason: string): Promise<boolean> {
    const r = await rows(
      em,
      `UPDATE digest_waves SET status = 'skipped', reason = $3
       WHERE digest_id = $1 AND wave = $2 AND status = 'waiting' RETURNING 1`,
      [digestId, wave, reason],
    );
    if (r.length === 0) return false;
    await em.query(
      `UPDATE deliveries SET status = 'skipped', detail = $3, finished_at = now()
       WHERE digest_id = $1 AND wave = $2 AND status = 'pending'`,
      [digestId, wave, reason],
    );
    return true;
  }
}
