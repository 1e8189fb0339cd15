import type { SendRateLimiter } from '../../mail/src/send-rate-limiter.service.js';
import { Permits } from './digest-sender.service.js';

/** A limiter that grants whatever is asked at once and counts the grants. */
function limiter(ratePerSecond: number) {
  const grants: number[] = [];
  const l = {
    ratePerSecond,
    acquire: async (want: number) => {
      grants.push(want);
      return want;
    },
  };
  return { grants, limiter: l as unknown as SendRateLimiter };
}

describe('send permits (digest sender)', () => {
  it('spaces the permits of one grant at the global rate, not all at once', async () => {
    const { grants, limiter: l } = limiter(200); // one every 5 ms
    const permits = new Permits(l);
    permits.expect(10);
    const times: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        await permits.take();
        times.push(performance.now());
      }),
    );
    expect(grants).toEqual([10]);
    for (let i = 1; i < times.length; i += 1) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(3);
    expect(times[9] - times[0]).toBeGreaterThanOrEqual(40);
  });

  it('does not wait between permits when the rate is far above the sending speed', async () => {
    const { grants, limiter: l } = limiter(100_000);
    const permits = new Permits(l);
    permits.expect(40);
    let waited = 0;
    const realSetTimeout = global.setTimeout;
    const spy = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      waited += 1;
      return realSetTimeout(fn, ms);
    }) as typeof setTimeout);
    try {
      for (let i = 0; i < 40; i += 1) await permits.take();
    } finally {
      spy.mockRestore();
    }
    expect(grants).toEqual([20, 20]);
    expect(waited).toBe(0);
  });

  it('asks the limiter for no more than the batches under way still expect', async () => {
    const { grants, limiter: l } = limiter(100_000);
    const permits = new Permits(l);
    permits.expect(30); // a batch of 30 ...
    permits.expect(5); // ... and one of 5, sharing one queue of permits
    for (let i = 0; i < 20; i += 1) await permits.take();
    expect(grants).toEqual([20]);
    permits.forget(10); // the first batch stops with 10 of its sends never asked for
    await permits.take();
    expect(grants).toEqual([20, 5]);
  });
});
