import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../config/src/config.js';

/** 50 ms slots: a one-second window, aligned or not, spans at most 21 of them, so at most 1.05× the rate. */
export const SLOT_MS = 50;
export const SLOTS_PER_SECOND = 1000 / SLOT_MS;

/** How many sends slot `slot` may carry so that each second's slots add up to exactly `rate`. */
export function slotCapacity(rate: number, slot: number): number {
  const i = slot % SLOTS_PER_SECOND;
  return Math.floor(((i + 1) * rate) / SLOTS_PER_SECOND) - Math.floor((i * rate) / SLOTS_PER_SECOND);
}

/**
 * One global outgoing-mail rate (SEND_RATE_PER_SECOND) shared by every worker, whatever the queue
 * backend: tokens come from 50 ms slots counted in PostgreSQL, each holding a twentieth of the rate,
 * so no one-second window (aligned or not) is granted more than 1.05× the rate.
 */
@Injectable()
export class SendRateLimiter {
  private readonly rate: number;
  private lastCleanup = 0;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.rate = config.sendRatePerSecond;
  }

  /** SEND_RATE_PER_SECOND: mails per second for all workers together. */
  get ratePerSecond(): number {
    return this.rate;
  }

  /** Waits until up to `want` sends may go out; returns how many were granted (at least 1). */
  async acquire(want: number): Promise<number> {
    for (;;) {
      const now = Date.now();
      const slot = Math.floor(now / SLOT_MS);
      const cap = slotCapacity(this.rate, slot);
      let take = Math.min(want, cap);
      while (take > 0) {
        const [r]: { after: number | null; current: number | null }[] = await this.ds.query(
          `WITH up AS (
             INSERT INTO send_rate (slot, n) VALUES ($1, $2)
             ON CONFLICT (slot) DO UPDATE SET n = send_rate.n + $2 WHERE send_rate.n + $2 <= $3
             RETURNING n)
           SELECT (SELECT n FROM up) AS after, (SELECT n FROM send_rate WHERE slot = $1) AS current`,
          [slot, take, cap],
        );
        if (r.after !== null) {
          if (slot - this.lastCleanup >= 600) void this.cleanup(slot);
          return take;
        }
        const left = cap - (r.current ?? cap);
        take = left >= take ? take - 1 : Math.min(take - 1, left);
      }
      await new Promise((resolve) => setTimeout(resolve, (slot + 1) * SLOT_MS - now + 1));
    }
  }

  private async cleanup(slot: number): Promise<void> {
    this.lastCleanup = slot;
    await this.ds.query(`DELETE FROM send_rate WHERE slot < $1`, [slot - 600]).catch(() => undefined);
  }
}
