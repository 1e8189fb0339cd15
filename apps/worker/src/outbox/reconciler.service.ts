import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../../../libs/config/src/config.js';
import { DigestSender } from '../../../../libs/digests/src/digest-sender.service.js';
import { DigestsRepository } from '../../../../libs/digests/src/digests.repository.js';
import { rows } from '../../../../libs/db/src/sql.js';

/**
 * PostgreSQL is the source of truth; the queue may lose work (Redis restarted empty, jobs that
 * failed for good). Periodically: outbox events published but never handled are published again
 * (same job id: a no-op while the job still exists), and digests stuck mid-send get their
 * batches re-queued.
 */
@Injectable()
export class ReconcilerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ReconcilerService.name);
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly digests: DigestsRepository,
    private readonly sender: DigestSender,
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

  async reconcile(): Promise<{ events: number; digests: number }> {
    const after = this.config.reliability.reconcileAfterMs;
    const events = await rows(
      this.ds,
      `UPDATE outbox SET dispatched_at = NULL
       WHERE handled_at IS NULL AND dispatched_at < now() - make_interval(secs => $1::float8 / 1000)
         -- a digest planned for later is waiting by design, not lost
         AND NOT (type = 'digest.requested' AND (payload->>'sendAt')::timestamptz > now())
       RETURNING id`,
      [after],
    );
    const stuck = await this.digests.stuck(this.ds, after);
    for (const id of stuck) {
      await this.digests.markResumed(this.ds, id);
      await this.sender.resume(id, String(Date.now()));
    }
    if (events.length || stuck.length) {
      this.logger.warn(
        `Recovered lost work: ${events.length} outbox event(s) republished, ${stuck.length} digest(s) resumed`,
      );
    }
    return { events: events.length, digests: stuck.length };
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
