import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { Newsletter } from '#db/entities/index.js';
import type { LedgerPg } from '#db/ledger-pg.service.js';
import { rows } from '#db/sql.js';
import type { IssueArticle, IssueTemplates } from './digest-renderer.service.js';
import { type AlreadySent, alreadySentSql, NOTHING_SENT } from './already-sent.js';
import type { IssueVariant, TopicSignature, VariantPlan } from './issue-variants.js';

export type DigestStatus = 'scheduled' | 'sending' | 'sent' | 'cancelled' | 'failed' | 'skipped';

export interface DigestRow {
  id: string;
  newsletter_id: number;
  newsletter_slug: string;
  newsletter_name: string;
  from_name: string | null;
  from_email: string | null;
  /** The newsletter's SMTP route (SMTP_ROUTES); null: SMTP_URL. */
  smtp_route: string | null;
  status: DigestStatus;
  trigger: 'manual' | 'schedule';
  send_at: Date;
  /** The rendered subject (set when the issue is rendered). */
  subject: string | null;
  /** The editor's subject, preheader and Markdown intro, as written (see digest-voice.ts). */
  subject_given: string | null;
  preheader: string | null;
  intro: string | null;
  /** The newsletter's subject template and personalize mode. */
  subject_template: string | null;
  personalize: 'off' | 'order' | 'only';
  /** Issue topics (keys) its variants are keyed on; null until planned. */
  variant_topics: string[] | null;
  variant_note: string | null;
  /** How many variants the issue has (0 until planned). */
  variants: number;
  /** `local`: sent at `local_time` (wall clock) in each reader's zone, in waves (see local-waves.ts). */
  delivery: 'newsletter' | 'local';
  local_time: string | null;
  /** The newsletter's schedule zone: a local digest's zone for readers without one. */
  schedule_timezone: string | null;
  html_template: string | null;
  text_template: string | null;
  /** Whether its article links are tracked: set with variant 0's templates (see `issueLinks`). */
  tracking: boolean;
  /** The newsletter's `tracking` and `archive` switches now. */
  newsletter_tracking: boolean;
  newsletter_archive: boolean;
  recipients: number | null;
  reason: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

/**
 * Which rows of a range a batch sends: of these waves (a local digest's waves that are due) and of
 * these variants (those rendered so far); all when absent.
 */
export interface BatchFilter {
  waves?: number[];
  variants?: number[];
}

/** Each reader's wave: by zone (`zones`), readers without one or of another zone in the default's. */
export interface FanOutWaves {
  zones: { zone: string; wave: number }[];
  defaultZone: string;
  defaultWave: number;
}

export interface Recipient {
  subscriberId: string;
  subscriptionId: string;
  email: string;
  name: string | null;
  /** The issue variant this reader gets (0: the issue as it is). */
  variant: number;
}

/** A variant's rendered templates. */
export interface VariantTemplates extends IssueTemplates {
  variant: number;
}

/** A line of the digest list. */
export interface DigestListItem {
  id: string;
  newsletter: string;
  status: DigestStatus;
  sendAt: Date;
  subject: string | null;
  recipients: number;
  sent: number;
  failed: number;
}

type Db = EntityManager | DataSource;

/** A reader's topics as a variant key: lower-cased, trimmed, only those in `keptSql` (text[]), distinct and sorted. */
const TOPIC_SET_SQL = (topicsSql: string, keptSql: string) =>
  `ARRAY(SELECT DISTINCT lower(btrim(t)) AS k FROM unnest(${topicsSql}) t WHERE lower(btrim(t)) = ANY(${keptSql}) ORDER BY k)`;

/** SQL for digests, their articles and the delivery ledger. Hot paths are set-based. */
@Injectable()
export class DigestsRepository {
  async find(db: Db, id: string, lock = false): Promise<DigestRow | null> {
    if (!/^\d{1,18}$/.test(id)) return null;
    const found = await rows<DigestRow>(
      db,
      `SELECT d.*, n.slug AS newsletter_slug, n.name AS newsletter_name, n.from_name, n.from_email, n.smtp_route, n.subject_template,
         n.personalize, n.schedule_timezone, n.tracking AS newsletter_tracking, n.archive AS newsletter_archive,
         (SELECT count(*)::int FROM digest_variants v WHERE v.digest_id = d.id) AS variants
       FROM digests d JOIN newsletters n ON n.id = d.newsletter_id WHERE d.id = $1 ${lock ? 'FOR UPDATE OF d' : ''}`,
      [id],
    );
    return found[0] ?? null;
  }

  async create(
    db: Db,
    newsletterId: number,
    sendAt: Date,
    trigger: 'manual' | 'schedule',
    triggerKey: string | null,
    voice: { subject?: string | null; preheader?: string | null; intro?: string | null } = {},
    localTime: string | null = null,
  ): Promise<{ id: string; created: boolean }> {
    const inserted = await rows<{ id: string }>(
      db,
      `INSERT INTO digests (newsletter_id, status, trigger, trigger_key, send_at, subject_given, preheader, intro, delivery, local_time)
       VALUES ($1, 'scheduled', $2, $3, $4, $5, $6, $7, CASE WHEN $8::text IS NULL THEN 'newsletter' ELSE 'local' END, $8)
       ON CONFLICT (trigger_key) DO NOTHING RETURNING id`,
      [
        newsletterId,
        trigger,
        triggerKey,
        sendAt,
        voice.subject ?? null,
        voice.preheader ?? null,
        voice.intro ?? null,
        localTime,
      ],
    );
    if (inserted.length) return { id: inserted[0].id, created: true };
    const existing = await rows<{ id: string }>(db, `SELECT id FROM digests WHERE trigger_key = $1`, [triggerKey]);
    return { id: existing[0].id, created: false };
  }

  async setStatus(db: Db, id: string, status: DigestStatus, reason: string | null = null): Promise<void> {
    await db.query(
      `UPDATE digests SET status = $2, reason = COALESCE($3, reason),
         started_at = CASE WHEN $2 = 'sending' THEN COALESCE(started_at, now()) ELSE started_at END,
         finished_at = CASE WHEN $2 IN ('sent','cancelled','failed','skipped') THEN now() ELSE finished_at END
       WHERE id = $1`,
      [id, status, reason],
    );
  }

  /** Moves a scheduled digest's time to now; false when it is no longer scheduled. */
  async sendNow(db: Db, id: string): Promise<boolean> {
    const moved = await rows(
      db,
      `UPDATE digests SET send_at = now() WHERE id = $1 AND status = 'scheduled' RETURNING id`,
      [id],
    );
    return moved.length > 0;
  }

  /** A local digest waits for its first reader's time: its send time moves there. */
  async moveSendAt(db: Db, id: string, at: Date): Promise<void> {
    await db.query(`UPDATE digests SET send_at = $2 WHERE id = $1 AND status = 'scheduled'`, [id, at]);
  }

  /** Cancels a scheduled or sending digest; false when it is neither. */
  async cancel(db: Db, id: string, reason: string): Promise<boolean> {
    const updated = await rows(
      db,
      `UPDATE digests SET status = 'cancelled', finished_at = now(), reason = $2
       WHERE id = $1 AND status IN ('scheduled','sending') RETURNING status`,
      [id, reason],
    );
    return updated.length > 0;
  }

  /** Latest first, of one newsletter (by slug) or of all, with their sent and failed counts. */
  async list(db: Db, slug: string | null, limit: number): Promise<DigestListItem[]> {
    const list = await rows<{
      id: string;
      slug: string;
      status: DigestStatus;
      send_at: Date;
      subject: string | null;
      recipients: number | null;
      sent: number;
      failed: number;
    }>(
      db,
      `SELECT d.id, n.slug, d.status, d.send_at, d.subject, d.recipients,
         (SELECT count(*) FROM deliveries x WHERE x.digest_id = d.id AND x.status = 'sent')::int AS sent,
         (SELECT count(*) FROM deliveries x WHERE x.digest_id = d.id AND x.status = 'failed')::int AS failed
       FROM digests d JOIN newsletters n ON n.id = d.newsletter_id
       WHERE ($1::text IS NULL OR n.slug = $1) ORDER BY d.id DESC LIMIT $2`,
      [slug, limit],
    );
    return list.map((r) => ({
      id: r.id,
      newsletter: r.slug,
      status: r.status,
      sendAt: r.send_at,
      subject: r.subject,
      recipients: r.recipients ?? 0,
      sent: r.sent,
      failed: r.failed,
    }));
  }

  /** The newsletter a digest is made for, by slug. */
  async newsletterBySlug(db: Db, slug: string): Promise<Newsletter | null> {
    return db.getRepository(Newsletter).findOne({ where: { slug } });
  }

  /**
   * The articles the next digest of a newsletter would carry: every article of the newsletter not
   * yet carried by one of its digests and published within its `lookback_days` (an article that
   * arrives after the digest it was "published" before still goes out; a feed's year of old items
   * does not), newest first, at most `max`. A digest has carried its articles once it is sending
   * or sent, or when a cancelled or failed one mailed anybody; one skipped, cancelled or failed
   * before any mail left has not. Future-dated articles wait for their time.
   */
  async candidateArticles(
    db: Db,
    newsletterId: number,
    max: number,
    excludeDigestId?: string,
  ): Promise<(IssueArticle & { id: string })[]> {
    return rows<IssueArticle & { id: string }>(
      db,
      `SELECT a.id, a.url, a.title, a.summary, a.image_url AS "imageUrl", a.topics
       FROM articles a JOIN article_newsletters an ON an.article_id = a.id AND an.newsletter_id = $1
       WHERE a.published_at <= now()
         AND a.published_at > now() - make_interval(days => (SELECT lookback_days FROM newsletters WHERE id = $1))
         AND NOT EXISTS (SELECT 1 FROM digest_articles da JOIN digests d ON d.id = da.digest_id
                         WHERE da.article_id = a.id AND d.newsletter_id = $1 AND d.id <> COALESCE($3::bigint, 0)
                           AND (d.status IN ('sending','sent')
                                OR (d.status IN ('cancelled','failed')
                                    AND EXISTS (SELECT 1 FROM deliveries x WHERE x.digest_id = d.id AND x.status = 'sent'))))
       ORDER BY a.published_at DESC, a.id DESC LIMIT $2`,
      [newsletterId, max, excludeDigestId ?? null],
    );
  }

  async attachArticles(db: Db, digestId: string, articleIds: string[]): Promise<void> {
    await db.query(
      `INSERT INTO digest_articles (digest_id, article_id, position)
       SELECT $1, a.id, a.pos FROM unnest($2::bigint[]) WITH ORDINALITY AS a(id, pos) ON CONFLICT DO NOTHING`,
      [digestId, articleIds],
    );
  }

  async articles(db: Db, digestId: string): Promise<(IssueArticle & { id: string })[]> {
    return rows(
      db,
      `SELECT a.id, a.url, a.title, a.summary, a.image_url AS "imageUrl", a.topics
       FROM digest_articles da JOIN articles a ON a.id = da.article_id WHERE da.digest_id = $1 ORDER BY da.position`,
      [digestId],
    );
  }

  /**
   * Articles by id, in the order given (a composed digest). Unknown ids are left out: the caller
   * compares lengths.
   */
  async articlesByIds(db: Db, articleIds: string[]): Promise<(IssueArticle & { id: string })[]> {
    if (articleIds.length === 0) return [];
    return rows(
      db,
      `SELECT a.id, a.url, a.title, a.summary, a.image_url AS "imageUrl", a.topics
       FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, pos) JOIN articles a ON a.id = x.id ORDER BY x.pos`,
      [articleIds],
    );
  }

  /** Article ids for URLs, in the order given; `null` where no article has that URL. */
  async articleIdsByUrl(db: Db, urls: string[]): Promise<(string | null)[]> {
    if (urls.length === 0) return [];
    const found = await rows<{ id: string | null }>(
      db,
      `SELECT a.id::text AS id FROM unnest($1::text[]) WITH ORDINALITY AS x(url, pos)
       LEFT JOIN articles a ON a.url = x.url ORDER BY x.pos`,
      [urls],
    );
    return found.map((r) => r.id);
  }

  /**
   * What an issue of this digest carries: the articles attached to it (a composed digest, or one
   * already planned), else the candidates the planner would pick now.
   */
  async issueArticles(
    db: Db,
    d: { id: string; newsletter_id: number },
    max: number,
  ): Promise<(IssueArticle & { id: string })[]> {
    const attached = await this.articles(db, d.id);
    return attached.length > 0 ? attached : this.candidateArticles(db, d.newsletter_id, max, d.id);
  }

  /** Ledger figures for a progress bar: counts by status and what finished in the last `windowSeconds`. */
  async progress(
    db: Db,
    digestId: string,
    windowSeconds: number,
  ): Promise<{
    sent: number;
    failed: number;
    skipped: number;
    open: number;
    recent: number;
    firstAt: Date | null;
    lastAt: Date | null;
  }> {
    const [r] = await rows<{
      sent: number;
      failed: number;
      skipped: number;
      open: number;
      recent: number;
      first_at: Date | null;
      last_at: Date | null;
    }>(
      db,
      `SELECT count(*) FILTER (WHERE status = 'sent')::int AS sent,
              count(*) FILTER (WHERE status = 'failed')::int AS failed,
              count(*) FILTER (WHERE status = 'skipped')::int AS skipped,
              count(*) FILTER (WHERE status IN ('pending','sending'))::int AS open,
              count(*) FILTER (WHERE status IN ('sent','failed') AND finished_at > now() - make_interval(secs => $2))::int AS recent,
              min(finished_at) FILTER (WHERE status IN ('sent','failed')) AS first_at,
              max(finished_at) FILTER (WHERE status IN ('sent','failed')) AS last_at
       FROM deliveries WHERE digest_id = $1`,
      [digestId, windowSeconds],
    );
    return {
      sent: r.sent,
      failed: r.failed,
      skipped: r.skipped,
      open: r.open,
      recent: r.recent,
      firstAt: r.first_at,
      lastAt: r.last_at,
    };
  }

  /** Variant 0's templates, and whether the issue's links are tracked (every variant renders as it did). */
  async storeTemplates(db: Db, digestId: string, t: IssueTemplates, tracking: boolean): Promise<void> {
    await db.query(
      `UPDATE digests SET subject = $2, html_template = $3, text_template = $4, tracking = $5 WHERE id = $1`,
      [digestId, t.subject, t.html, t.text, tracking],
    );
  }

  /**
   * Other digests that carry any of these articles, and in which of their variants: what "already
   * sent" is read from (see already-sent.ts). Cancelled and failed digests count for the rows they sent.
   */
  async alreadySent(db: Db, digestId: string, articleIds: string[]): Promise<AlreadySent> {
    if (articleIds.length === 0) return NOTHING_SENT;
    const found = await rows<{ digest: string; variant: number; article: string; open: boolean }>(
      db,
      `WITH carried AS (
         SELECT da.digest_id, da.article_id, g.status = 'sending' AS open FROM digest_articles da
         JOIN digests g ON g.id = da.digest_id
         WHERE da.article_id = ANY($2::bigint[]) AND da.digest_id <> $1 AND g.status IN ('sending', 'sent', 'cancelled', 'failed'))
       SELECT c.digest_id::text AS digest, v.variant, c.article_id::text AS article, c.open FROM carried c
       JOIN digest_variants v ON v.digest_id = c.digest_id AND c.article_id = ANY(v.article_ids)
       UNION ALL
       SELECT c.digest_id::text, -1, c.article_id::text, c.open FROM carried c
       WHERE NOT EXISTS (SELECT 1 FROM digest_variants v WHERE v.digest_id = c.digest_id)`,
      [digestId, articleIds],
    );
    const digests = [...new Set(found.map((f) => f.digest))];
    const open = [...new Set(found.filter((f) => f.open).map((f) => f.digest))];
    return { digests, open, pairs: found.map(({ digest, variant, article }) => ({ digest, variant, article })) };
  }

  /**
   * The newsletter's active readers grouped by which of the issue's topics (keys) they have and
   * which of its articles other digests already sent them.
   */
  async topicSignatures(
    db: Db,
    newsletterId: number,
    issueTopics: string[],
    already: AlreadySent,
  ): Promise<TopicSignature[]> {
    if (issueTopics.length === 0 && already.digests.length === 0) return [];
    const seen = alreadySentSql(already, 's.subscriber_id', 3);
    return rows<TopicSignature>(
      db,
      `SELECT ${TOPIC_SET_SQL('s.topics', '$2::text[]')} AS topics, ${seen.sql}::text[] AS seen, count(*)::int AS readers
       FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
       WHERE s.newsletter_id = $1 AND s.status = 'active' AND u.status = 'ok'
       GROUP BY 1, 2`,
      [newsletterId, issueTopics, ...seen.params],
    );
  }

  /** A digest's variants and their keys, once (a retried plan keeps the first plan). */
  async storeVariantPlan(em: EntityManager, digestId: string, plan: VariantPlan): Promise<void> {
    const set = await rows(
      em,
      `UPDATE digests SET variant_topics = $2, variant_note = $3 WHERE id = $1 AND variant_topics IS NULL RETURNING 1`,
      [digestId, plan.keptTopics, plan.note],
    );
    if (set.length === 0) return;
    for (const v of plan.variants) {
      await em.query(
        `INSERT INTO digest_variants (digest_id, variant, topics, seen, article_ids, readers)
         VALUES ($1, $2, $3, $4::bigint[], $5::bigint[], $6)`,
        [digestId, v.variant, v.topics, v.seen, v.articleIds, v.readers],
      );
      await em.query(
        `INSERT INTO digest_variant_keys (digest_id, topics, seen, variant) VALUES ($1, $2, $3::bigint[], $4)`,
        [digestId, v.topics, v.seen, v.variant],
      );
    }
  }

  async variants(db: Db, digestId: string): Promise<(IssueVariant & { rendered: boolean })[]> {
    return rows(
      db,
      `SELECT variant, topics, seen::text[] AS seen, article_ids::text[] AS "articleIds", readers, html_template IS NOT NULL AS rendered
       FROM digest_variants WHERE digest_id = $1 ORDER BY variant`,
      [digestId],
    );
  }

  async storeVariantTemplates(db: Db, digestId: string, variant: number, t: IssueTemplates): Promise<void> {
    await db.query(
      `UPDATE digest_variants SET subject = $3, html_template = $4, text_template = $5 WHERE digest_id = $1 AND variant = $2`,
      [digestId, variant, t.subject, t.html, t.text],
    );
  }

  /** The rendered templates of every variant but 0 (whose are the digest's own), or of those given. */
  async variantTemplates(db: Db, digestId: string, only: number[] | null = null): Promise<VariantTemplates[]> {
    return rows<VariantTemplates>(
      db,
      `SELECT variant, subject, html_template AS html, text_template AS text FROM digest_variants
       WHERE digest_id = $1 AND variant > 0 AND html_template IS NOT NULL AND ($2::int[] IS NULL OR variant = ANY($2))
       ORDER BY variant`,
      [digestId, only],
    );
  }

  /**
   * The delivery ledger, one page at a time: the next `size` confirmed, mailable subscribers after
   * `afterSubscriberId` (subscriber id order) get their row. Returns how many the page held and
   * its last subscriber id (null once there are none left). Rows already there (a retried plan)
   * stay as they are.
   *
   * Each row's variant: the reader's topics cut down to the kept ones and the issue's articles
   * already sent to them, looked up in the keys (their topics, else none, with the fewest articles
   * left out that still leave out all they had). A reader no variant fits, or who had every
   * article, gets a skipped row. With `waves`, each row's wave is the one of the reader's zone.
   */
  async fanOutPage(
    db: Db,
    digestId: string,
    newsletterId: number,
    afterSubscriberId: string,
    size: number,
    how: { keptTopics?: string[]; already?: AlreadySent; waves?: FanOutWaves } = {},
  ): Promise<{ n: number; last: string | null }> {
    const keptTopics = how.keptTopics ?? [];
    const params: unknown[] = [digestId, newsletterId, afterSubscriberId, size];
    const param = (v: unknown) => `$${params.push(v)}`;
    const plain = keptTopics.length === 0 && (how.already?.digests.length ?? 0) === 0;
    let variant = '0';
    let skipped = 'false';
    let keyed = `'{}'::text[] AS t`;
    let exact = '';
    if (!plain) {
      const kept = param(keptTopics);
      const seen = alreadySentSql(how.already ?? NOTHING_SENT, 'p.subscriber_id', params.length + 1);
      params.push(...seen.params);
      keyed = `${TOPIC_SET_SQL('p.topics', `${kept}::text[]`)} AS t, ${seen.sql} AS s`;
      // The exact key first (a hash join); else the fewest articles left out that still leave out
      // all the reader had, with their topics, else with none (evaluated only for those rows).
      const fallback = `(SELECT k.variant FROM digest_variant_keys k WHERE k.digest_id = $1
          AND k.topics IN (q.t, '{}') AND k.seen @> q.s ORDER BY k.topics = '{}', cardinality(k.seen), k.variant LIMIT 1)`;
      variant = `COALESCE(e.variant, ${fallback}, -1)`;
      exact = `LEFT JOIN digest_variant_keys e ON e.digest_id = $1 AND e.topics = q.t AND e.seen = q.s`;
      skipped = `p.variant < 0`;
    }
    let zones = '';
    let wave = '0';
    if (how.waves) {
      zones = `LEFT JOIN unnest(${param(how.waves.zones.map((z) => z.zone))}::text[], ${param(how.waves.zones.map((z) => z.wave))}::int[]) AS z(zone, wave)
         ON z.zone = COALESCE(p.timezone, ${param(how.waves.defaultZone)})`;
      wave = `COALESCE(z.wave, ${param(how.waves.defaultWave)})`;
    }
    const [r] = await rows<{ n: number; last: string | null }>(
      db,
      `WITH page AS MATERIALIZED (
         SELECT s.subscriber_id, s.id, s.topics, u.timezone FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
         WHERE s.newsletter_id = $2 AND s.status = 'active' AND u.status = 'ok' AND s.subscriber_id > $3
         ORDER BY s.subscriber_id LIMIT $4),
       keyed AS MATERIALIZED (
         SELECT p.*, ${keyed} FROM page p),
       chosen AS MATERIALIZED (
         SELECT q.subscriber_id, q.id, q.timezone, ${variant} AS variant FROM keyed q ${exact}),
       added AS (
         INSERT INTO deliveries (digest_id, subscriber_id, subscription_id, variant, wave, status, detail, finished_at)
         SELECT $1, p.subscriber_id, p.id, GREATEST(p.variant, 0), ${wave},
           CASE WHEN ${skipped} THEN 'skipped' ELSE 'pending' END,
           CASE WHEN ${skipped} THEN 'already sent every article of this issue by an earlier digest' END,
           CASE WHEN ${skipped} THEN now() END
         FROM chosen p ${zones}
         ON CONFLICT DO NOTHING)
       SELECT count(*)::int AS n, max(subscriber_id)::text AS last FROM page`,
      params,
    );
    return r;
  }

  /**
   * Fresh statistics for the ledger, which just grew by (part of) an audience: without them the
   * send path's statements (planned once per connection) would treat the digest as the few rows
   * it had and scan all of its rows to find the few they touch. The plans made after it stay good
   * while the ledger grows: the planner scales the row count to the table's current size.
   */
  async analyzeLedger(db: Db): Promise<void> {
    await db.query(`ANALYZE deliveries`);
  }

  /** The fan-out is complete: the digest's recipient count is set (and with it, the digest can end). */
  async setRecipients(db: Db, digestId: string): Promise<number> {
    const [{ n }] = await rows<{ n: number }>(
      db,
      `UPDATE digests SET recipients = (SELECT count(*)::int FROM deliveries WHERE digest_id = $1)
       WHERE id = $1 RETURNING recipients AS n`,
      [digestId],
    );
    return n;
  }

  /**
   * Next keyset page of recipients (up to `upTo`, when given; only rows the filter keeps): just
   * its first and last subscriber id.
   */
  async nextRange(
    db: Db,
    digestId: string,
    afterSubscriberId: string,
    size: number,
    upTo: string | null = null,
    filter: BatchFilter = {},
  ): Promise<{ from: string; to: string } | null> {
    const [r] = await rows<{ from: string | null; to: string | null }>(
      db,
      `SELECT min(subscriber_id)::text AS "from", max(subscriber_id)::text AS "to" FROM (
         SELECT subscriber_id FROM deliveries
         WHERE digest_id = $1 AND subscriber_id > $2 AND ($4::bigint IS NULL OR subscriber_id <= $4)
           AND ($5::int[] IS NULL OR wave = ANY($5)) AND ($6::int[] IS NULL OR variant = ANY($6))
         ORDER BY subscriber_id LIMIT $3) page`,
      [digestId, afterSubscriberId, size, upTo, filter.waves ?? null, filter.variants ?? null],
    );
    return r.from && r.to ? { from: r.from, to: r.to } : null;
  }

  /**
   * Rows a dead attempt left in flight go back to pending (the in-flight window at a crash). Only
   * stale claims: a live sender's claims are younger than any SMTP timeout.
   */
  async releaseInFlight(
    db: Db,
    digestId: string,
    from: string,
    to: string,
    staleSeconds: number,
    filter: BatchFilter = {},
  ): Promise<number> {
    const r = await rows(
      db,
      `UPDATE deliveries SET status = 'pending', claimed_at = NULL
       WHERE digest_id = $1 AND subscriber_id BETWEEN $2 AND $3 AND status = 'sending'
         AND claimed_at < now() - make_interval(secs => $4) AND ($5::int[] IS NULL OR wave = ANY($5)) AND ($6::int[] IS NULL OR variant = ANY($6)) RETURNING 1`,
      [digestId, from, to, staleSeconds, filter.waves ?? null, filter.variants ?? null],
    );
    return r.length;
  }

  async markResumed(db: Db, digestId: string): Promise<void> {
    await db.query(`UPDATE digests SET resumed_at = now() WHERE id = $1`, [digestId]);
  }

  /**
   * Digests still sending whose ledger has not moved for a while: their batch jobs were lost.
   * Rows of a local digest's waves still to come are not open yet; a wave's time counts as movement.
   */
  async stuck(db: Db, afterMs: number): Promise<string[]> {
    const list = await rows<{ id: string }>(
      db,
      `SELECT d.id FROM digests d
       WHERE d.status = 'sending' AND d.html_template IS NOT NULL AND d.recipients IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM digest_variants v WHERE v.digest_id = d.id AND v.variant > 0 AND v.html_template IS NULL)
         AND EXISTS (SELECT 1 FROM deliveries x WHERE x.digest_id = d.id AND x.status IN ('pending','sending')
                     AND NOT EXISTS (SELECT 1 FROM digest_waves w WHERE w.digest_id = d.id AND w.wave = x.wave
                                     AND w.status = 'waiting' AND w.send_at > now()))
         AND GREATEST((SELECT max(GREATEST(x.claimed_at, x.finished_at)) FROM deliveries x WHERE x.digest_id = d.id),
                      d.started_at, d.resumed_at,
                      (SELECT max(w.send_at) FROM digest_waves w WHERE w.digest_id = d.id AND w.send_at <= now()))
             < now() - make_interval(secs => $1::float8 / 1000)`,
      [afterMs],
    );
    return list.map((r) => r.id);
  }

  async pendingRecipients(
    db: Db,
    digestId: string,
    from: string,
    to: string,
    filter: BatchFilter = {},
  ): Promise<Recipient[]> {
    return rows<Recipient>(
      db,
      `SELECT d.subscriber_id AS "subscriberId", d.subscription_id AS "subscriptionId", u.email, u.name, d.variant
       FROM deliveries d JOIN subscribers u ON u.id = d.subscriber_id
       WHERE d.digest_id = $1 AND d.subscriber_id BETWEEN $2 AND $3 AND d.status = 'pending'
         AND ($4::int[] IS NULL OR d.wave = ANY($4)) AND ($5::int[] IS NULL OR d.variant = ANY($5))
       ORDER BY d.subscriber_id`,
      [digestId, from, to, filter.waves ?? null, filter.variants ?? null],
    );
  }

  /**
   * Claims deliveries before SMTP, only while the digest is sending and the reader is still
   * subscribed and mailable: an unsubscribe or a cancel lands before the next message.
   * Several lanes in one round trip (group commit, see `LedgerWriter`): each lane still claims
   * only its next message, right before sending it, so the in-flight bound stays one message per
   * lane. `sent` are messages handed to SMTP since the last round trip, recorded in the same statement.
   */
  async claimMany(
    ledger: LedgerPg,
    digestId: string,
    subscriberIds: string[],
    sent: { subscriberId: string; messageId: string }[],
  ): Promise<Map<string, 'claimed' | 'stopped' | 'taken' | 'ineligible'>> {
    // Planned once per connection, committed asynchronously: see LedgerPg.
    const [r] = await ledger.query<{ claimed: string[] | null; sending: boolean; pending: string[] | null }>(
      'deliveries-claim-and-record',
      `WITH f AS (
         UPDATE deliveries d SET status = 'sent', message_id = s.mid, detail = NULL, finished_at = now()
         FROM unnest($3::bigint[], $4::text[]) AS s(sid, mid)
         WHERE d.digest_id = $1 AND d.subscriber_id = s.sid
         RETURNING 1),
       c AS (
         UPDATE deliveries d SET status = 'sending', claimed_at = now()
         WHERE d.digest_id = $1 AND d.subscriber_id = ANY($2::bigint[]) AND d.status = 'pending'
           AND EXISTS (SELECT 1 FROM digests g WHERE g.id = $1 AND g.status = 'sending')
           AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = d.subscription_id AND s.status = 'active')
           AND EXISTS (SELECT 1 FROM subscribers u WHERE u.id = d.subscriber_id AND u.status = 'ok')
         RETURNING d.subscriber_id)
       SELECT (SELECT array_agg(subscriber_id::text) FROM c) AS claimed,
              EXISTS (SELECT 1 FROM digests WHERE id = $1 AND status = 'sending') AS sending,
              (SELECT array_agg(subscriber_id::text) FROM deliveries
                WHERE digest_id = $1 AND subscriber_id = ANY($2::bigint[]) AND status = 'pending') AS pending`,
      [digestId, subscriberIds, sent.map((x) => x.subscriberId), sent.map((x) => x.messageId)],
    );
    // The SELECT sees the rows as they were before this statement: "pending" only matters for the unclaimed.
    const claimed = new Set(r.claimed ?? []);
    const pending = new Set(r.pending ?? []);
    return new Map(
      subscriberIds.map((id) => [
        id,
        claimed.has(id) ? 'claimed' : !r.sending ? 'stopped' : pending.has(id) ? 'ineligible' : 'taken',
      ]),
    );
  }

  async finish(
    db: Db,
    digestId: string,
    subscriberId: string,
    status: 'sent' | 'failed' | 'skipped' | 'pending',
    messageId: string | null,
    detail: string | null,
  ): Promise<void> {
    await db.query(
      `UPDATE deliveries SET status = $3, message_id = $4, detail = $5,
         finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END,
         claimed_at = CASE WHEN $3 = 'pending' THEN NULL ELSE claimed_at END
       WHERE digest_id = $1 AND subscriber_id = $2 AND ($3 <> 'pending' OR status = 'sending')`,
      [digestId, subscriberId, status, messageId, detail],
    );
  }

  async skipMany(db: Db, digestId: string, subscriberIds: string[], detail: string): Promise<void> {
    if (subscriberIds.length === 0) return;
    await db.query(
      `UPDATE deliveries SET status = 'skipped', detail = $3, finished_at = now()
       WHERE digest_id = $1 AND subscriber_id = ANY($2::bigint[]) AND status = 'pending'`,
      [digestId, subscriberIds, detail],
    );
  }

  /** Marks the digest sent once no delivery is left open. */
  async completeIfDone(db: Db, digestId: string): Promise<boolean> {
    const r = await rows(
      db,
      `UPDATE digests SET status = 'sent', finished_at = now()
       WHERE id = $1 AND status = 'sending' AND html_template IS NOT NULL AND recipients IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM deliveries WHERE digest_id = $1 AND status IN ('pending','sending'))
       RETURNING 1`,
      [digestId],
    );
    return r.length > 0;
  }

  async counts(db: Db, digestId: string): Promise<Record<string, number>> {
    const list = await rows<{ status: string; n: number }>(
      db,
      `SELECT status, count(*)::int AS n FROM deliveries WHERE digest_id = $1 GROUP BY status`,
      [digestId],
    );
    return Object.fromEntries(list.map((r) => [r.status, r.n]));
  }
}
