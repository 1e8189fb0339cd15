import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';

type Db = EntityManager | DataSource;

export type BounceOutcome = 'bounced' | 'complained' | 'policy' | 'failed';

export interface NewBounceReport {
  key: Buffer;
  outcome: BounceOutcome;
  status: string | null;
  mailKind: 'digest' | 'confirmation' | 'guide' | 'test';
  digestId: string | null;
  subscriberId: string | null;
  detail: string;
}

/** Reports received on the bounce listener (see the bounce-reports migration). */
@Injectable()
export class BounceReportsRepository {
  /** The reader a token names: their address and status, or null when there is no such subscriber (erased). */
  async subscriber(db: Db, id: string): Promise<{ id: string; email: string; status: string } | null> {
    const r = await rows<{ id: string; email: string; status: string }>(
      db,
      `SELECT id, email, status FROM subscribers WHERE id = $1`,
      [id],
    );
    return r[0] ?? null;
  }

  /**
   * Records a report once per key; returns its id and whether what it calls for is already done
   * (`applied`). A digest that no longer exists is recorded without it.
   */
  async record(db: Db, r: NewBounceReport): Promise<{ id: string; applied: boolean }> {
    const found = await rows<{ id: string; applied: boolean }>(
      db,
      `WITH ins AS (
         INSERT INTO bounce_reports (report_key, outcome, status, mail_kind, digest_id, subscriber_id, detail)
         VALUES ($1, $2, $3, $4, (SELECT id FROM digests WHERE id = $5::bigint), $6, $7)
         ON CONFLICT (report_key) DO NOTHING
         RETURNING id, false AS applied)
       SELECT id, applied FROM ins
       UNION ALL
       SELECT id, applied_at IS NOT NULL FROM bounce_reports WHERE report_key = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
      [r.key, r.outcome, r.status, r.mailKind, r.digestId, r.subscriberId, r.detail],
    );
    if (found[0]) return found[0];
    // Another worker inserted the same report after this statement's snapshot: read it now.
    const other = await rows<{ id: string; applied: boolean }>(
      db,
      `SELECT id, applied_at IS NOT NULL AS applied FROM bounce_reports WHERE report_key = $1`,
      [r.key],
    );
    if (!other[0]) throw new Error('Bounce report neither inserted nor found');
    return other[0];
  }

  async markApplied(db: Db, id: string): Promise<void> {
    await db.query(`UPDATE bounce_reports SET applied_at = now() WHERE id = $1 AND applied_at IS NULL`, [id]);
  }

  /** A digest's reports by outcome (its readers, counted once each). */
  async countsForDigest(db: Db, digestId: string): Promise<Record<BounceOutcome, number>> {
    const found = await rows<{ outcome: BounceOutcome; n: string }>(
      db,
      `SELECT outcome, count(DISTINCT subscriber_id) AS n FROM bounce_reports WHERE digest_id = $1 GROUP BY outcome`,
      [digestId],
    );
    const out: Record<BounceOutcome, number> = { bounced: 0, complained: 0, policy: 0, failed: 0 };
    for (const r of found) out[r.outcome] = Number(r.n);
    return out;
  }
}
