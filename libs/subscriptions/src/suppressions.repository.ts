import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';
import { type SuppressionScope, suppressedSql } from './suppression-check.js';

export type SuppressionReason = 'bounced' | 'complained' | 'manual' | 'erased';

export interface SuppressionRow {
  id: string;
  email_hash: Buffer;
  reason: SuppressionReason;
  detail: string | null;
  created_at: Date;
}

type Db = EntityManager | DataSource;

/** The suppression list: keyed hashes of addresses that must not be mailed, and why. */
@Injectable()
export class SuppressionsRepository {
  /** The hashes (hex) among these that are suppressed for `scope`, in one query. */
  async suppressed(db: Db, hashes: Buffer[], scope: SuppressionScope): Promise<Set<string>> {
    if (hashes.length === 0) return new Set();
    const found = await rows<{ h: Buffer }>(
      db,
      `SELECT h FROM unnest($1::bytea[]) AS h WHERE ${suppressedSql('h', scope)}`,
      [hashes],
    );
    return new Set(found.map((x) => x.h.toString('hex')));
  }

  async isSuppressed(db: Db, hash: Buffer, scope: SuppressionScope): Promise<boolean> {
    return (await this.suppressed(db, [hash], scope)).size > 0;
  }

  /** Why the address is listed, or null (an erased address's hash included). */
  async reasonFor(db: Db, hash: Buffer): Promise<SuppressionReason | null> {
    const r = await rows<{ reason: SuppressionReason }>(db, `SELECT reason FROM suppressions WHERE email_hash = $1`, [
      hash,
    ]);
    return r[0]?.reason ?? null;
  }

  /** A bounce or complaint: listed once; an erasure's hash takes this reason. */
  async recordBounce(em: EntityManager, hash: Buffer, reason: 'bounced' | 'complained', detail: string): Promise<void> {
    await em.query(
      `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, $2, $3)
       ON CONFLICT (email_hash) DO UPDATE SET reason = CASE WHEN suppressions.reason = 'erased' THEN EXCLUDED.reason ELSE suppressions.reason END`,
      [hash, reason, detail],
    );
  }

  /** Listed by hand: an address already listed keeps its first reason (an erasure's hash takes this one). */
  async addManual(
    em: EntityManager,
    hash: Buffer,
    detail: string | null,
  ): Promise<{ reason: SuppressionReason; created: boolean }> {
    const r = await rows<{ reason: SuppressionReason; created: boolean }>(
      em,
      `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, 'manual', $2)
       ON CONFLICT (email_hash) DO UPDATE SET
         reason = CASE WHEN suppressions.reason = 'erased' THEN EXCLUDED.reason ELSE suppressions.reason END,
         detail = CASE WHEN suppressions.reason = 'erased' THEN EXCLUDED.detail ELSE suppressions.detail END
       RETURNING reason, (xmax = 0) AS created`,
      [hash, detail],
    );
    return r[0];
  }

  /** The hash an erasure leaves behind (an address already listed keeps its entry). */
  async addErased(em: EntityManager, hash: Buffer): Promise<void> {
    await em.query(
      `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, 'erased', 'erased on request')
       ON CONFLICT (email_hash) DO NOTHING`,
      [hash],
    );
  }

  /** Removes an erasure's hash, and nothing else. */
  async liftErasure(em: EntityManager, hash: Buffer): Promise<void> {
    await em.query(`DELETE FROM suppressions WHERE email_hash = $1 AND reason = 'erased'`, [hash]);
  }

  /** Deletes the entry of this hash or id; returns what it was, or null. */
  async remove(
    em: EntityManager,
    key: { hash: Buffer } | { id: string },
  ): Promise<Pick<SuppressionRow, 'id' | 'email_hash' | 'reason'> | null> {
    const gone = await rows<Pick<SuppressionRow, 'id' | 'email_hash' | 'reason'>>(
      em,
      `DELETE FROM suppressions WHERE ${'hash' in key ? 'email_hash' : 'id'} = $1 RETURNING id, email_hash, reason`,
      ['hash' in key ? key.hash : key.id],
    );
    return gone[0] ?? null;
  }

  /** Newest first, before the id `before` (null: from the newest), at most `limit`. */
  async page(db: Db, before: string | null, limit: number): Promise<SuppressionRow[]> {
    return rows<SuppressionRow>(
      db,
      `SELECT id, email_hash, reason, detail, created_at FROM suppressions
        WHERE ($1::bigint IS NULL OR id < $1::bigint) ORDER BY id DESC LIMIT $2`,
      [before, limit],
    );
  }

  async byId(db: Db, id: string): Promise<SuppressionRow | null> {
    const r = await rows<SuppressionRow>(
      db,
      `SELECT id, email_hash, reason, detail, created_at FROM suppressions WHERE id = $1`,
      [id],
    );
    return r[0] ?? null;
  }
}
