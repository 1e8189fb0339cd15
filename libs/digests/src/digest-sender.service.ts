import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { LedgerPg } from '#db/ledger-pg.service.js';
import { DkimKeys } from '#mail/dkim/dkim-keys.service.js';
import { MailTransport } from '#mail/mail-transport.service.js';
import { SendRateLimiter } from '#mail/send-rate-limiter.service.js';
import { SubscriptionMailService } from '#mail/subscription-mail.service.js';
import { SuppressionsRepository } from '#subscriptions/suppressions.repository.js';
import { type BatchOutcome, BatchRun, type BatchTools } from './batch-run.js';
import { DeliveriesRepository } from './deliveries.repository.js';
import { DigestMessage } from './digest-message.js';
import { DigestPlanner, type PlanOutcome } from './digest-planner.service.js';
import { DigestRenderer } from './digest-renderer.service.js';
import { type BatchFilter, type DigestRow, DigestsRepository } from './digests.repository.js';
import { LedgerWriter, LedgerWriters } from './ledger-writer.js';
import { Permits } from './permits.js';
import { PLACES_PER_CONNECTION, Places } from './places.js';
import { Revocations } from './revocations.service.js';

// Kept for the renderer's spec, which reads it from here; the List-ID's owner is #mail/list-headers.
export { listIdValue } from '#mail/list-headers.js';

export type DigestOutcome = PlanOutcome | BatchOutcome;

/**
 * The worker's sending of digest batches: it owns what all its batches share (the send permits,
 * the sending places, the ledger writers, the message buffers) and runs each batch as a `BatchRun`.
 */
@Injectable()
export class DigestSender implements BeforeApplicationShutdown {
  private readonly logger = new Logger(DigestSender.name);
  private readonly tools: BatchTools;
  private readonly batches = new Set<Promise<unknown>>();
  /** Each digest's message, shared by its batches (see `messageOf`). */
  private readonly messages = new Map<string, DigestMessage>();
  /** Batches started here, in order: a batch's rank for the sending places. */
  private batchesStarted = 0;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: DigestsRepository,
    deliveries: DeliveriesRepository,
    suppressions: SuppressionsRepository,
    ledgerPg: LedgerPg,
    private readonly renderer: DigestRenderer,
    transport: MailTransport,
    limiter: SendRateLimiter,
    mail: SubscriptionMailService,
    private readonly revocations: Revocations,
    private readonly planner: DigestPlanner,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dkim: DkimKeys,
  ) {
    // Messages this worker may have between a claim and SMTP's answer; also the lanes per batch.
    const places = PLACES_PER_CONNECTION * Math.max(1, config.smtp.maxConnections);
    this.tools = {
      ds,
      repo,
      deliveries,
      suppressions,
      transport,
      mail,
      revocations,
      ledgers: new LedgerWriters(
        (digestId) => new LedgerWriter((ids, sent) => repo.claimMany(ledgerPg, digestId, ids, sent)),
      ),
      permits: new Permits(limiter),
      places: new Places(places),
      lanes: places,
      spareBuffers: [],
      config,
      logger: this.logger,
      shutdown: { requested: false },
    };
  }

  /** SIGTERM: stop claiming, let messages already handed to SMTP finish (within 25 s) before anything closes. */
  async beforeApplicationShutdown(): Promise<void> {
    this.tools.shutdown.requested = true;
    const deadline = new Promise((r) => setTimeout(r, 25_000).unref());
    await Promise.race([Promise.allSettled([...this.batches]), deadline]);
  }

  /**
   * One batch: claim each delivery row before SMTP, mark it after. Sent rows are never sent again;
   * rows a crashed attempt left in flight are sent again (at-least-once for those alone).
   */
  async sendBatch(digestId: string, from: string, to: string, filter: BatchFilter = {}): Promise<BatchOutcome> {
    const run = this.runBatch(digestId, from, to, filter);
    this.batches.add(run);
    try {
      return await run;
    } finally {
      this.batches.delete(run);
    }
  }

  private async runBatch(digestId: string, from: string, to: string, filter: BatchFilter): Promise<BatchOutcome> {
    if (this.tools.shutdown.requested) throw new Error('worker shutting down: batch left to another worker');
    const rank = this.batchesStarted++;
    await this.revocations.start();
    const d = await this.repo.find(this.ds, digestId);
    if (!d || d.status !== 'sending' || !d.html_template) return d?.status === 'cancelled' ? 'cancelled' : 'skipped';
    const message = await this.messageOf(d, filter.variants ?? null);
    return new BatchRun(this.tools, message, digestId, rank).run(from, to, filter);
  }

  /**
   * A digest's message, built once per worker and shared by its batches: with variants, their
   * templates (up to 64 issues) are read and prepared once, not per batch. Variants are rendered
   * while the first batches send, so a batch of variants this worker has not read yet (`needed`,
   * or all of them) reads just those.
   */
  private async messageOf(d: DigestRow, needed: number[] | null): Promise<DigestMessage> {
    let message = this.messages.get(d.id);
    if (!message) {
      message = new DigestMessage(d, this.renderer, this.config, [], this.dkim);
      this.messages.set(d.id, message);
      // The last few digests only (a worker sends a few at a time).
      if (this.messages.size > 8) this.messages.delete(this.messages.keys().next().value as string);
    }
    const have = message;
    const missing = (needed ?? Array.from({ length: d.variants }, (_, i) => i)).filter((v) => !have.has(v));
    if (missing.length > 0) have.add(await this.repo.variantTemplates(this.ds, d.id, missing));
    // Before any row is claimed: the batch is retried once the plan has rendered them.
    const unrendered = missing.filter((v) => !have.has(v));
    if (unrendered.length > 0)
      throw new Error(
        `Digest ${d.id}: variant(s) ${unrendered.join(', ')} not rendered yet; the batch will be retried`,
      );
    return have;
  }

  /** Re-queues the batches of a digest whose jobs were lost (see `DigestPlanner.resume`). */
  async resume(digestId: string, round: string): Promise<number> {
    return this.planner.resume(digestId, round);
  }
}
