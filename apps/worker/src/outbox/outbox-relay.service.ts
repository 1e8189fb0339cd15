import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Queue } from 'bullmq';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { DIGEST_QUEUE, MAIL_QUEUE, type QueueName, jobForEvent } from '#queue/jobs.js';
import { OutboxRepository } from '#queue/outbox.repository.js';

const PAGE = 500;
const ADD_TIMEOUT_MS = 10_000;

/**
 * Moves outbox rows to the queue, job id = event id (so a row published twice is one job), and
 * marks them dispatched in the same transaction. While the queue is down rows simply wait.
 */
@Injectable()
export class OutboxRelayService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(OutboxRelayService.name);
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @InjectQueue(MAIL_QUEUE) private readonly mailQueue: Queue,
    @InjectQueue(DIGEST_QUEUE) private readonly digestQueue: Queue,
    private readonly outbox: OutboxRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
      });
    }, ms);
  }

  private async tick(): Promise<void> {
    let more = false;
    try {
      more = (await this.relayOnce()) === PAGE;
    } catch (err) {
      this.logger.warn(
        `Outbox relay could not publish (will retry): ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    this.schedule(more ? 0 : this.config.outbox.pollMs);
  }

  /** Publishes one page; returns how many events went out. */
  async relayOnce(): Promise<number> {
    return this.ds.transaction(async (em) => {
      const pending = await this.outbox.lockPending(em, PAGE);
      if (pending.length === 0) return 0;
      const byQueue = new Map<QueueName, { name: string; data: unknown; opts: { jobId: string; delay?: number } }[]>();
      for (const { id, event } of pending) {
        const q = jobForEvent(event);
        const list = byQueue.get(q.queue) ?? [];
        list.push({
          name: q.job.name,
          data: q.job.data,
          opts: { jobId: id, ...(q.delayMs ? { delay: q.delayMs } : {}) },
        });
        byQueue.set(q.queue, list);
      }
      let timeout: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.all(
            [...byQueue].map(([name, jobs]) => (name === MAIL_QUEUE ? this.mailQueue : this.digestQueue).addBulk(jobs)),
          ),
          new Promise((_, reject) => {
            timeout = setTimeout(() => reject(new Error('queue did not answer in time')), ADD_TIMEOUT_MS);
          }),
        ]);
      } finally {
        clearTimeout(timeout);
      }
      await this.outbox.markDispatched(
        em,
        pending.map((p) => p.id),
      );
      return pending.length;
    });
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
