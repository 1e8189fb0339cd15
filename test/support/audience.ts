import { emailHash } from '#subscriptions/tokens.js';
import { query } from './db.js';

/** Inserts `count` subscribers of `newsletter` with the given statuses, set-based. Returns their addresses. */
export async function addAudience(
  dbUrl: string,
  opts: {
    prefix: string;
    count: number;
    newsletter: string;
    subscription?: 'active' | 'pending' | 'unsubscribed';
    subscriber?: 'ok' | 'bounced' | 'complained' | 'suppressed';
    suppressWithSecret?: string;
  },
): Promise<string[]> {
  const list = await query<{ email: string }>(
    dbUrl,
    `WITH s AS (
       INSERT INTO subscribers (email, name, status)
       SELECT $1 || g || '@example.com', 'Reader ' || g, $2 FROM generate_series(1, $3) g
       RETURNING id, email)
     , sub AS (
       INSERT INTO subscriptions (subscriber_id, newsletter_id, status, confirmed_at)
       SELECT s.id, (SELECT id FROM newsletters WHERE slug = $4), $5, now() FROM s
       RETURNING subscriber_id)
     SELECT s.email FROM s JOIN sub ON sub.subscriber_id = s.id ORDER BY s.id`,
    [opts.prefix, opts.subscriber ?? 'ok', opts.count, opts.newsletter, opts.subscription ?? 'active'],
  );
  const emails = list.map((r) => r.email);
  if (opts.suppressWithSecret) {
    for (const e of emails) {
      await query(dbUrl, `INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'manual')`, [
        emailHash(opts.suppressWithSecret, e),
      ]);
    }
  }
  return emails;
}
