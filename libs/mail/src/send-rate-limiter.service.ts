import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { MailRepository } from './mail.repository.js';

/** 50 ms slots: a one-second window, aligned or not, spans at most 21 of them, so at most 1.05× the rate (whatever the senders' timing). */
export const SLOT_MS = 50;
export const SLOTS_PER_SECOND = 1000 / SLOT_MS;

/**
 * The share of SEND_RATE_PER_SECOND that is scheduled. A message's time from its permit to the
 * server's answer varies by a few milliseconds (more for the first one on a connection); with
 * every position of the rate used, that jitter alone would carry some minutes a few messages over
 * the configured rate. One percent below it, no minute is over it, and throughput is 0.99 × R.
 */
export const SCHEDULED_SHARE = 0.99;
/** Capacities repeat every 100 s, so that a fractional scheduled rate (0.99 × R) is kept exactly over time. */
const CYCLE_SLOTS = SLOTS_PER_SECOND * 100;

/** How many sends slot `slot` may carry: 0.99 × `rate` per second, spread as evenly as whole sends allow. */
export function slotCapacity(rate: number, slot: number): number {
  const perSlot = (rate * SCHEDULED_SHARE) / SLOTS_PER_SECOND;
  const i = slot % CYCLE_SLOTS;
  return Math.floor((i + 1) * perSlot) - Math.floor(i * perSlot);
}

/** Send permits granted from one slot: its positions `first` … `first + count - 1` (see `SendRateLimiter.grant`). */
export class SendGrant {
  constructor(
    readonly slot: number,
    readonly first: number,
    readonly count: number,
    readonly capacity: number,
  ) {}

  /** When the grant's permit `i` (the slot's position `first + i`) is due (ms since the epoch). */
  dueAt(i: number): number {
    return this.slot * SLOT_MS + ((this.first + i) * SLOT_MS) / this.capacity;
  }
}

/**
 * One global outgoing-mail rate (SEND_RATE_PER_SECOND) shared by every worker, whatever the queue
 * backend: send permits come from 50 ms slots counted in PostgreSQL, each holding a twentieth of
 * the rate, so no one-second window (aligned or not) is granted more than 1.05× the rate.
 */
@Injectable()
export class SendRateLimiter {
  protected rate: number;
  private lastCleanup = 0;

  constructor(
    @InjectDataSource() protected readonly ds: DataSource,
    @Inject(APP_CONFIG) config: AppConfig,
    // Stateless: a limiter built by hand (the rate tests) needs no module to provide it.
    protected readonly repo: MailRepository = new MailRepository(),
  ) {
    this.rate = config.sendRatePerSecond;
  }

  /** Counts permits into a slot (see `MailRepository.takeSlotPermits`); a route's limiter counts its own. */
  protected takeSlotPermits(
    slot: number,
    take: number,
    capacity: number,
    past: number,
  ): Promise<{ after: number | null; current: number | null }> {
    return this.repo.takeSlotPermits(this.ds, slot, take, capacity, past);
  }

  protected deleteSlotsBefore(slot: number): Promise<void> {
    return this.repo.deleteSlotsBefore(this.ds, slot);
  }

  /** SEND_RATE_PER_SECOND: mails per second for all workers together. */
  get ratePerSecond(): number {
    return this.rate;
  }

  /** Waits until up to `want` sends may go out; returns how many permits were granted (at least 1). */
  async acquire(want: number): Promise<number> {
    return (await this.grant(want)).count;
  }

  /**
   * Waits until up to `want` sends may go out, and says when each may leave: the grant holds
   * `count` permits, positions `first` … of slot `slot`'s `capacity`, permit i being due at
   * `dueAt(i)` (the slot's share spread evenly across its 50 ms). A slot never hands out
   * positions whose time has passed, so a sender that starts late in a slot gets only what is
   * left of it, and every worker's sends fall on one even grid.
   */
  async grant(want: number): Promise<SendGrant> {
    for (;;) {
      const now = Date.now();
      const slot = Math.floor(now / SLOT_MS);
      const cap = slotCapacity(this.rate, slot);
      // Positions already due (their time in this slot has passed) are not handed out.
      const past = Math.min(cap, Math.floor(((now - slot * SLOT_MS) * cap) / SLOT_MS));
      let take = Math.min(want, cap - past);
      while (take > 0) {
        const r = await this.takeSlotPermits(slot, take, cap, past);
        if (r.after !== null) {
          if (slot - this.lastCleanup >= 600) void this.cleanup(slot);
          return new SendGrant(slot, r.after - take, take, cap);
        }
        const left = cap - Math.max(r.current ?? cap, past);
        take = left >= take ? take - 1 : Math.min(take - 1, left);
      }
      await new Promise((resolve) => setTimeout(resolve, (slot + 1) * SLOT_MS - now + 1));
    }
  }

  private async cleanup(slot: number): Promise<void> {
    this.lastCleanup = slot;
    await this.deleteSlotsBefore(slot - 600).catch(() => undefined);
  }
}

/**
 * One SMTP route's own rate (its `rate` in SMTP_ROUTES): the same 50 ms slots, counted per route
 * in `send_rate_route`. It is an additional limit: that route's mail also takes the global permits.
 */
export class RouteRateLimiter extends SendRateLimiter {
  constructor(
    ds: DataSource,
    config: AppConfig,
    readonly route: string,
    rate: number,
    repo: MailRepository = new MailRepository(),
  ) {
    super(ds, config, repo);
    this.rate = rate;
  }

  protected override takeSlotPermits(
    slot: number,
    take: number,
    capacity: number,
    past: number,
  ): Promise<{ after: number | null; current: number | null }> {
    return this.repo.takeRouteSlotPermits(this.ds, this.route, slot, take, capacity, past);
  }

  protected override deleteSlotsBefore(slot: number): Promise<void> {
    return this.repo.deleteRouteSlotsBefore(this.ds, this.route, slot);
  }
}
