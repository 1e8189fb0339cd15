import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';

type Db = EntityManager | DataSource;

export interface DkimKeyRow {
  id: string;
  domain: string;
  selector: string;
  public_key: string;
  private_key_enc: Buffer;
  created_at: Date;
  retired_at: Date | null;
}

/** The `dkim_keys` table. */
@Injectable()
export class DkimKeysRepository {
  /** Active keys only (one per domain): what the senders sign with. */
  async active(db: Db): Promise<DkimKeyRow[]> {
    return (await db.query(`SELECT * FROM dkim_keys WHERE retired_at IS NULL`)) as DkimKeyRow[];
  }

  /** Every key, newest first within a domain. */
  async all(db: Db): Promise<DkimKeyRow[]> {
    return (await db.query(
      `SELECT * FROM dkim_keys ORDER BY domain, retired_at IS NOT NULL, created_at DESC, id DESC`,
    )) as DkimKeyRow[];
  }

  async exists(db: Db, domain: string, selector: string): Promise<boolean> {
    const rows = (await db.query(`SELECT 1 FROM dkim_keys WHERE domain = $1 AND selector = $2`, [
      domain,
      selector,
    ])) as unknown[];
    return rows.length > 0;
  }

  /** Retires the domain's active key, if any (in the caller's transaction, before `insert`). */
  async retireActive(db: Db, domain: string): Promise<void> {
    await db.query(`UPDATE dkim_keys SET retired_at = now() WHERE domain = $1 AND retired_at IS NULL`, [domain]);
  }

  async insert(db: Db, k: { domain: string; selector: string; publicKey: string; sealed: Buffer }): Promise<void> {
    await db.query(`INSERT INTO dkim_keys (domain, selector, public_key, private_key_enc) VALUES ($1, $2, $3, $4)`, [
      k.domain,
      k.selector,
      k.publicKey,
      k.sealed,
    ]);
  }

  /** Retires one key; false when there is no such key or it was retired already. */
  async retire(db: Db, domain: string, selector: string): Promise<boolean> {
    const [, count] = (await db.query(
      `UPDATE dkim_keys SET retired_at = now() WHERE domain = $1 AND selector = $2 AND retired_at IS NULL`,
      [domain, selector],
    )) as [unknown, number];
    return count > 0;
  }

  /** Deletes a retired key (its DNS record is gone); false when there is no retired key of that name. */
  async remove(db: Db, domain: string, selector: string): Promise<boolean> {
    const [, count] = (await db.query(
      `DELETE FROM dkim_keys WHERE domain = $1 AND selector = $2 AND retired_at IS NOT NULL`,
      [domain, selector],
    )) as [unknown, number];
    return count > 0;
  }

  /** Every newsletter's sender fields: which From domains mail leaves under. */
  async newsletterSenders(
    db: Db,
  ): Promise<{ slug: string; name: string; from_name: string | null; from_email: string | null }[]> {
    return (await db.query(`SELECT slug, name, from_name, from_email FROM newsletters ORDER BY name, slug`)) as {
      slug: string;
      name: string;
      from_name: string | null;
      from_email: string | null;
    }[];
  }
}
