import type pg from 'pg';
import { safeUrl } from '#digests/digest-renderer.service.js';
import { BURST_SECONDS, EARLY_SECONDS } from './click-verdict.js';

/** One click to record: `reason` is the request's own verdict (scanner, prefetch) or null. */
export interface ClickRecord {
  digestId: string;
  articleId: string;
  subscriberId: string;
  clickedAt: Date;
  reason: 'scanner' | 'prefetch' | null;
}

/**
 * Records a group of clicks in one statement (one round trip and one commit for all). Clicks
 * whose digest, article or reader no longer exists are left out. Each new click is a machine's
 * when the request said so, when it came within EARLY_SECONDS of the mail's delivery, or when it
 * completes a burst: the reader's clicks within BURST_SECONDS before their latest cover every
 * article link of their mail (at least two). Earlier clicks of that burst, recorded as human by
 * an earlier statement, become `burst` too (the two parts touch different rows: a statement's
 * parts do not see each other's writes).
 */
const RECORD_SQL = `
  WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::text[])
      AS t(digest_id, article_id, subscriber_id, clicked_at, reason)
  ),
  known AS (
    SELECT i.*, dl.finished_at, dl.variant FROM input i
    JOIN digests g ON g.id = i.digest_id
    JOIN articles a ON a.id = i.article_id
    JOIN subscribers s ON s.id = i.subscriber_id
    LEFT JOIN deliveries dl ON dl.digest_id = i.digest_id AND dl.subscriber_id = i.subscriber_id
  ),
  pairs AS (
    SELECT digest_id, subscriber_id, max(variant) AS variant, max(clicked_at) AS last FROM known
    GROUP BY digest_id, subscriber_id
  ),
  earlier AS (
    SELECT c.id, c.digest_id, c.subscriber_id, c.article_id, c.clicked_at, c.verdict FROM link_clicks c
    JOIN pairs p ON p.digest_id = c.digest_id AND p.subscriber_id = c.subscriber_id
    WHERE c.clicked_at >= p.last - make_interval(secs => ${BURST_SECONDS})
  ),
  -- Readers with two articles or more clicked in the window: only these can be a burst.
  candidates AS (
    SELECT p.digest_id, p.subscriber_id, p.variant, p.last, count(DISTINCT x.article_id) AS clicked
    FROM pairs p JOIN (
      SELECT digest_id, subscriber_id, article_id, clicked_at FROM earlier
      UNION ALL
      SELECT digest_id, subscriber_id, article_id, clicked_at FROM known
    ) x ON x.digest_id = p.digest_id AND x.subscriber_id = p.subscriber_id
      AND x.clicked_at >= p.last - make_interval(secs => ${BURST_SECONDS})
    GROUP BY p.digest_id, p.subscriber_id, p.variant, p.last
    HAVING count(DISTINCT x.article_id) >= 2
  ),
  -- ... whose clicks cover every article link of their mail (their variant's, else the issue's).
  bursts AS (
    SELECT c.digest_id, c.subscriber_id, c.last FROM candidates c
    WHERE c.clicked >= COALESCE(
      (SELECT cardinality(v.article_ids) FROM digest_variants v
        WHERE v.digest_id = c.digest_id AND v.variant = COALESCE(c.variant, 0)),
      (SELECT count(*) FROM digest_articles da WHERE da.digest_id = c.digest_id))
  ),
  reclassified AS (
    UPDATE link_clicks c SET verdict = 'machine', reason = 'burst'
    FROM earlier e JOIN bursts b USING (digest_id, subscriber_id)
    WHERE c.id = e.id AND e.verdict = 'human'
    RETURNING c.id
  ),
  judged AS (
    SELECT k.digest_id, k.article_id, k.subscriber_id, k.clicked_at, COALESCE(
      k.reason,
      CASE WHEN k.finished_at IS NOT NULL AND k.clicked_at < k.finished_at + make_interval(secs => ${EARLY_SECONDS})
        THEN 'early' END,
      CASE WHEN b.last IS NOT NULL AND k.clicked_at >= b.last - make_interval(secs => ${BURST_SECONDS})
        THEN 'burst' END) AS reason
    FROM known k LEFT JOIN bursts b USING (digest_id, subscriber_id)
  )
  INSERT INTO link_clicks (digest_id, article_id, subscriber_id, clicked_at, verdict, reason)
  SELECT digest_id, article_id, subscriber_id, clicked_at,
    CASE WHEN reason IS NULL THEN 'human' ELSE 'machine' END, reason
  FROM judged`;

export async function recordClicks(pool: pg.Pool, clicks: ClickRecord[]): Promise<void> {
  await pool.query({
    name: 'record_clicks',
    text: RECORD_SQL,
    values: [
      clicks.map((c) => c.digestId),
      clicks.map((c) => c.articleId),
      clicks.map((c) => c.subscriberId),
      clicks.map((c) => c.clickedAt),
      clicks.map((c) => c.reason),
    ],
  });
}

/** The article a token names, if it and the digest still exist and its URL is http(s). */
export async function articleUrl(pool: pg.Pool, digestId: string, articleId: string): Promise<string | null> {
  const { rows } = await pool.query<{ url: string }>({
    name: 'click_article_url',
    text: `SELECT a.url FROM articles a WHERE a.id = $2 AND EXISTS (SELECT 1 FROM digests d WHERE d.id = $1)`,
    values: [digestId, articleId],
  });
  return safeUrl(rows[0]?.url ?? null);
}
