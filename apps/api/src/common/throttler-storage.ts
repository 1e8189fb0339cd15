import type { ExecutionContext } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

interface Counter {
  /** Expiry times of the hits still counted, oldest first, from `head` on. */
  hits: number[];
  head: number;
  /** When the key's current window ends (the X-RateLimit-Reset header), as the stock storage keeps it. */
  expiresAt: number;
  blockedUntil: number;
}

/**
 * The throttler's in-memory storage with the same rules as @nestjs/throttler's own (a sliding
 * log of hits, each counted for `ttl`; past `limit` the key is blocked for `blockDuration` and its
 * hits stop counting; when the block ends the count starts again), at a constant cost per request.
 * The stock storage filters and copies every hit of the key on every request: with a generous
 * limit (many readers behind one address) that grows with the traffic.
 */
export class SlidingLogThrottlerStorage implements ThrottlerStorage {
  private readonly counters = new Map<string, Counter>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly sweepEveryMs = 60_000) {}

  increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    const now = Date.now();
    this.sweeper ??= setInterval(() => this.sweep(), this.sweepEveryMs).unref();
    const id = `${throttlerName}\u0000${key}`;
    let c = this.counters.get(id);
    if (!c) {
      c = { hits: [], head: 0, expiresAt: now + ttl, blockedUntil: 0 };
      this.counters.set(id, c);
    }
    this.prune(c, now);
    if (c.expiresAt <= now) c.expiresAt = now + ttl;
    const timeToExpire = this.secondsUntil(c.expiresAt, now);
    if (blockDuration <= 0) {
      // No block: a hit at the limit is refused and not counted.
      const over = c.hits.length - c.head >= limit;
      if (!over) c.hits.push(now + ttl);
      return Promise.resolve({
        totalHits: c.hits.length - c.head + (over ? 1 : 0),
        timeToExpire,
        isBlocked: over,
        timeToBlockExpire: over ? this.secondsUntil(c.hits[c.head] ?? now, now) : 0,
      });
    }
    if (c.blockedUntil > 0 && c.blockedUntil <= now) {
      // The block is over: the count starts again.
      c.blockedUntil = 0;
      c.hits = [];
      c.head = 0;
    }
    if (c.blockedUntil === 0) {
      c.hits.push(now + ttl);
      if (c.hits.length - c.head > limit) c.blockedUntil = now + blockDuration;
    }
    return Promise.resolve({
      totalHits: c.hits.length - c.head,
      timeToExpire,
      isBlocked: c.blockedUntil > 0,
      timeToBlockExpire: c.blockedUntil > 0 ? this.secondsUntil(c.blockedUntil, now) : 0,
    });
  }

  private secondsUntil(t: number, now: number): number {
    return Math.ceil((t - now) / 1000);
  }

  private prune(c: Counter, now: number): void {
    while (c.head < c.hits.length && c.hits[c.head] <= now) c.head += 1;
    // Drop the counted-out front now and then, so the array stays as long as the live hits.
    if (c.head > 1024 && c.head * 2 > c.hits.length) {
      c.hits = c.hits.slice(c.head);
      c.head = 0;
    }
  }

  /** Forgets keys with no live hits and no block. */
  sweep(now = Date.now()): void {
    for (const [id, c] of this.counters) {
      this.prune(c, now);
      if (c.head >= c.hits.length && c.blockedUntil <= now) this.counters.delete(id);
    }
  }
}

/**
 * The throttler's key: the route and the client. The stock one hashes it with SHA-256 on every
 * request, which buys nothing for a key that never leaves the process.
 */
export function throttlerKey(context: ExecutionContext, tracker: string, throttlerName: string): string {
  return `${context.getClass().name}-${context.getHandler().name}-${throttlerName}-${tracker}`;
}
