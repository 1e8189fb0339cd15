/**
 * "Never the same article twice": which articles of an issue other digests already sent (or are
 * sending) to a reader. The deliveries ledger says which digest and variant each reader got; each
 * variant names its articles. Read once per plan as `AlreadySent` (the other digests that carry any
 * of the articles), then per reader by the SQL of `alreadySentSql`.
 */
export interface AlreadySent {
  /** Other digests carrying one of the articles. */
  digests: string[];
  /** Of those, the ones still sending: their pending rows count as sent (they will be). */
  open: string[];
  /** (digest, variant, article): variant -1 stands for every variant (digests planned before variants). */
  pairs: { digest: string; variant: number; article: string }[];
}

export const NOTHING_SENT: AlreadySent = { digests: [], open: [], pairs: [] };

/**
 * The articles already sent to the subscriber `subscriberSql` (bigint[], sorted) as SQL
 * whose parameters start at $first; `'{}'` (and no parameter) when no other digest carries them.
 */
export function alreadySentSql(
  a: AlreadySent,
  subscriberSql: string,
  first: number,
): { sql: string; params: unknown[] } {
  if (a.digests.length === 0) return { sql: `'{}'::bigint[]`, params: [] };
  const [d, o, pd, pv, pa] = [0, 1, 2, 3, 4].map((i) => `$${first + i}`);
  return {
    sql: `ARRAY(SELECT DISTINCT c.a FROM deliveries x
      JOIN unnest(${pd}::bigint[], ${pv}::int[], ${pa}::bigint[]) AS c(d, v, a) ON c.d = x.digest_id AND (c.v = -1 OR c.v = x.variant)
      WHERE x.digest_id = ANY(${d}::bigint[]) AND x.subscriber_id = ${subscriberSql}
        AND (x.status = 'sent' OR (x.status IN ('pending', 'sending') AND x.digest_id = ANY(${o}::bigint[])))
      ORDER BY 1)`,
    params: [
      a.digests,
      a.open,
      a.pairs.map((p) => p.digest),
      a.pairs.map((p) => p.variant),
      a.pairs.map((p) => p.article),
    ],
  };
}
