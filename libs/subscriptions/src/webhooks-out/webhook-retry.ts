/**
 * When a failed delivery is tried again: exponential backoff from `baseMs` (doubling per attempt,
 * capped at an hour), with jitter so endpoints that failed together do not retry together, until
 * the retry window closes; then the delivery has failed for good.
 */
export const MAX_RETRY_DELAY_MS = 3_600_000;

export type RetryStep = { kind: 'retry'; at: Date } | { kind: 'give-up' };

export function nextRetry(opts: {
  /** Attempts made so far, this one included (1 after the first). */
  attempts: number;
  now: Date;
  windowStart: Date;
  baseMs: number;
  windowSeconds: number;
  /** In [0, 1); Math.random by default. */
  random?: number;
}): RetryStep {
  const windowEnd = opts.windowStart.getTime() + opts.windowSeconds * 1000;
  const exp = Math.min(opts.baseMs * 2 ** Math.min(Math.max(opts.attempts - 1, 0), 30), MAX_RETRY_DELAY_MS);
  // Between half and the whole of the exponential delay.
  const delay = Math.round(exp * (0.5 + 0.5 * (opts.random ?? Math.random())));
  const at = opts.now.getTime() + delay;
  if (opts.now.getTime() >= windowEnd) return { kind: 'give-up' };
  // The last retry lands at the window's end rather than beyond it.
  return { kind: 'retry', at: new Date(Math.min(at, windowEnd)) };
}
