import { DataSource } from 'typeorm';
import { loadConfig } from '#config/config.js';
import { dataSourceOptions } from '#db/data-source.js';
import { SLOT_MS, SendRateLimiter, slotCapacity } from '#mail/send-rate-limiter.service.js';
import { query } from './support/db.js';
import { useTestDatabase } from './support/stack.js';

/**
 * The global send limiter against a real PostgreSQL: grants are positions in 50 ms slots, due
 * evenly across the slot, and a slot never hands out positions whose time has passed. The clock
 * is set by hand (Date.now) to place each grant inside its slot.
 */
describe('send rate limiter (positions in slots)', () => {
  const RATE = 400; // 0.99 × 400 / 20 = 19.8 sends per slot
  const testDb = useTestDatabase({ label: 'send-rate', seed: false });
  let ds: DataSource;
  let limiter: SendRateLimiter;
  // A slot well in the future, so that nothing else counts in it.
  const slot = Math.floor(Date.now() / SLOT_MS) + 100_000;
  const cap = slotCapacity(RATE, slot);
  const at = (msIntoSlot: number) => jest.spyOn(Date, 'now').mockReturnValue(slot * SLOT_MS + msIntoSlot);

  beforeAll(async () => {
    ds = new DataSource(dataSourceOptions(testDb.db.url));
    await ds.initialize();
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: testDb.db.url,
      SMTP_URL: 'smtp://127.0.0.1:2525',
      APP_SECRET: 'x'.repeat(32),
      SEND_RATE_PER_SECOND: String(RATE),
    });
    limiter = new SendRateLimiter(ds, config);
  });

  afterEach(() => jest.restoreAllMocks());

  // Before the database is dropped.
  testDb.onTeardown(() => ds?.destroy());

  it('schedules 0.99 × the rate, spread evenly over the slots', () => {
    let perSecond = 0;
    for (let s = 0; s < 20; s += 1) perSecond += slotCapacity(RATE, slot + s);
    expect(perSecond).toBeGreaterThanOrEqual(Math.floor(RATE * 0.99) - 1);
    expect(perSecond).toBeLessThanOrEqual(Math.ceil(RATE * 0.99));
    expect([19, 20]).toContain(cap);
  });

  it('a grant starts at the first position not yet due, and the next one follows it', async () => {
    at(25); // half the slot has passed: its first half's positions are not handed out
    const past = Math.floor((25 * cap) / SLOT_MS);
    const first = await limiter.grant(3);
    expect(first).toMatchObject({ slot, first: past, count: 3, capacity: cap });
    expect(first.dueAt(0)).toBeGreaterThanOrEqual(slot * SLOT_MS + 25 - SLOT_MS / cap);
    // Times are epoch milliseconds (about 1.8e12): a double holds them to about 0.0002 ms, so the
    // spacing is compared to a hundredth of a millisecond (timers are good to one).
    expect(first.dueAt(1) - first.dueAt(0)).toBeCloseTo(SLOT_MS / cap, 2);
    const second = await limiter.grant(3);
    expect(second.first).toBe(past + 3);
  });

  it('positions left unused while time passed are skipped, not handed out late', async () => {
    at(45);
    const past = Math.floor((45 * cap) / SLOT_MS);
    const g = await limiter.grant(10);
    expect(g.first).toBe(past);
    expect(g.count).toBe(cap - past);
    const [{ n }] = await query<{ n: number }>(testDb.db.url, 'SELECT n FROM send_rate WHERE slot = $1', [slot]);
    expect(n).toBe(cap);
  });

  it('a full slot makes the next grant wait for the next slot', async () => {
    const now = jest.spyOn(Date, 'now');
    now.mockReturnValueOnce(slot * SLOT_MS + 49); // the slot is full: wait …
    now.mockReturnValue((slot + 1) * SLOT_MS); // … and the next slot starts
    const g = await limiter.grant(2);
    expect(g).toMatchObject({ slot: slot + 1, first: 0, count: 2 });
  });
});
