import { InjectQueue, OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { type BeforeApplicationShutdown, Inject, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { DigestPlanner } from '#digests/digest-planner.service.js';
import { type DigestOutcome, DigestSender } from '#digests/digest-sender.service.js';
import type { WaveOutcome } from '#digests/digest-waves.service.js';
import { type FeedResult, FeedsService } from '#digests/feeds.service.js';
import { SchedulesService } from '#digests/schedules.service.js';
import { DIGEST_QUEUE, type DigestJob, jobIds } from '#queue/jobs.js';
import { OutboxRepository } from '#queue/outbox.repository.js';
import { configureJobLock, throttledErrorLogger } from '#queue/queue.module.js';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Digests and feeds: plan, send batches, fire schedules, poll feeds (each feed its own job). */
@Processor(DIGEST_QUEUE, { autorun: false })
export class DigestProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(DigestProcessor.name);
  private readonly onError = throttledErrorLogger(this.logger, 'Digest worker cannot reach the queue');

  constructor(
    private readonly planner: DigestPlanner,
    private readonly sender: DigestSender,
    private readonly feeds: FeedsService,
    private readonly schedules: SchedulesService,
    @InjectQueue(DIGEST_QUEUE) private readonly queue: Queue,
    private readonly outbox: OutboxRepository,
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.digest.concurrency;
    configureJobLock(this.worker, this.config.reliability.jobLockMs);
    this.worker.run().catch((err: unknown) => this.logger.error(`Digest worker stopped: ${String(err)}`));
    // Schedules follow the database at every start. Not awaited: with the queue down, start-up
    // goes on and the job is queued once the queue answers.
    void this.queue
      .add('sync-schedules', {}, { jobId: jobIds.syncSchedules(Date.now()) })
      .catch((err: unknown) => this.logger.warn(`Could not queue the schedule sync: ${String(err)}`));
  }

  /**
   * Stops taking jobs while the queue is still open: at shutdown @nestjs/bullmq closes queues and
   * workers together, and a running job (a schedule sync) whose next queue call met a closed
   * PostgreSQL queue waited forever, and the worker's close with it. Batches stop claiming first
   * (`DigestSender`), so the jobs still running end within its 25 s.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await this.sender.beforeApplicationShutdown();
    // A plan job mid fan-out may take a while: past 30 s, shutdown goes on (its job is retried).
    const deadline = new Promise((resolve) => setTimeout(resolve, 30_000).unref());
    await Promise.race([this.worker.close(), deadline]);
  }

  @OnWorkerEvent('error')
  onWorkerError(err: Error): void {
    this.onError(err);
  }

  @OnWorkerEvent('failed')
  onFailed(job: Job | undefined, err: Error): void {
    this.logger.warn(`${job?.name ?? 'job'} ${job?.id ?? ''} failed: ${err.message}`);
  }

  async process(
    job: Job,
  ): Promise<DigestOutcome | WaveOutcome | FeedResult | { schedules: number; removed: number } | number> {
    const result = await this.run(job);
    // Jobs published from the outbox carry the event id: mark the event handled.
    if (job.id && UUID.test(job.id)) await this.outbox.markHandled(this.ds.manager, job.id);
    return result;
  }

  private async run(
    job: Job,
  ): Promise<DigestOutcome | WaveOutcome | FeedResult | { schedules: number; removed: number } | number> {
    const typed = { name: job.name, data: job.data } as DigestJob;
    switch (typed.name) {
      case 'plan-digest':
        return this.planner.plan(typed.data.digestId);
      case 'send-digest-batch':
        return this.sender.sendBatch(typed.data.digestId, typed.data.fromSubscriberId, typed.data.toSubscriberId, {
          waves: typed.data.waves,
          variants: typed.data.variants,
        });
      case 'send-digest-wave':
        return this.planner.startWave(typed.data.digestId, typed.data.wave);
      case 'scheduled-digest': {
        // The firing's due time: when the scheduler meant it to run, not when a worker got to it.
        const due = new Date(job.timestamp + (job.opts.delay ?? 0));
        const key = job.id ?? `${job.name}:${due.getTime()}`;
        return this.planner.fromSchedule(typed.data.newsletterId, key, due, typed.data.local === true);
      }
      case 'sync-schedules':
        return this.schedules.sync();
      case 'poll-feeds': {
        const slot = Math.floor(Date.now() / (this.config.feeds.pollMinutes * 60_000));
        const list = await this.feeds.newslettersWithFeeds();
        await this.queue.addBulk(
          list.map((n) => ({
            name: 'poll-feed',
            data: { newsletterId: n.id },
            opts: { jobId: jobIds.feed(n.id, slot) },
          })),
        );
        return list.length;
      }
      case 'poll-feed':
        return this.feeds.poll(typed.data.newsletterId);
      default:
        throw new Error(`Unknown job ${job.name}`);
    }
  }
}
