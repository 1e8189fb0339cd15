import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';
import { suppressedSql } from './suppression-check.js';

type Db = EntityManager | DataSource;

export type ChunkParams = [
  string[],
  (string | null)[],
  (string | null)[],
  string[],
  string[],
  (string | null)[],
  Buffer[],
  number,
];

/**
 * One chunk of rows as parallel arrays ($1 email … $7 email hash, in file order; $8 the newsletter).
 * Data-modifying CTEs all run once, on one snapshot; ORDER BY keeps ids in file order.
 */
const IMPORT_CHUNK_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::bytea[])
    WITH ORDINALITY AS t(email, name, timezone, topics, consented_at, source, hash, ord)
), allowed AS (
  SELECT i.* FROM input i WHERE NOT ${suppressedSql('i.hash', 'mail')}
), subs AS (
  INSERT INTO subscribers (email, name, timezone)
  SELECT email, name, timezone FROM allowed ORDER BY ord
  ON CONFLICT (email) DO UPDATE SET name = COALESCE(EXCLUDED.name, subscribers.name),
    timezone = COALESCE(EXCLUDED.timezone, subscribers.timezone), updated_at = now()
  RETURNING id, email, status
), ok AS (
  SELECT a.ord, s.id AS subscriber_id, a.topics, a.consented_at, a.source
  FROM allowed a JOIN subs s ON s.email = a.email WHERE s.status = 'ok'
), upserted AS (
  -- New → active; pending → active; active → topics refreshed; unsubscribed → left alone (they chose to leave).
  INSERT INTO subscriptions (subscriber_id, newsletter_id, status, topics, source, confirmed_at)
  SELECT i.subscriber_id, $8, 'active', CASE WHEN i.topics = '' THEN '{}'::text[] ELSE string_to_array(i.topics, '|') END, i.source, i.consented_at
  FROM ok i ORDER BY i.ord
  ON CONFLICT (subscriber_id, newsletter_id) DO UPDATE SET
    status = CASE WHEN subscriptions.status = 'pending' THEN 'active' ELSE subscriptions.status END,
    confirmed_at = CASE WHEN subscriptions.status = 'pending' THEN EXCLUDED.confirmed_at ELSE subscriptions.confirmed_at END,
    topics = CASE WHEN cardinality(EXCLUDED.topics) > 0 THEN EXCLUDED.topics ELSE subscriptions.topics END
  WHERE subscriptions.status <> 'unsubscribed'
  RETURNING subscriber_id, (xmax = 0) AS created
), consent AS (
  INSERT INTO consent_records (subscriber_id, newsletter_id, action, source_url, consent_text, consent_version)
  SELECT ok.subscriber_id, $8, 'import', ok.source, 'Imported as already consented on ' || to_char(ok.consented_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'import'
  FROM ok JOIN upserted u ON u.subscriber_id = ok.subscriber_id ORDER BY ok.ord
)
SELECT (SELECT count(*) FROM allowed)::int AS allowed, (SELECT count(*) FROM ok)::int AS ok,
  (SELECT count(*) FROM upserted)::int AS upserted, (SELECT count(*) FROM upserted WHERE created)::int AS created`;
export interface ChunkCounts {
  /** Rows not suppressed. */
  allowed: number;
  /** Of those, rows whose subscriber is ok (not bounced or complained). */
  ok: number;
  /** Of those, subscriptions created or updated (not unsubscribed from this newsletter). */
  upserted: number;
  created: number;
}

export interface ExportRow {
  id: string;
  email: string;
  name: string | null;
  topics: string[];
  timezone: string | null;
  status: string;
  confirmed_at: Date | null;
  source: string | null;
}

/** SQL of bulk import and export. */
@Injectable()
export class ImportExportRepository {
  async newsletterId(db: Db, slug: string): Promise<number | null> {
    const r = await rows<{ id: number }>(db, `SELECT id FROM newsletters WHERE slug = $1`, [slug]);
    return r[0]?.id ?? null;
  }

  /** One chunk of an import in one statement (see IMPORT_CHUNK_SQL). */
  async writeChunk(em: EntityManager, params: ChunkParams): Promise<ChunkCounts> {
    const [counts] = await rows<ChunkCounts>(em, IMPORT_CHUNK_SQL, params);
    return counts;
  }

  /** The next 1 000 subscribers of a newsletter after subscriber id `after` (keyset paging). */
  async exportPage(db: Db, newsletterId: number, after: string): Promise<ExportRow[]> {
    return rows<ExportRow>(
      db,
      `SELECT u.id, u.email, u.name, s.topics, u.timezone, s.status, s.confirmed_at, s.source
       FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
       WHERE s.newsletter_id = $1 AND u.id > $2 ORDER BY u.id LIMIT 1000`,
      [newsletterId, after],
    );
  }
}
