/**
 * Topic variants and local time: the same audience and the same six articles sent with
 * `personalize: order` (each reader's topic set a variant: 63 sets of six topics plus the issue as
 * it is = 64) in local time (readers in 20 zones, one wave each, all of them due: a digest whose
 * wall-clock time has just come in the last zone) and with `personalize: off` at the newsletter's
 * time (one variant, one wave), alternated, on one worker (which needs DIGEST_GRACE_MINUTES ≥ 1 440).
 */
import { type DigestRun, timedDigest } from './digest.js';
import { wallClockAt } from '#digests/local-waves.js';
import { addArticles, type Child, log, query } from './support.js';
import type { Sink } from './digest.js';

export const VARIANT_SLUG = 'bench-variants';
const TOPICS = 6;
/** Twenty real zones from UTC−10 to UTC+8 (one a half-hour zone): twenty waves. */
export const VARIANT_ZONES = [
  'Pacific/Honolulu',
  'America/Anchorage',
  'America/Los_Angeles',
  'America/Denver',
  'America/Chicago',
  'America/New_York',
  'America/Halifax',
  'America/Sao_Paulo',
  'Atlantic/South_Georgia',
  'Atlantic/Azores',
  'Europe/London',
  'Europe/Berlin',
  'Europe/Athens',
  'Europe/Moscow',
  'Asia/Dubai',
  'Asia/Karachi',
  'Asia/Kolkata',
  'Asia/Dhaka',
  'Asia/Bangkok',
  'Asia/Singapore',
];

/** The newsletter and its readers: reader i follows the topics of the bits of i mod 64. */
export async function addVariantAudience(url: string, n: number): Promise<void> {
  await query(url, `INSERT INTO newsletters (slug, name) VALUES ($1, 'Bench variants') ON CONFLICT DO NOTHING`, [
    VARIANT_SLUG,
  ]);
  await query(
    url,
    `WITH s AS (
       INSERT INTO subscribers (email, name, status, timezone)
       SELECT 'variant' || g || '@example.com', 'Reader ' || g, 'ok', ($4::text[])[1 + g % cardinality($4::text[])]
       FROM generate_series(1, $1::int) g
       RETURNING id)
     INSERT INTO subscriptions (subscriber_id, newsletter_id, status, confirmed_at, topics)
     SELECT s.id, (SELECT id FROM newsletters WHERE slug = $2), 'active', now(),
       ARRAY(SELECT 'Bench topic ' || b FROM generate_series(1, $3::int) b WHERE ((s.id % 64) >> (b - 1)) & 1 = 1)
     FROM s`,
    [n, VARIANT_SLUG, TOPICS, VARIANT_ZONES],
  );
  await query(url, 'ANALYZE subscribers; ANALYZE subscriptions');
}

/** Six fresh articles, article k on topic k (same size as the main digest's). */
const addVariantArticles = (url: string, newsletter: string, tag: string) =>
  addArticles(url, newsletter, tag, TOPICS, true);

export interface VariantsResult {
  many: DigestRun[];
  one: DigestRun[];
  /** Median of the reps' (64-variant rate ÷ one-variant rate). */
  ratio: number;
}

export async function benchVariants(opts: {
  dbUrl: string;
  apiUrl: string;
  sink: Sink;
  worker: Child;
  n: number;
  reps: number;
}): Promise<VariantsResult> {
  const run = async (mode: 'order' | 'off') => {
    await query(opts.dbUrl, `UPDATE newsletters SET personalize = $2 WHERE slug = $1`, [VARIANT_SLUG, mode]);
    return timedDigest({
      dbUrl: opts.dbUrl,
      apiUrl: opts.apiUrl,
      sink: opts.sink,
      slug: VARIANT_SLUG,
      recipients: opts.n,
      worker: opts.worker,
      timeoutMs: Math.max(120_000, opts.n * 20),
      articles: addVariantArticles,
      // 64 variants in 20 local waves: the wall-clock time a minute ago in the last zone (UTC−10),
      // so every wave is due (the first ones up to 18 hours late, within the worker's grace).
      body: () =>
        mode === 'order'
          ? { delivery: 'local', sendAt: wallClockAt(new Date(Date.now() - 60_000), VARIANT_ZONES[0]) }
          : {},
    });
  };
  await run('order'); // warm-up, not counted
  const many: DigestRun[] = [];
  const one: DigestRun[] = [];
  const ratios: number[] = [];
  for (let rep = 1; rep <= opts.reps; rep++) {
    // Alternated (odd reps 64 first, even reps one first), so that drift hits both alike.
    let mm: DigestRun;
    let o: DigestRun;
    if (rep % 2) {
      mm = await run('order');
      o = await run('off');
    } else {
      o = await run('off');
      mm = await run('order');
    }
    many.push(mm);
    one.push(o);
    ratios.push(mm.mailsPerS / o.mailsPerS);
    log(
      `  variants rep ${rep}: 64 variants ${mm.mailsPerS.toFixed(0)}/s (mjml ${mm.mjmlCalls}, first message after ${mm.firstMs.toFixed(0)} ms), ` +
        `one ${o.mailsPerS.toFixed(0)}/s (mjml ${o.mjmlCalls}, first after ${o.firstMs.toFixed(0)} ms) → ${(mm.mailsPerS / o.mailsPerS).toFixed(3)}; ` +
        `worker CPU ms/1000 mails ${mm.cpu.worker?.toFixed(0)} vs ${o.cpu.worker?.toFixed(0)}, PostgreSQL ${mm.cpu.postgres.toFixed(0)} vs ${o.cpu.postgres.toFixed(0)}, ` +
        `worker thread busy ${((mm.workerBusy ?? 0) * 100).toFixed(0)} % vs ${((o.workerBusy ?? 0) * 100).toFixed(0)} %`,
    );
  }
  const sorted = [...ratios].sort((a, b) => a - b);
  return { many, one, ratio: sorted[Math.floor(sorted.length / 2)] };
}
