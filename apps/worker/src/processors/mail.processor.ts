import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { type Job, UnrecoverableError } from 'bullmq';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { TestCopySender } from '#digests/test-copy.service.js';
import { type JobOutcome, SubscriptionMailService } from '#mail/subscription-mail.service.js';
import { MAIL_QUEUE, type MailJob } from '#queue/jobs.js';
import { configureJobLock, throttledErrorLogger } from '#queue/queue.module.js';
import { OutboxRepository } from '#queue/outbox.repository.js';

/** Processes the mail queue. Each job id is the outbox event id, so a handled event is never sent twice. */
@Processor(MAIL_QUEUE, { autorun: false })
export class MailProcessor extends WorkerHost implements OnApplicationBootstrap {
  private readonly logger = new Logger(MailProcessor.name);

  constructor(
    private readonly mail: SubscriptionMailService,
    private readonly testCopies: TestCopySender,
    private readonly outbox: OutboxRepository,
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    // Set before the worker starts taking jobs. The global send rate is kept by SendRateLimiter.
    this.worker.concurrency = Math.max(1, this.config.smtp.maxConnections * 2);
    configureJobLock(this.worker, this.config.reliability.jobLockMs);
    this.worker.run().catch((err: unknown) => this.logger.error(`Mail worker stopped: ${String(err)}`));
  }

  private readonly onError = throttledErrorLogger(this.logger, 'Mail worker cannot reach the queue');

  @OnWorkerEvent('error')
  onWorkerError(err: Error): void {
    this.onError(err);
  }

  @OnWorkerEvent('failed')
  onFailed(job: Job | undefined, err: Error): void {
    const final = job && (err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1));
    this.logger.warn(
      `${job?.name ?? 'job'} ${job?.id ?? ''} failed${final ? ' for good' : ', will retry'}: ${err.message}`,
    );
  }

  async process(job: Job): Promise<JobOutcome> {
    const eventId = job.id;
    if (eventId && (await this.outbox.isHandled(this.ds.manager, eventId))) return 'skipped';
    const typed = { name: job.name, data: job.data } as MailJob;
    let outcome: JobOutcome;
    try {
      switch (typed.name) {
        case 'send-confirmation':
          outcome = await this.mail.sendConfirmation(typed.data.subscriberId, typed.data.newsletterIds);
          break;
        case 'send-guide':
          outcome = await this.mail.sendGuide(typed.data.subscriptionId);
          break;
        case 'send-digest-test':
          outcome = await this.testCopies.send(typed.data.digestId, typed.data.to);
          break;
        default:
          throw new UnrecoverableError(`Unknown job ${job.name}`);
      }
    } catch (err) {
      // A permanent failure is an outcome too: the reconciler must not publish the event again.
      if (err instanceof UnrecoverableError && eventId) await this.outbox.markHandled(this.ds.manager, eventId);
      throw err;
    }
    if (eventId) await this.outbox.markHandled(this.ds.manager, eventId);
    return outcome;
  }
}
