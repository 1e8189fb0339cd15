import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { DIGEST_QUEUE, jobIds } from '#queue/jobs.js';
import { EARLIEST_ZONE } from './local-waves.js';
import { SchedulesRepository } from './schedules.repository.js';

/**
 * Keeps BullMQ's job schedulers equal to the database: one per newsletter with a schedule, plus
 * the feed poller. Upserts are idempotent, so restarts neither lose nor double a schedule.
 */
@Injectable()
export class SchedulesService {
  private readonly logger = new Logger(SchedulesService.name);

  constructor(
    private readonly repo: SchedulesRepository,
    @InjectQueue(DIGEST_QUEUE) private readonly queue: Queue,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Job schedulers the database wants that the queue lacks (a Redis that came back empty). */
  async missing(): Promise<number> {
    const wanted = await this.repo.scheduled();
    const have = new Set((await this.queue.getJobSchedulers(0, -1)).map((s) => s.key));
    return wanted.filter((w) => !have.has(jobIds.scheduler(w.slug))).length + (have.has(jobIds.feedScheduler) ? 0 : 1);
  }

  async sync(): Promise<{ schedules: number; removed: number }> {
    const wanted = await this.repo.scheduled();
    const keys = new Set<string>();
    for (const n of wanted) {
      const key = jobIds.scheduler(n.slug);
      keys.add(key);
      // A local schedule fires when the earliest zone's clocks reach its time: that wall-clock
      // time is then each reader's, and the digest is planned for their waves (see DigestWaves).
      const local = n.delivery === 'local';
      await this.queue.upsertJobScheduler(
        key,
        { pattern: n.cron, tz: local ? EARLIEST_ZONE : n.timezone },
        {
          name: 'scheduled-digest',
          data: local ? { newsletterId: n.newsletterId, local } : { newsletterId: n.newsletterId },
        },
      );
    }
    await this.queue.upsertJobScheduler(
      jobIds.feedScheduler,
      { every: this.config.feeds.pollMinutes * 60_000 },
      { name: 'poll-feeds', data: {} },
    );
    let removed = 0;
    for (const s of await this.queue.getJobSchedulers(0, -1)) {
      if (s.key.startsWith('schedule-') && !keys.has(s.key)) {
        await this.queue.removeJobScheduler(s.key);
        removed += 1;
      }
    }
    this.logger.log(`Schedules in sync: ${keys.size} digest schedule(s), ${removed} removed`);
    return { schedules: keys.size, removed };
  }
}
