import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { DigestSender } from '#digests/digest-sender.service.js';
import { DigestsRepository } from '#digests/digests.repository.js';
import { SchedulesService } from '#digests/schedules.service.js';
import { OutboxRepository } from '#queue/outbox.repository.js';

/**
 * PostgreSQL is the source of truth; the queue may lose work (Redis restarted empty, jobs that
 * failed for good). Periodically: outbox events published but never handled are published again
 * (same job id: a no-op while the job still exists), digests stuck mid-send get their
 * batches re-queued, and job schedulers the queue lost are rebuilt from the database.
 */
@Injectable()
export class ReconcilerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ReconcilerService.name);
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly outbox: OutboxRepository,
    private readonly digests: DigestsRepository,
    private readonly sender: DigestSender,
    private readonly schedules: SchedulesService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.reconcile()
        .then(() => undefined)
        .catch((err: unknown) =>
          this.logger.warn(`Reconciliation failed: ${err instanceof Error ? err.message : String(err)}`),
        )
        .finally(() => {
          this.running = undefined;
        });
    }, this.config.reliability.reconcileIntervalMs);
  }

  async reconcile(): Promise<{ events: number; digests: number; schedules: number }> {
    const after = this.config.reliability.reconcileAfterMs;
    const events = await this.outbox.redispatchUnhandled(this.ds, after);
    const stuck = await this.digests.stuck(this.ds, after);
    for (const id of stuck) {
      await this.digests.markResumed(this.ds, id);
      await this.sender.resume(id, String(Date.now()));
    }
    // Job schedulers live only in the queue: when it lost them, rebuild them from the database.
    const schedules = await this.schedules.missing();
    if (schedules > 0) await this.schedules.sync();
    if (events || stuck.length || schedules) {
      this.logger.warn(
        `Recovered lost work: ${events} outbox event(s) republished, ${stuck.length} digest(s) resumed, ${schedules} job scheduler(s) restored`,
      );
    }
    return { events, digests: stuck.length, schedules };
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
