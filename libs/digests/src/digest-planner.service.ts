import { issueLinks } from './digest-message.js';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { OutboxRepository } from '#queue/outbox.repository.js';
import type { AlreadySent } from './already-sent.js';
import { BatchQueue } from './batch-queue.service.js';
import { DeliveriesRepository } from './deliveries.repository.js';
import { DigestWaves, type WaveOutcome } from './digest-waves.service.js';
import { EARLIEST_ZONE, wallClockAt } from './local-waves.js';
import { DigestRenderer, type IssueArticle } from './digest-renderer.service.js';
import { voiceOf } from './digest-voice.js';
import { type IssueVariant, planVariants, topicKey, type VariantPlan } from './issue-variants.js';
import { type DigestRow, DigestsRepository, type FanOutWaves } from './digests.repository.js';

export type PlanOutcome = 'planned' | 'skipped' | 'cancelled' | 'deferred';
/** After the first, the fan-out writes the ledger this many batches' worth of rows a statement. */
const FAN_OUT_PAGE_BATCHES = 20;
/**
 * Held (a session advisory lock) from reading what readers were already sent to the end of the
 * fan-out: two digests carrying one article are planned one after the other, so the second sees
 * the first's rows and no reader gets the article twice.
 */
const PLAN_LOCK = 0x6d61696c; // 'mail'
/** A variant plan as stored, with which variants are rendered already. */
type StoredPlan = VariantPlan & { variants: (IssueVariant & { rendered: boolean })[] };

/** A local digest due later than this is planned when its first wave's time comes instead. */
const DEFER_MS = 60_000;

/**
 * The worker's planning of digests: articles chosen, the issue rendered once, the delivery ledger
 * (one row per recipient) written in keyset pages, and a batch job queued per range of it.
 */
@Injectable()
export class DigestPlanner {
  private readonly logger = new Logger(DigestPlanner.name);

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: DigestsRepository,
    private readonly deliveries: DeliveriesRepository,
    private readonly renderer: DigestRenderer,
    private readonly batches: BatchQueue,
    private readonly waves: DigestWaves,
    private readonly outbox: OutboxRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * A schedule fired: one digest per firing (the job id is the key), planned at once. A local
   * schedule fires in the earliest zone (see SchedulesService): its wall-clock time there is the
   * time each reader gets it in their own zone.
   */
  async fromSchedule(newsletterId: number, firingKey: string, dueAt: Date, local = false): Promise<PlanOutcome> {
    const localTime = local ? wallClockAt(dueAt, EARLIEST_ZONE) : null;
    const { id } = await this.repo.create(this.ds, newsletterId, dueAt, 'schedule', firingKey, {}, localTime);
    return this.plan(id);
  }

  /** Planning is idempotent: a retried or re-delivered plan job picks up where the last one stopped. */
  async plan(digestId: string): Promise<PlanOutcome> {
    const step = await this.ds.transaction(async (em) => {
      const d = await this.repo.find(em, digestId, true);
      if (!d) return 'skipped' as const;
      if (d.status !== 'scheduled' && d.status !== 'sending')
        return d.status === 'cancelled' ? ('cancelled' as const) : ('skipped' as const);
      if (d.status === 'scheduled' && d.delivery === 'local') {
        // Planned when the first reader's time comes; each wave checks its own lateness.
        const first = await this.waves.firstWaveAt(em, d);
        if (first && first.getTime() - Date.now() > DEFER_MS) {
          await this.repo.moveSendAt(em, d.id, first);
          await this.outbox.add(em, {
            type: 'digest.requested',
            payload: { digestId: d.id, sendAt: first.toISOString() },
          });
          return 'deferred' as const;
        }
      }
      if (d.status === 'scheduled') {
        const lateMs = Date.now() - d.send_at.getTime();
        if (d.delivery !== 'local' && lateMs > this.config.digest.graceMinutes * 60_000) {
          await this.repo.setStatus(
            em,
            d.id,
            'skipped',
            `past due: it was due at ${d.send_at.toISOString()}, more than ${this.config.digest.graceMinutes} minutes before it could be sent`,
          );
          return 'skipped' as const;
        }
        // A composed digest came with its articles, in its order: no candidate selection then.
        const attached = await this.repo.articles(em, d.id);
        const articles =
          attached.length > 0
            ? attached
            : await this.repo.candidateArticles(em, d.newsletter_id, this.config.digest.maxArticles, d.id);
        if (articles.length === 0) {
          await this.repo.setStatus(em, d.id, 'skipped', 'no new articles since the last digest');
          return 'skipped' as const;
        }
        if (attached.length === 0)
          await this.repo.attachArticles(
            em,
            d.id,
            articles.map((a) => a.id),
          );
        await this.repo.setStatus(em, d.id, 'sending');
      }
      return 'continue' as const;
    });
    if (step !== 'continue') return step;

    const d = (await this.repo.find(this.ds, digestId))!;
    const articles = await this.repo.articles(this.ds, d.id);
    if (d.recipients !== null) {
      // A retried plan whose fan-out had finished: the batches again (the ledger makes a second job harmless).
      const plan = await this.variantPlan(d, articles, null);
      await this.render(d, articles, plan);
      if (d.delivery === 'local') await this.waves.startDue(d.id);
      else await this.batches.enqueue(d.id);
      return this.finishPlan(d.id, d.recipients);
    }
    const recipients = await this.underPlanLock(async () => {
      const already = await this.repo.alreadySent(
        this.ds,
        d.id,
        articles.map((a) => a.id),
      );
      const plan = await this.variantPlan(d, articles, already);
      const waves = d.delivery === 'local' ? await this.waves.plan(d) : undefined;
      const how = { keptTopics: plan.keptTopics, already, waves };
      if (plan.variants.length > 1 || waves) return this.fanOutWhileRendering(d, articles, plan, how);
      return this.fanOut(d, () => this.render(d, articles, plan), how);
    });
    return this.finishPlan(d.id, recipients);
  }

  private async finishPlan(digestId: string, recipients: number): Promise<PlanOutcome> {
    // Nobody to send to is not a send: recorded as skipped with the reason, never as "sent".
    if (recipients === 0 && (await this.deliveries.skipIfEmpty(this.ds, digestId))) {
      this.logger.log(`Digest ${digestId} skipped: no active subscribers`);
      return 'skipped';
    }
    if (await this.repo.completeIfDone(this.ds, digestId))
      this.logger.log(`Digest ${digestId} sent (no recipient left)`);
    this.logger.log(`Digest ${digestId} planned for ${recipients} recipients`);
    return 'planned';
  }

  /** Runs `fn` holding PLAN_LOCK on a connection of its own (a crashed worker's lock goes with its connection). */
  private async underPlanLock<T>(fn: () => Promise<T>): Promise<T> {
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    try {
      await qr.query(`SELECT pg_advisory_lock($1)`, [PLAN_LOCK]);
      try {
        return await fn();
      } finally {
        await qr.query(`SELECT pg_advisory_unlock($1)`, [PLAN_LOCK]);
      }
    } finally {
      await qr.release();
    }
  }

  /**
   * Each variant rendered once (one mjml2html each), in order, each stored as soon as it is
   * rendered and then announced (`onRendered`) so that its batches can go. Variant 0 first,
   * validated (the digest's own templates: a batch runs only once they are there); the others are
   * the same markup in another order, so MJML's validation is not run again.
   */
  private async render(
    d: DigestRow,
    articles: (IssueArticle & { id: string })[],
    plan: StoredPlan,
    onRendered: (variant: number) => void = () => undefined,
    afterFirst: Promise<unknown> = Promise.resolve(),
  ): Promise<void> {
    const byId = new Map(articles.map((a) => [a.id, a]));
    const links = issueLinks(d);
    for (const v of plan.variants) {
      if (v.variant === 1) await afterFirst;
      // A retried plan renders only what is missing.
      if (v.variant === 0 ? d.html_template : v.rendered) {
        onRendered(v.variant);
        continue;
      }
      const list = v.articleIds.flatMap((id) => byId.get(id) ?? []);
      const personal = v.variant === 0 ? null : { mode: d.personalize, topics: v.topics, alreadySent: v.seen.length };
      const validation = v.variant === 0 ? 'strict' : 'skip';
      const issue = await this.renderer.renderIssue(
        d.newsletter_name,
        list,
        d.send_at,
        voiceOf(d),
        personal,
        validation,
        links,
      );
      if (v.variant === 0) await this.repo.storeTemplates(this.ds, d.id, issue, links.tracking);
      else await this.repo.storeVariantTemplates(this.ds, d.id, v.variant, issue);
      onRendered(v.variant);
    }
  }

  /**
   * A digest of several variants, or a local one. The ledger is written a page at a time while the
   * variants render; the batches of a page are queued for the variants rendered by then, and a
   * variant rendered later gets the batches of every page written before it. So the first mail
   * leaves once variant 0 and the first page are in, not after the whole ledger and the 64th
   * render, and rendering (the worker's thread) overlaps the fan-out and the sending. A local
   * digest's batches are of its waves due now (`DigestWaves.dueNow`); later waves get a delayed
   * job once the ledger is complete. A failed render or enqueue fails the plan (retried: what is
   * done stays done, and a range's job id is fixed).
   */
  private async fanOutWhileRendering(
    d: DigestRow,
    articles: (IssueArticle & { id: string })[],
    plan: StoredPlan,
    how: { keptTopics: string[]; already: AlreadySent; waves?: FanOutWaves },
  ): Promise<number> {
    // Waves going out now (null: all rows, a newsletter-time digest).
    const going = how.waves ? await this.waves.dueNow(d.id) : null;
    const rendered: number[] = [];
    /** Per rendered variant, the subscriber id up to which its rows have batches. */
    const through = new Map<number, string>();
    const ledger = { written: '0' };
    // Variants rendered since the last flush are queued together once they hold a batch of
    // readers (or a page is written, or rendering ends): a batch job per variant would cost more
    // than it saves.
    const readersOf = new Map(plan.variants.map((v) => [v.variant, v.readers]));
    let unflushed = 0;
    let queued: Promise<void> = Promise.resolve();
    const flush = (): Promise<void> => {
      queued = queued.then(async () => {
        if (going !== null && going.length === 0) return;
        const upTo = ledger.written;
        const groups = new Map<string, number[]>();
        for (const v of rendered) {
          const from = through.get(v) ?? '0';
          if (from !== upTo) groups.set(from, [...(groups.get(from) ?? []), v]);
        }
        for (const [from, variants] of groups) {
          await this.batches.enqueue(d.id, { from, upTo, filter: going ? { waves: going, variants } : { variants } });
          for (const v of variants) through.set(v, upTo);
        }
      });
      // Failures surface where `queued` is awaited below, not as an unhandled rejection.
      queued.catch(() => undefined);
      return queued;
    };
    const rendering = this.render(d, articles, plan, (v) => {
      rendered.push(v);
      unflushed += readersOf.get(v) ?? 0;
      if (unflushed >= this.config.digest.batchSize) {
        unflushed = 0;
        void flush();
      }
    });
    rendering.catch(() => undefined);

    const { batchSize, concurrency } = this.config.digest;
    let asked = batchSize * concurrency;
    let page = await this.repo.fanOutPage(this.ds, d.id, d.newsletter_id, '0', asked, how);
    // Fresh statistics before the first batches' statements are planned (see `analyzeLedger`).
    if (page.n > 0) await this.repo.analyzeLedger(this.ds);
    let pages = 0;
    while (page.last !== null) {
      ledger.written = page.last;
      void flush();
      pages += 1;
      if (page.n < asked) break;
      asked = Math.max(asked, batchSize * FAN_OUT_PAGE_BATCHES);
      page = await this.repo.fanOutPage(this.ds, d.id, d.newsletter_id, ledger.written, asked, how);
    }
    if (pages > 1) await this.repo.analyzeLedger(this.ds);
    // Rows of skipped waves are skipped before the count is set: from then on a wave with no open
    // row shows as sent (see DigestsService).
    if (how.waves) await this.waves.later(d.id);
    const recipients = await this.repo.setRecipients(this.ds, d.id);
    await rendering;
    await flush();
    return recipients;
  }

  /**
   * The ledger is written a page of recipients at a time, and each page's batches are queued as
   * soon as it is in: the first mail goes out once the issue is rendered and the first page (one
   * batch for each of a worker's concurrent batch jobs) is written, not after the whole audience
   * is (at a million recipients that took about 17 s). The first page's statistics (the
   * database's work) are gathered while the issue renders (the worker's: MJML holds its thread for
   * tens of milliseconds, so it starts once the page is in and `ANALYZE` is on its way). Each is
   * kept when the other fails, and a retried plan redoes only what is missing (pages already
   * written stay, their rows are not added twice). The recipient count is set last: until then no
   * batch can mark the digest sent.
   */
  private async fanOut(
    d: DigestRow,
    render: () => Promise<void>,
    how: {
      keptTopics: string[];
      already: AlreadySent;
      waves?: FanOutWaves;
    },
  ): Promise<number> {
    const { batchSize, concurrency } = this.config.digest;
    const firstSize = batchSize * concurrency;
    // A local digest's batches are queued per wave, when its time comes (see DigestWaves).
    const enqueueAsWritten = !how.waves;
    let page = await this.repo.fanOutPage(this.ds, d.id, d.newsletter_id, '0', firstSize, how);
    const [analyzed, rendered] = await Promise.allSettled([
      page.n > 0 ? this.repo.analyzeLedger(this.ds) : Promise.resolve(),
      render(),
    ]);
    if (rendered.status === 'rejected') throw rendered.reason;
    if (analyzed.status === 'rejected') throw analyzed.reason;
    const size = Math.max(firstSize, batchSize * FAN_OUT_PAGE_BATCHES);
    let asked = firstSize;
    let after = '0';
    let pages = 0;
    while (page.last !== null) {
      if (enqueueAsWritten) await this.batches.enqueue(d.id, { from: after, upTo: page.last });
      after = page.last;
      pages += 1;
      if (page.n < asked) break;
      asked = size;
      page = await this.repo.fanOutPage(this.ds, d.id, d.newsletter_id, after, size, how);
    }
    // The whole audience is in: statistics that know it (the first page's are kept when it was all).
    if (pages > 1) await this.repo.analyzeLedger(this.ds);
    return this.repo.setRecipients(this.ds, d.id);
  }

  /**
   * The issue's variants (see `planVariants`), planned before the ledger is written so that each
   * row gets its variant; a retried plan reads the first plan back (`already` is then not needed).
   */
  private async variantPlan(
    d: DigestRow,
    articles: (IssueArticle & { id: string })[],
    already: AlreadySent | null,
  ): Promise<StoredPlan> {
    if (d.variant_topics === null && already) {
      const issueTopics = d.personalize === 'off' ? [] : [...new Set(articles.flatMap((a) => a.topics.map(topicKey)))];
      const signatures = await this.repo.topicSignatures(this.ds, d.newsletter_id, issueTopics, already);
      const plan = planVariants(d.personalize, articles, signatures);
      await this.ds.transaction((em) => this.repo.storeVariantPlan(em, d.id, plan));
      if (plan.note) this.logger.log(`Digest ${d.id}: ${plan.note}`);
      if (plan.hadAll) this.logger.log(`Digest ${d.id}: ${plan.hadAll} reader(s) were already sent every article`);
    }
    const stored = await this.repo.variants(this.ds, d.id);
    const again = await this.repo.find(this.ds, d.id);
    return { variants: stored, keptTopics: again?.variant_topics ?? [], note: again?.variant_note ?? null };
  }

  /**
   * Re-queues the batches of a digest whose jobs were lost (a queue that came back empty, jobs
   * that failed for good); a local digest's waves whose time has come. The ledger makes a second
   * job for a range harmless.
   */
  async resume(digestId: string, round: string): Promise<number> {
    const d = await this.repo.find(this.ds, digestId);
    if (d?.delivery === 'local') {
      await this.waves.startDue(digestId, round);
      return 0;
    }
    return this.batches.enqueue(digestId, { round });
  }

  /** A local digest's wave is due (its delayed job). */
  async startWave(digestId: string, wave: number): Promise<WaveOutcome> {
    return this.waves.start(digestId, wave);
  }
}
