import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, QueryRunner } from 'typeorm';

export type MailStatus = 'sent' | 'failed' | 'skipped';

/** Mails by kind and outcome. `reason` is a fixed word, never the SMTP reply (it may name the address). */
export interface MailCount {
  kind: string;
  status: MailStatus;
  reason: string;
  newsletter: string;
  n: number;
}

export interface DigestFigure {
  newsletter: string;
  status: string;
  /** finished_at − started_at of a sent digest, else null. */
  seconds: number | null;
  /** finished_at as Unix seconds, or null. */
  finishedAt: number | null;
}

/** Everything /metrics reads from PostgreSQL, in one round of aggregate queries. */
export interface DbFigures {
  newsletters: string[];
  /** Each newsletter's SMTP route (`default`: SMTP_URL), to join the per-newsletter counters on. */
  routes: { newsletter: string; route: string }[];
  mails: MailCount[];
  /** Consent records by action (subscribe, confirm, unsubscribe, import, preferences). */
  consent: { action: string; newsletter: string; n: number }[];
  subscriptions: { newsletter: string; status: string; n: number }[];
  digests: DigestFigure[];
  suppressions: { reason: string; n: number }[];
  outbox: { pending: number; oldestAgeSeconds: number };
  /** Clicks on tracked links by newsletter, verdict (human, machine) and machine reason ('' for human). */
  clicks: { newsletter: string; verdict: string; reason: string; n: number }[];
}

/** Label for rows whose newsletter was deleted (or never set). */
export const NO_NEWSLETTER = 'none';
export const SUPPRESSION_REASONS = ['bounced', 'complained', 'manual', 'erased'];

/**
 * A bounded `reason` word from a mail_log or deliveries row (alias `t`). The SMTP reply in
 * `detail` is classified like isHardBounce / isPolicyRejection in libs/mail, never copied.
 */
function reasonSql(t: string): string {
  return `CASE
    WHEN ${t}.status = 'sent' THEN ''
    WHEN ${t}.status = 'skipped' THEN CASE
      WHEN ${t}.detail = 'suppressed' THEN 'suppressed'
      WHEN ${t}.detail LIKE 'unsubscribed%' THEN 'unsubscribed'
      ELSE 'other' END
    WHEN ${t}.detail ~ '\\m5\\d\\d[ -]5\\.1\\.\\d' THEN 'hard_bounce'
    WHEN ${t}.detail ~ '\\m5\\d\\d[ -]5\\.7\\.\\d' THEN 'policy'
    WHEN ${t}.detail ~ '\\m5\\d\\d\\M' THEN 'rejected'
    ELSE 'other' END`;
}

/** Rows older than this are taken as committed for good: the tallies never read them again. */
const SETTLE_SECONDS = 300;

type Row = Record<string, string | number | null>;

/**
 * Counts the rows of an append-only table by a few label columns without re-reading the table:
 * rows up to a watermark id are counted once and kept in memory; each read only scans the rows
 * past it (a primary key range). The watermark only moves past rows older than SETTLE_SECONDS,
 * so a row whose transaction committed late (its id was taken earlier) is still seen.
 * Rows deleted after they were counted (an erased subscriber's) stay counted: the figures are
 * monotonic while the process runs.
 *
 * `sql` gets $1 = watermark id, $2 = SETTLE_SECONDS and returns the label columns plus
 * `settled`, `fresh` and `watermark` (see the queries below).
 */
class AppendOnlyTally {
  private watermark = '0';
  private readonly settled = new Map<string, number>();

  constructor(
    private readonly sql: string,
    private readonly labels: string[],
  ) {}

  async read(qr: QueryRunner): Promise<{ labels: Record<string, string>; n: number }[]> {
    const found: Row[] = await qr.query(this.sql, [this.watermark, SETTLE_SECONDS]);
    const fresh = new Map<string, number>();
    let watermark = this.watermark;
    for (const r of found) {
      const key = JSON.stringify(this.labels.map((l) => String(r[l] ?? '')));
      this.settled.set(key, (this.settled.get(key) ?? 0) + Number(r.settled));
      fresh.set(key, (fresh.get(key) ?? 0) + Number(r.fresh));
      watermark = String(r.watermark);
    }
    this.watermark = watermark;
    const out: { labels: Record<string, string>; n: number }[] = [];
    for (const key of new Set([...this.settled.keys(), ...fresh.keys()])) {
      const values = JSON.parse(key) as string[];
      out.push({
        labels: Object.fromEntries(this.labels.map((l, i) => [l, values[i]])),
        n: (this.settled.get(key) ?? 0) + (fresh.get(key) ?? 0),
      });
    }
    return out;
  }
}

/** The settled/fresh split every tally query ends with, over a CTE `r` (id, created_at, labels…). */
function tallySql(rowsCte: string, labels: string[]): string {
  const cols = labels.map((l) => `r.${l}`).join(', ');
  return `WITH r AS (${rowsCte}),
    w AS (SELECT COALESCE(max(id), $1::bigint) AS id FROM r WHERE created_at < now() - make_interval(secs => $2))
    SELECT ${cols}, count(*) FILTER (WHERE r.id <= w.id)::int AS settled,
           count(*) FILTER (WHERE r.id > w.id)::int AS fresh, w.id::text AS watermark
    FROM r CROSS JOIN w GROUP BY ${cols}, w.id`;
}

const MAIL_LOG_LABELS = ['kind', 'status', 'reason', 'newsletter'];
const MAIL_LOG_SQL = tallySql(
  `SELECT m.id, m.created_at, m.kind, m.status, ${reasonSql('m')} AS reason,
          COALESCE(n.slug, '${NO_NEWSLETTER}') AS newsletter
   FROM mail_log m LEFT JOIN newsletters n ON n.id = m.newsletter_id WHERE m.id > $1::bigint`,
  MAIL_LOG_LABELS,
);

const CONSENT_LABELS = ['action', 'newsletter'];
const CONSENT_SQL = tallySql(
  `SELECT c.id, c.created_at, c.action, COALESCE(n.slug, '${NO_NEWSLETTER}') AS newsletter
   FROM consent_records c LEFT JOIN newsletters n ON n.id = c.newsletter_id WHERE c.id > $1::bigint`,
  CONSENT_LABELS,
);

const CLICK_LABELS = ['newsletter', 'verdict', 'reason'];
// A click's verdict may still turn into a burst within seconds of it; rows settle after minutes.
const CLICK_SQL = tallySql(
  `SELECT c.id, c.clicked_at AS created_at, n.slug AS newsletter, c.verdict, COALESCE(c.reason, '') AS reason
   FROM link_clicks c JOIN digests d ON d.id = c.digest_id JOIN newsletters n ON n.id = d.newsletter_id
   WHERE c.id > $1::bigint`,
  CLICK_LABELS,
);

/** A digest whose outcome is final: finished this long ago, nothing of it is in flight any more. */
const DIGEST_SETTLE_SECONDS = 600;

interface DigestRow {
  id: string;
  newsletter: string;
  status: string;
  seconds: number | null;
  finished: number | null;
  started: boolean;
  settled: boolean;
}

/**
 * Read-only aggregate queries for GET /metrics. Each read costs a handful of index scans: the
 * append-only tables (mail_log, consent_records) are tallied incrementally, and a digest's delivery
 * ledger is counted while it can still change, then remembered.
 */
@Injectable()
export class MetricsRepository {
  private readonly mailLog = new AppendOnlyTally(MAIL_LOG_SQL, MAIL_LOG_LABELS);
  private readonly consent = new AppendOnlyTally(CONSENT_SQL, CONSENT_LABELS);
  private readonly clicks = new AppendOnlyTally(CLICK_SQL, CLICK_LABELS);
  /** Delivery counts of settled digests, with the status/finish stamp they were counted at. */
  private readonly settledLedgers = new Map<string, { stamp: string; counts: MailCount[] }>();
  /** Reads run one at a time: the tallies' watermarks must not be raced. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  figures(statementTimeoutMs = 30_000): Promise<DbFigures> {
    const next = this.chain.then(
      () => this.read(statementTimeoutMs),
      () => this.read(statementTimeoutMs),
    );
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async read(statementTimeoutMs: number): Promise<DbFigures> {
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    try {
      await qr.startTransaction();
      await qr.query(`SET TRANSACTION READ ONLY`);
      await qr.query(`SELECT set_config('statement_timeout', $1, true)`, [String(statementTimeoutMs)]);
      const figures = await this.readAll(qr);
      await qr.commitTransaction();
      return figures;
    } catch (err) {
      if (qr.isTransactionActive) await qr.rollbackTransaction().catch(() => undefined);
      throw err;
    } finally {
      await qr.release();
    }
  }

  private async readAll(qr: QueryRunner): Promise<DbFigures> {
    const newsletters: { id: number; slug: string; route: string }[] = await qr.query(
      `SELECT id, slug, COALESCE(smtp_route, 'default') AS route FROM newsletters ORDER BY slug`,
    );
    const slugOf = new Map(newsletters.map((n) => [n.id, n.slug]));

    const mails: MailCount[] = (await this.mailLog.read(qr)).map(({ labels, n }) => ({
      kind: labels.kind,
      status: labels.status as MailStatus,
      reason: labels.reason,
      newsletter: labels.newsletter,
      n,
    }));
    const consent = (await this.consent.read(qr)).map(({ labels, n }) => ({
      action: labels.action,
      newsletter: labels.newsletter,
      n,
    }));

    const clicks = (await this.clicks.read(qr)).map(({ labels, n }) => ({
      newsletter: labels.newsletter,
      verdict: labels.verdict,
      reason: labels.reason,
      n,
    }));

    // Index-only scan of subscriptions_newsletter_status.
    const subs: { newsletter_id: number; status: string; n: number }[] = await qr.query(
      `SELECT newsletter_id, status, count(*)::int AS n FROM subscriptions GROUP BY newsletter_id, status`,
    );
    const subscriptions = subs.map((s) => ({
      newsletter: slugOf.get(s.newsletter_id) ?? NO_NEWSLETTER,
      status: s.status,
      n: s.n,
    }));

    const digestRows: DigestRow[] = await qr.query(
      `SELECT d.id::text AS id, n.slug AS newsletter, d.status,
              CASE WHEN d.status = 'sent' THEN EXTRACT(EPOCH FROM d.finished_at - d.started_at)::float8 END AS seconds,
              EXTRACT(EPOCH FROM d.finished_at)::float8 AS finished,
              d.started_at IS NOT NULL AS started,
              (d.status IN ('sent','cancelled','failed','skipped')
                AND d.finished_at < now() - make_interval(secs => $1)) AS settled
       FROM digests d JOIN newsletters n ON n.id = d.newsletter_id`,
      [DIGEST_SETTLE_SECONDS],
    );
    mails.push(...(await this.deliveries(qr, digestRows)));

    const suppressions: { reason: string; n: number }[] = await qr.query(
      `SELECT CASE WHEN reason = ANY($1::text[]) THEN reason ELSE 'other' END AS reason, count(*)::int AS n
       FROM suppressions GROUP BY 1`,
      [SUPPRESSION_REASONS],
    );

    // Partial index outbox_pending.
    const [outbox]: { pending: number; age: number }[] = await qr.query(
      `SELECT count(*)::int AS pending, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS age
       FROM outbox WHERE dispatched_at IS NULL`,
    );

    return {
      newsletters: newsletters.map((n) => n.slug),
      routes: newsletters.map((n) => ({ newsletter: n.slug, route: n.route })),
      mails,
      clicks,
      consent,
      subscriptions,
      digests: digestRows.map((d) => ({
        newsletter: d.newsletter,
        status: d.status,
        seconds: d.seconds === null ? null : Number(d.seconds),
        finishedAt: d.finished === null ? null : Number(d.finished),
      })),
      suppressions,
      outbox: { pending: outbox.pending, oldestAgeSeconds: Math.max(0, Number(outbox.age)) },
    };
  }

  /**
   * Digest mails by outcome, from the delivery ledger. A digest's rows are counted through the
   * primary key (digest_id, subscriber_id) while it may still change; once settled, its counts are
   * kept and not read again. Deleted digests drop out.
   */
  private async deliveries(qr: QueryRunner, digests: DigestRow[]): Promise<MailCount[]> {
    const started = digests.filter((d) => d.started);
    const stamp = (d: DigestRow) => `${d.status}@${d.finished ?? ''}`;
    const toCount = started.filter((d) => !d.settled || this.settledLedgers.get(d.id)?.stamp !== stamp(d));
    const counted = new Map<string, MailCount[]>();
    if (toCount.length > 0) {
      const found: { digest: string; status: MailStatus; reason: string; n: number }[] = await qr.query(
        `SELECT x.digest_id::text AS digest, x.status, ${reasonSql('x')} AS reason, count(*)::int AS n
         FROM deliveries x WHERE x.digest_id = ANY($1::bigint[]) AND x.status IN ('sent','failed','skipped')
         GROUP BY 1, 2, 3`,
        [toCount.map((d) => d.id)],
      );
      const byId = new Map(toCount.map((d) => [d.id, d]));
      for (const r of found) {
        const list = counted.get(r.digest) ?? [];
        list.push({
          kind: 'digest',
          status: r.status,
          reason: r.reason,
          newsletter: byId.get(r.digest)!.newsletter,
          n: r.n,
        });
        counted.set(r.digest, list);
      }
      for (const d of toCount) {
        if (d.settled) this.settledLedgers.set(d.id, { stamp: stamp(d), counts: counted.get(d.id) ?? [] });
      }
    }
    const present = new Set(started.map((d) => d.id));
    for (const id of this.settledLedgers.keys()) if (!present.has(id)) this.settledLedgers.delete(id);

    const out: MailCount[] = [];
    for (const d of started) {
      const counts = d.settled ? this.settledLedgers.get(d.id)?.counts : counted.get(d.id);
      out.push(...(counts ?? []));
    }
    return out;
  }
}
