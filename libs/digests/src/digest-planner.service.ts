import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Queue } from 'bullmq';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { DIGEST_QUEUE, type DigestJob, jobIds } from '#queue/jobs.js';
import { DeliveriesRepository } from './deliveries.repository.js';
import { DigestRenderer, type IssueArticle, type IssueTemplates } from './digest-renderer.service.js';
import { voiceOf } from './digest-voice.js';
import { planVariants, topicKey, type VariantPlan } from './issue-variants.js';
import { type DigestRow, DigestsRepository } from './digests.repository.js';

export type PlanOutcome = 'planned' | 'skipped' | 'cancelled';

/** Batch jobs queued with one addBulk. */
const ENQUEUE_CHUNK = 500;
/** After the first, the fan-out writes the ledger this many batches' worth of rows a statement. */
const FAN_OUT_PAGE_BATCHES = 20;

/**
 * The worker's planning of digests: articles chosen, the issue rendered once, the delivery ledger
 * (one row per recipient) written in keyset pages, and a batch job queued per range of it.
 */
@Injectable()
export class DigestPlanner {
  private readonly logger = new Logger(DigestPlanner.name);

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @InjectQueue(DIGEST_QUEUE) private readonly queue: Queue,
    private readonly repo: DigestsRepository,
    private readonly deliveries: DeliveriesRepository,
    private readonly renderer: DigestRenderer,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** A schedule fired: one digest per firing (the job id is the key), planned at once. */
  async fromSchedule(newsletterId: number, firingKey: string, dueAt: Date): Promise<PlanOutcome> {
    const { id } = await this.repo.create(this.ds, newsletterId, dueAt, 'schedule', firingKey);
    return this.plan(id);
  }

  /** Planning is idempotent: a retried or re-delivered plan job picks up where the last one stopped. */
  async plan(digestId: string): Promise<PlanOutcome> {
    const step = await this.ds.transaction(async (em) => {
      const d = await this.repo.find(em, digestId, true);
      if (!d) return 'skipped' as const;
      if (d.status !== 'scheduled' && d.status !== 'sending')
        return d.status === 'cancelled' ? ('cancelled' as const) : ('skipped' as const);
      if (d.status === 'scheduled') {
        const lateMs = Date.now() - d.send_at.getTime();
        if (lateMs > this.config.digest.graceMinutes * 60_000) {
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
    const plan = await this.variantPlan(d, articles);
    // Each variant rendered once (one mjml2html each). Variant 0 first, validated; the others are
    // the same markup in another order, so MJML's validation is not run again. Variant 0 is stored
    // last: once the digest's own templates are there, every variant's are.
    const render = async () => {
      if (d.html_template) return;
      const byId = new Map(articles.map((a) => [a.id, a]));
      let own: IssueTemplates | null = null;
      for (const v of plan.variants) {
        const list = v.articleIds.flatMap((id) => byId.get(id) ?? []);
        const topics = v.variant === 0 ? null : { mode: d.personalize, topics: v.topics };
        const validation = v.variant === 0 ? 'strict' : 'skip';
        const issue = await this.renderer.renderIssue(
          d.newsletter_name,
          list,
          d.send_at,
          voiceOf(d),
          topics,
          validation,
        );
        if (v.variant === 0) own = issue;
        else await this.repo.storeVariantTemplates(this.ds, d.id, v.variant, issue);
      }
      await this.repo.storeTemplates(this.ds, d.id, own!);
    };
    let recipients: number;
    if (d.recipients !== null) {
      // A retried plan whose fan-out had finished: the batches again (the ledger makes a second job harmless).
      await render();
      await this.enqueueBatches(d.id);
      recipients = d.recipients;
    } else recipients = await this.fanOut(d, render, plan.keptTopics);
    // Nobody to send to is not a send: recorded as skipped with the reason, never as "sent".
    if (recipients === 0 && (await this.deliveries.skipIfEmpty(this.ds, d.id))) {
      this.logger.log(`Digest ${d.id} skipped: no active subscribers`);
      return 'skipped';
    }
    if (await this.repo.completeIfDone(this.ds, d.id)) this.logger.log(`Digest ${d.id} sent (no recipient left)`);
    this.logger.log(`Digest ${d.id} planned for ${recipients} recipients`);
    return 'planned';
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
  private async fanOut(d: DigestRow, render: () => Promise<void>, keptTopics: string[]): Promise<number> {
    const { batchSize, concurrency } = this.config.digest;
    const firstSize = batchSize * concurrency;
    let page = await this.repo.fanOutPage(this.ds, d.id, d.newsletter_id, '0', firstSize, keptTopics);
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
      await this.enqueueBatches(d.id, undefined, after, page.last);
      after = page.last;
      pages += 1;
      if (page.n < asked) break;
      asked = size;
      page = await this.repo.fanOutPage(this.ds, d.id, d.newsletter_id, after, size, keptTopics);
    }
    // The whole audience is in: statistics that know it (the first page's are kept when it was all).
    if (pages > 1) await this.repo.analyzeLedger(this.ds);
    return this.repo.setRecipients(this.ds, d.id);
  }

  /**
   * The issue's topic variants (see `planVariants`), planned before the ledger is written so that
   * each row gets its variant; a retried plan reads the first plan back.
   */
  private async variantPlan(d: DigestRow, articles: (IssueArticle & { id: string })[]): Promise<VariantPlan> {
    if (d.variant_topics === null) {
      const issueTopics = [...new Set(articles.flatMap((a) => a.topics.map(topicKey)))];
      const signatures =
        d.personalize === 'off' ? [] : await this.repo.topicSignatures(this.ds, d.newsletter_id, issueTopics);
      const plan = planVariants(d.personalize, articles, signatures);
      await this.ds.transaction((em) => this.repo.storeVariantPlan(em, d.id, plan));
      if (plan.note) this.logger.log(`Digest ${d.id}: ${plan.note}`);
    }
    const stored = await this.repo.variants(this.ds, d.id);
    const again = await this.repo.find(this.ds, d.id);
    return { variants: stored, keptTopics: again?.variant_topics ?? [], note: again?.variant_note ?? null };
  }

  /**
   * Re-queues the batches of a digest whose jobs were lost (a queue that came back empty, jobs
   * that failed for good). The ledger makes a second job for a range harmless.
   */
  async resume(digestId: string, round: string): Promise<number> {
    return this.enqueueBatches(digestId, round);
  }

  /**
   * Keyset pages over the ledger (after `from`, up to `upTo` when given), enqueued with addBulk;
   * memory holds one chunk of job ranges at a time.
   */
  private async enqueueBatches(
    digestId: string,
    round?: string,
    from = '0',
    upTo: string | null = null,
  ): Promise<number> {
    let after = from;
    let total = 0;
    let chunk: {
      name: 'send-digest-batch';
      data: Extract<DigestJob, { name: 'send-digest-batch' }>['data'];
      opts: { jobId: string };
    }[] = [];
    for (;;) {
      const range = await this.repo.nextRange(this.ds, digestId, after, this.config.digest.batchSize, upTo);
      if (range) {
        chunk.push({
          name: 'send-digest-batch',
          data: { digestId, fromSubscriberId: range.from, toSubscriberId: range.to },
          opts: {
            jobId: round
              ? `${jobIds.digestBatch(digestId, range.from)}-r${round}`
              : jobIds.digestBatch(digestId, range.from),
          },
        });
        after = range.to;
      }
      if (chunk.length >= ENQUEUE_CHUNK || (!range && chunk.length > 0)) {
        await this.queue.addBulk(chunk);
        total += chunk.length;
        chunk = [];
      }
      if (!range) return total;
    }
  }
}
