import { MAX_RETRY_DELAY_MS, nextRetry } from './webhook-retry.js';

const start = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(start.getTime() + ms);
const base = { windowStart: start, baseMs: 10_000, windowSeconds: 86_400 };

describe('webhook retry schedule', () => {
  it('doubles the delay per attempt, between half and all of it', () => {
    for (const attempts of [1, 2, 3, 4]) {
      const exp = 10_000 * 2 ** (attempts - 1);
      const low = nextRetry({ ...base, attempts, now: start, random: 0 });
      const high = nextRetry({ ...base, attempts, now: start, random: 0.999999 });
      expect(low).toEqual({ kind: 'retry', at: at(exp / 2) });
      expect(high.kind === 'retry' && high.at.getTime() - start.getTime()).toBe(Math.round(exp * 0.9999995));
    }
  });

  it('never waits more than an hour between attempts', () => {
    const step = nextRetry({ ...base, attempts: 40, now: start, random: 0.999999 });
    expect(step.kind === 'retry' && step.at.getTime() - start.getTime()).toBeLessThanOrEqual(MAX_RETRY_DELAY_MS);
  });

  it('gives up once the window (a day by default) has passed, and never schedules past it', () => {
    expect(nextRetry({ ...base, attempts: 20, now: at(86_400_000) }).kind).toBe('give-up');
    expect(nextRetry({ ...base, attempts: 20, now: at(86_400_000 - 1000), random: 0.9 })).toEqual({
      kind: 'retry',
      at: at(86_400_000),
    });
  });
});
