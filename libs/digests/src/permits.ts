import type { SendPermits } from '#mail/send-permits.js';
import { SLOT_MS, type SendGrant, type SendRateLimiter } from '#mail/send-rate-limiter.service.js';

/**
 * Send permits the worker asks the global limiter for at once (one statement per this many
 * messages); a grant holds no more than what is left of its 50 ms slot, so at low rates it is smaller.
 */
export const GRANT_SIZE = 64;

/**
 * The worker's digest send permits: taken from the global limiter a few at a time and handed to
 * the senders of all its batches in turn (one queue: with one per batch, a batch could hold
 * permits that its senders, waiting behind the other batch's for a connection, cannot use before
 * they expire). Each permit is a position in its 50 ms slot and is used at that position's time
 * (see `SendRateLimiter.grant`), so every worker's mail leaves on one even grid at the rate
 * instead of each slot's share going out at its start.
 */
export class Permits implements SendPermits {
  private grant: SendGrant | null = null;
  /** The grant after `grant`, asked for once half of it was used. */
  private ahead: Promise<SendGrant> | null = null;
  /** Permits of `grant` used (or dropped). */
  private used = 0;
  /** Sends the batches under way may still ask for: no more than that is taken from the limiter. */
  private remaining = 0;
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly limiter: SendRateLimiter) {}

  /** Skips the grant's permits more than a slot overdue. */
  private dropStale(): void {
    const stale = Date.now() - SLOT_MS;
    while (this.grant && this.used < this.grant.count && this.grant.dueAt(this.used) < stale) this.used += 1;
  }

  /** The current grant while it has permits left. */
  private current(): SendGrant | null {
    return this.grant && this.used < this.grant.count ? this.grant : null;
  }

  /** A batch starts: up to `n` more sends. */
  expect(n: number): void {
    this.remaining += n;
  }

  /** A batch ends with `n` of its expected sends not asked for (skipped, failed, or stopped). */
  forget(n: number): void {
    this.remaining = Math.max(0, this.remaining - n);
  }

  /** Waits until the next permit is due (see `reserve`): the message goes out now. */
  async take(): Promise<void> {
    const wait = (await this.reserve()) - Date.now();
    // Timers are good to a millisecond: at high rates several permits go per wait.
    if (wait >= 1) await new Promise((resolve) => setTimeout(resolve, wait));
  }

  /**
   * The next permit, without waiting for it: when it is due (ms since the epoch). Its message goes
   * out at that time, or up to a slot after it (as `take` would have dropped it as stale after
   * that); a message that cannot go by then takes a new one.
   */
  reserve(): Promise<number> {
    const next = this.chain.then(async () => {
      // A permit more than a slot overdue (the senders were busy) is dropped, not used late
      // together with the ones due now.
      this.dropStale();
      let grant = this.current();
      if (!grant) {
        // The grant asked for ahead, unless it went stale too (the senders were away meanwhile).
        const ahead = this.ahead;
        this.ahead = null;
        if (ahead) {
          this.grant = await ahead;
          this.used = 0;
          this.dropStale();
          grant = this.current();
        }
        if (!grant) {
          grant = await this.limiter.grant(Math.max(1, Math.min(this.remaining, GRANT_SIZE)));
          this.grant = grant;
          this.used = 0;
        }
      }
      // Once half of a grant is used, the next one is asked for (when more sends are expected than
      // it has left): the limiter's round trip then runs while the rest of this one is sent, instead
      // of holding every waiting sender when it runs out.
      const left = grant.count - this.used;
      if (!this.ahead && this.used * 2 >= grant.count && this.remaining > left) {
        const ahead = this.limiter.grant(Math.min(this.remaining - left, GRANT_SIZE));
        // A failed request is seen by the take that waits on it; none need be seen before.
        ahead.catch(() => undefined);
        this.ahead = ahead;
      }
      const due = grant.dueAt(this.used);
      this.used += 1;
      this.remaining = Math.max(0, this.remaining - 1);
      return due;
    });
    this.chain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }
}

/**
 * One batch's use of the worker's `Permits`: it expects a send per recipient when it starts, and
 * gives back, when it ends, the ones its messages never asked for (skipped, failed, stopped), so
 * the worker does not ask the limiter for permits nobody will use. One object per batch, handed to
 * the transport with each of its messages.
 */
export class BatchPermits implements SendPermits {
  private expected = 0;
  private asked = 0;
  constructor(private readonly permits: Permits) {}

  /** The batch starts with `n` messages to send. */
  expect(n: number): void {
    this.expected += n;
    this.permits.expect(n);
  }

  take(): Promise<void> {
    this.asked += 1;
    return this.permits.take();
  }

  reserve(): Promise<number> {
    this.asked += 1;
    return this.permits.reserve();
  }

  /** The batch ended: its expected sends not asked for are forgotten. */
  end(): void {
    this.permits.forget(Math.max(0, this.expected - this.asked));
    this.expected = 0;
    this.asked = 0;
  }
}

/**
 * The send permits of a message on an SMTP route with a rate of its own: the route's permit first
 * (waited for), then a global one, reserved only once the route's is due, so the message leaves on
 * the global grid and no faster than either rate allows. A global permit that went stale before the
 * message had its connection is replaced by `take`, which also takes another of the route's: that
 * counts the route's mail high, never low.
 */
export class RoutePermits implements SendPermits {
  constructor(
    private readonly route: SendPermits,
    private readonly global: SendPermits,
  ) {}

  async take(): Promise<void> {
    await this.route.take();
    await this.global.take();
  }

  async reserve(): Promise<number> {
    await this.route.take();
    if (this.global.reserve) return this.global.reserve();
    await this.global.take();
    return Date.now();
  }
}
