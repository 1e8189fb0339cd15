import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DIGEST_QUEUE, MAIL_QUEUE } from '#queue/jobs.js';
import { type DbFigures, MetricsRepository } from './metrics.repository.js';

/** A scrape storm reads the database at most once per this long. */
export const METRICS_CACHE_MS = 5_000;
/** A queue that does not answer within this long is reported down instead of holding the scrape. */
const QUEUE_TIMEOUT_MS = 2_000;
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;
export const MAIL_KINDS = ['confirmation', 'guide', 'digest', 'digest-test'] as const;
const SUBSCRIPTION_STATUSES = ['pending', 'active', 'unsubscribed'] as const;
const DIGEST_STATUSES = ['scheduled', 'sending', 'sent', 'cancelled', 'failed', 'skipped'] as const;
/** Digest send times: seconds to four hours. */
const DIGEST_DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

interface Snapshot {
  db: DbFigures | null;
  queues: { queue: string; counts: Record<string, number> | null }[];
  refreshSeconds: number;
}

let processRegistry: Registry | undefined;

/** Node.js process metrics are process-wide: one registry per process, however many apps it hosts. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

type Labels<L extends string> = Record<L, string>;

/**
 * Prometheus metrics for GET /metrics. Several workers send in production and none serves HTTP,
 * so mail and digest figures come from PostgreSQL at scrape time (collect callbacks over one
 * cached snapshot), never from in-process counters.
 */
@Injectable()
export class MetricsService {
  private readonly logger = new Logger(MetricsService.name);
  private readonly registry = new Registry();
  private current: Promise<Snapshot> | null = null;
  private loadedAt = 0;
  private loading = false;

  constructor(
    private readonly repo: MetricsRepository,
    @InjectQueue(MAIL_QUEUE) private readonly mailQueue: Queue,
    @InjectQueue(DIGEST_QUEUE) private readonly digestQueue: Queue,
  ) {
    this.define();
  }

  /** The Prometheus text exposition: this app's figures plus the process metrics. */
  async render(): Promise<string> {
    return Registry.merge([processMetrics(), this.registry]).metrics();
  }

  /** One snapshot per METRICS_CACHE_MS, shared by concurrent scrapes; never two loads at once. */
  private snapshot(): Promise<Snapshot> {
    if (this.current && (this.loading || Date.now() - this.loadedAt < METRICS_CACHE_MS)) return this.current;
    this.loading = true;
    this.current = this.load().finally(() => {
      this.loading = false;
      this.loadedAt = Date.now();
    });
    return this.current;
  }

  private async load(): Promise<Snapshot> {
    const started = process.hrtime.bigint();
    const [db, queues] = await Promise.all([
      this.repo.figures().catch((err: unknown) => {
        this.logger.warn(`metrics: the database figures could not be read: ${(err as Error).message}`);
        return null;
      }),
      Promise.all(
        [
          [MAIL_QUEUE, this.mailQueue],
          [DIGEST_QUEUE, this.digestQueue],
        ].map(async ([name, queue]) => ({
          queue: name as string,
          counts: await withTimeout((queue as Queue).getJobCounts(...QUEUE_STATES), QUEUE_TIMEOUT_MS, `queue ${name}`)
            .then((c) => c as Record<string, number>)
            .catch(() => null),
        })),
      ),
    ]);
    return { db, queues, refreshSeconds: Number(process.hrtime.bigint() - started) / 1e9 };
  }

  private define(): void {
    const registers = [this.registry];
    const snapshot = () => this.snapshot();
    /** A counter whose value is a total read from the database: reset, then set, at each scrape. */
    const counter = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (s: Snapshot, add: (labels: Labels<L>, n: number) => void) => void,
    ) =>
      new Counter<L>({
        name,
        help,
        labelNames,
        registers,
        async collect(this: Counter<L>) {
          const s = await snapshot();
          this.reset();
          fill(s, (labels, n) => this.inc(labels, n));
        },
      });
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (s: Snapshot, set: (labels: Labels<L>, n: number) => void) => void,
    ) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        async collect(this: Gauge<L>) {
          const s = await snapshot();
          this.reset();
          fill(s, (labels, n) => this.set(labels, n));
        },
      });

    counter(
      'mailroom_mails_sent_total',
      'Mails handed to SMTP, by kind and newsletter.',
      ['kind', 'newsletter'],
      (s, add) => {
        if (!s.db) return;
        for (const newsletter of s.db.newsletters) for (const kind of MAIL_KINDS) add({ kind, newsletter }, 0);
        for (const m of s.db.mails) if (m.status === 'sent') add({ kind: m.kind, newsletter: m.newsletter }, m.n);
      },
    );
    counter(
      'mailroom_mails_failed_total',
      'Mails given up on (permanent SMTP failures), by kind, reason (hard_bounce, policy, rejected, other) and newsletter.',
      ['kind', 'reason', 'newsletter'],
      (s, add) => {
        for (const m of s.db?.mails ?? [])
          if (m.status === 'failed') add({ kind: m.kind, reason: m.reason, newsletter: m.newsletter }, m.n);
      },
    );
    counter(
      'mailroom_mails_skipped_total',
      'Mails not sent because the recipient was no longer mailable, by kind, reason (suppressed, unsubscribed, other) and newsletter.',
      ['kind', 'reason', 'newsletter'],
      (s, add) => {
        for (const m of s.db?.mails ?? [])
          if (m.status === 'skipped') add({ kind: m.kind, reason: m.reason, newsletter: m.newsletter }, m.n);
      },
    );

    counter(
      'mailroom_link_clicks_total',
      'Clicks on tracked digest links, by newsletter, verdict (human, machine) and reason (scanner, prefetch, early, burst; empty for human).',
      ['newsletter', 'verdict', 'reason'],
      (s, add) => {
        if (!s.db) return;
        for (const newsletter of s.db.newsletters) add({ newsletter, verdict: 'human', reason: '' }, 0);
        for (const c of s.db.clicks) add({ newsletter: c.newsletter, verdict: c.verdict, reason: c.reason }, c.n);
      },
    );

    const consentCounter = (name: string, action: string, help: string) =>
      counter(name, help, ['newsletter'], (s, add) => {
        if (!s.db) return;
        for (const newsletter of s.db.newsletters) add({ newsletter }, 0);
        for (const c of s.db.consent) if (c.action === action) add({ newsletter: c.newsletter }, c.n);
      });
    consentCounter(
      'mailroom_signups_total',
      'subscribe',
      'Signup requests (consent records "subscribe"), by newsletter.',
    );
    consentCounter('mailroom_confirmations_total', 'confirm', 'Double opt-in confirmations, by newsletter.');
    consentCounter('mailroom_unsubscribes_total', 'unsubscribe', 'Unsubscribes, by newsletter.');
    consentCounter(
      'mailroom_imports_total',
      'import',
      'Subscriptions created or renewed by CSV import, by newsletter.',
    );

    gauge(
      'mailroom_subscriptions',
      'Subscriptions by newsletter and status (pending, active, unsubscribed).',
      ['newsletter', 'status'],
      (s, set) => {
        if (!s.db) return;
        for (const newsletter of s.db.newsletters)
          for (const status of SUBSCRIPTION_STATUSES) set({ newsletter, status }, 0);
        for (const x of s.db.subscriptions) set({ newsletter: x.newsletter, status: x.status }, x.n);
      },
    );
    gauge(
      'mailroom_suppressions',
      'Suppressed addresses by reason (bounced, complained, manual, erased, other).',
      ['reason'],
      (s, set) => {
        for (const x of s.db?.suppressions ?? []) set({ reason: x.reason }, x.n);
      },
    );
    gauge(
      'mailroom_newsletter_smtp_route',
      "1 for each newsletter's SMTP route (default: SMTP_URL): join the per-newsletter mail counters on it to count by route.",
      ['newsletter', 'route'],
      (s, set) => {
        for (const x of s.db?.routes ?? []) set({ newsletter: x.newsletter, route: x.route }, 1);
      },
    );
    gauge('mailroom_digests', 'Digests by newsletter and status.', ['newsletter', 'status'], (s, set) => {
      if (!s.db) return;
      const n = new Map<string, number>();
      for (const newsletter of s.db.newsletters)
        for (const status of DIGEST_STATUSES) n.set(JSON.stringify([newsletter, status]), 0);
      for (const d of s.db.digests) {
        const key = JSON.stringify([d.newsletter, d.status]);
        n.set(key, (n.get(key) ?? 0) + 1);
      }
      for (const [key, value] of n) {
        const [newsletter, status] = JSON.parse(key) as [string, string];
        set({ newsletter, status }, value);
      }
    });
    gauge(
      'mailroom_digest_last_sent_timestamp_seconds',
      'When the last sent digest of each newsletter finished (Unix time).',
      ['newsletter'],
      (s, set) => {
        const last = new Map<string, number>();
        for (const d of s.db?.digests ?? [])
          if (d.status === 'sent' && d.finishedAt !== null)
            last.set(d.newsletter, Math.max(last.get(d.newsletter) ?? 0, d.finishedAt));
        for (const [newsletter, t] of last) set({ newsletter }, t);
      },
    );
    new Histogram<'newsletter'>({
      name: 'mailroom_digest_duration_seconds',
      help: 'From start to the last message of each sent digest, by newsletter.',
      labelNames: ['newsletter'],
      buckets: DIGEST_DURATION_BUCKETS,
      registers,
      async collect(this: Histogram<'newsletter'>) {
        const s = await snapshot();
        this.reset();
        for (const d of s.db?.digests ?? [])
          if (d.status === 'sent' && d.seconds !== null)
            this.observe({ newsletter: d.newsletter }, Math.max(0, d.seconds));
      },
    });

    gauge(
      'mailroom_queue_jobs',
      'Jobs per queue and state (waiting, active, delayed, failed).',
      ['queue', 'state'],
      (s, set) => {
        for (const q of s.queues)
          if (q.counts) for (const state of QUEUE_STATES) set({ queue: q.queue, state }, q.counts[state] ?? 0);
      },
    );
    gauge('mailroom_queue_up', '1 when the queue answered the last scrape in time, else 0.', ['queue'], (s, set) => {
      for (const q of s.queues) set({ queue: q.queue }, q.counts ? 1 : 0);
    });
    gauge('mailroom_outbox_pending_events', 'Outbox events not yet dispatched to the queue.', [], (s, set) => {
      if (s.db) set({}, s.db.outbox.pending);
    });
    gauge(
      'mailroom_outbox_oldest_pending_age_seconds',
      'Age of the oldest undispatched outbox event (0 when none).',
      [],
      (s, set) => {
        if (s.db) set({}, s.db.outbox.oldestAgeSeconds);
      },
    );
    gauge('mailroom_database_up', '1 when the last metrics refresh could read PostgreSQL, else 0.', [], (s, set) => {
      set({}, s.db ? 1 : 0);
    });
    gauge('mailroom_metrics_refresh_seconds', 'How long the last metrics refresh took.', [], (s, set) => {
      set({}, s.refreshSeconds);
    });
  }
}
