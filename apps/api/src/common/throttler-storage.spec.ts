import { SlidingLogThrottlerStorage } from './throttler-storage.js';

describe('SlidingLogThrottlerStorage', () => {
  let now = 1_000_000;
  beforeEach(() => {
    now = 1_000_000;
    jest.spyOn(Date, 'now').mockImplementation(() => now);
  });
  afterEach(() => jest.restoreAllMocks());

  it('counts hits for ttl, blocks past the limit for blockDuration, then starts again', async () => {
    const s = new SlidingLogThrottlerStorage();
    const hit = () => s.increment('ip', 60_000, 3, 60_000, 'default');
    for (let i = 1; i <= 3; i += 1) {
      expect(await hit()).toMatchObject({ totalHits: i, isBlocked: false, timeToExpire: 61 - i });
      now += 1000;
    }
    expect(await hit()).toMatchObject({ totalHits: 4, isBlocked: true, timeToBlockExpire: 60 });
    now += 30_000;
    // Blocked: hits stop counting until the block ends, even once older hits expire.
    expect(await hit()).toMatchObject({ totalHits: 4, isBlocked: true, timeToBlockExpire: 30 });
    now += 30_000;
    expect(await hit()).toMatchObject({ totalHits: 1, isBlocked: false });
  });

  it('forgets hits older than ttl (a sliding window, not a fixed one)', async () => {
    const s = new SlidingLogThrottlerStorage();
    const hit = () => s.increment('ip', 10_000, 2, 10_000, 'default');
    await hit();
    now += 6000;
    await hit();
    now += 5000; // the first hit is gone, the second still counts
    expect(await hit()).toMatchObject({ totalHits: 2, isBlocked: false });
    expect(await hit()).toMatchObject({ totalHits: 3, isBlocked: true });
  });

  it('keeps keys and throttlers apart and sweeps idle keys', async () => {
    const s = new SlidingLogThrottlerStorage();
    await s.increment('a', 1000, 1, 1000, 'default');
    expect(await s.increment('b', 1000, 1, 1000, 'default')).toMatchObject({ totalHits: 1, isBlocked: false });
    expect(await s.increment('a', 1000, 1, 1000, 'other')).toMatchObject({ totalHits: 1, isBlocked: false });
    now += 5000;
    s.sweep();
    expect(await s.increment('a', 1000, 1, 1000, 'default')).toMatchObject({ totalHits: 1, isBlocked: false });
  });

  it('stays cheap and exact with a huge limit', async () => {
    const s = new SlidingLogThrottlerStorage();
    for (let i = 0; i < 50_000; i += 1) {
      await s.increment('proxy', 60_000, 1_000_000, 60_000, 'default');
      now += 2; // 500 hits per second: 30 000 live at any time after a minute
    }
    expect(await s.increment('proxy', 60_000, 1_000_000, 60_000, 'default')).toMatchObject({
      totalHits: 30_000,
      isBlocked: false,
    });
  });

  it('without a block, refuses hits at the limit and does not count them', async () => {
    const s = new SlidingLogThrottlerStorage();
    await s.increment('k', 10_000, 1, 0, 'default');
    expect(await s.increment('k', 10_000, 1, 0, 'default')).toMatchObject({ totalHits: 2, isBlocked: true });
    now += 10_000;
    expect(await s.increment('k', 10_000, 1, 0, 'default')).toMatchObject({ totalHits: 1, isBlocked: false });
  });
});
