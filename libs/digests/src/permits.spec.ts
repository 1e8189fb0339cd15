import { SLOT_MS, SendGrant, type SendRateLimiter, slotCapacity } from '#mail/send-rate-limiter.service.js';
import { BatchPermits, GRANT_SIZE as G, Permits, RoutePermits } from './permits.js';

/**
 * A stand-in for the global limiter that grants what is asked from the positions of the slot
 * under way still ahead (as the real one does, without the shared count), or from the next
 * slot's start when `nextSlot` is set; it records what was asked.
 */
function limiter(ratePerSecond: number, opts: { nextSlot?: boolean } = {}) {
  const asked: number[] = [];
  const grants: SendGrant[] = [];
  const l = {
    ratePerSecond,
    grant: async (want: number) => {
      asked.push(want);
      const now = Date.now();
      const slot = Math.floor(now / SLOT_MS) + (opts.nextSlot ? 1 : 0);
      const cap = slotCapacity(ratePerSecond, slot);
      const past = opts.nextSlot ? 0 : Math.floor(((now - slot * SLOT_MS) * cap) / SLOT_MS);
      const g = new SendGrant(slot, past, Math.min(want, cap - past), cap);
      grants.push(g);
      return g;
    },
  };
  return { asked, grants, limiter: l as unknown as SendRateLimiter };
}

/** A limiter whose grants are always due now, for what does not depend on time (never stale, however slow the machine). */
function dueNowLimiter() {
  const asked: number[] = [];
  const l = {
    ratePerSecond: 100_000,
    grant: async (want: number) => {
      asked.push(want);
      return { count: want, dueAt: () => Date.now() } as unknown as SendGrant;
    },
  };
  return { asked, limiter: l as unknown as SendRateLimiter };
}

describe('send permits (Permits)', () => {
  it('a grant’s positions are due evenly across their slot', () => {
    const g = new SendGrant(1000, 4, 3, 10);
    expect([g.dueAt(0), g.dueAt(1), g.dueAt(2)]).toEqual([50_000 + 20, 50_000 + 25, 50_000 + 30]);
  });

  it('uses each permit at its position’s time: spaced at the rate, not all at once', async () => {
    const { asked, grants, limiter: l } = limiter(200, { nextSlot: true }); // 9-10 per slot, one every 5-5.6 ms
    const permits = new Permits(l);
    permits.expect(9);
    const times: number[] = [];
    await Promise.all(
      Array.from({ length: 9 }, async () => {
        await permits.take();
        times.push(Date.now());
      }),
    );
    expect(asked).toEqual([9]);
    // None before its time (a busy machine may run them late, never early): the last is ≥ 40 ms after the first's time.
    for (let i = 0; i < times.length; i += 1)
      expect(times[i]).toBeGreaterThanOrEqual(Math.floor(grants[0].dueAt(i)) - 1);
    expect(grants[0].dueAt(8) - grants[0].dueAt(0)).toBeGreaterThanOrEqual(40);
  });

  it('reserves positions ahead without waiting for them: their due times, in order, at the rate', async () => {
    const { asked, grants, limiter: l } = limiter(200, { nextSlot: true }); // positions in the next slot, 5-5.6 ms apart
    const permits = new Permits(l);
    permits.expect(9);
    const started = Date.now();
    const due: number[] = [];
    // Nothing waits for its time: no timer is set while the nine are reserved (counted, not
    // timed, so a slow machine cannot fail it).
    let timers = 0;
    const realSetTimeout = global.setTimeout;
    const spy = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      timers += 1;
      return realSetTimeout(fn, ms);
    }) as typeof setTimeout);
    try {
      for (let i = 0; i < 9; i += 1) due.push(await permits.reserve());
    } finally {
      spy.mockRestore();
    }
    expect(timers).toBe(0);
    expect(asked).toEqual([9]);
    expect(due).toEqual(Array.from({ length: 9 }, (_, i) => grants[0].dueAt(i)));
    expect(due[0]).toBeGreaterThan(started);
    // A take, by contrast, waits for its position's time (a new grant's first: this stand-in shares no count).
    permits.expect(1);
    await permits.take();
    expect(asked).toEqual([9, 1]);
    expect(Date.now()).toBeGreaterThanOrEqual(Math.floor(grants[1].dueAt(0)) - 1);
  });

  it('does not wait between permits when the rate is far above the sending speed', async () => {
    const { asked, limiter: l } = dueNowLimiter();
    const permits = new Permits(l);
    permits.expect(2 * G);
    let waited = 0;
    const realSetTimeout = global.setTimeout;
    const spy = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      waited += 1;
      return realSetTimeout(fn, ms);
    }) as typeof setTimeout);
    try {
      for (let i = 0; i < 2 * G; i += 1) await permits.take();
    } finally {
      spy.mockRestore();
    }
    expect(asked).toEqual([G, G]);
    expect(waited).toBe(0);
  });

  it('asks the limiter for no more than the batches under way still expect', async () => {
    const { asked, limiter: l } = dueNowLimiter();
    const permits = new Permits(l);
    permits.expect(G + 10); // a batch of G + 10 ...
    permits.expect(5); // ... and one of 5, sharing one queue of permits
    for (let i = 0; i < G; i += 1) await permits.take();
    // The second grant was asked for halfway through the first: for the 15 sends expected beyond it.
    expect(asked).toEqual([G, 15]);
    permits.forget(10); // the first batch stops with 10 of its sends never asked for
    for (let i = 0; i < 5; i += 1) await permits.take();
    expect(asked).toEqual([G, 15]);
    permits.expect(30); // a new batch: the rest of the second grant first, then what is still expected
    for (let i = 0; i < 10; i += 1) await permits.take();
    // Asked at the second grant's 9th take: 27 still expected, 7 of them left in it.
    expect(asked).toEqual([G, 15, 20]);
  });

  it('asks for the next grant halfway through the current one, so no sender waits on the limiter', async () => {
    const asked: number[] = [];
    const answers: ((g: SendGrant) => void)[] = [];
    const l = {
      ratePerSecond: 100_000,
      grant: (want: number) =>
        new Promise<SendGrant>((resolve) => {
          asked.push(want);
          answers.push(resolve);
        }),
    } as unknown as SendRateLimiter;
    const dueNow = (count: number) => ({ count, dueAt: () => Date.now() }) as unknown as SendGrant;
    const permits = new Permits(l);
    permits.expect(2 * G);
    const first = permits.take();
    await new Promise((r) => setImmediate(r));
    answers[0](dueNow(G));
    await first;
    for (let i = 1; i < G / 2; i += 1) await permits.take();
    expect(asked).toEqual([G]);
    await permits.take(); // half of the first grant is used
    expect(asked).toEqual([G, G]);
    // The rest of the first grant goes while the second is still on its way.
    for (let i = G / 2 + 1; i < G; i += 1) await permits.take();
    let taken = false;
    const next = permits.take().then(() => (taken = true));
    await new Promise((r) => setImmediate(r));
    expect(taken).toBe(false); // the next waits for the second grant, and only for it
    answers[1](dueNow(G));
    await next;
    expect(asked).toEqual([G, G]);
  });

  it('drops a grant asked for ahead that went stale while the senders were away', async () => {
    const slotNow = () => Math.floor(Date.now() / SLOT_MS);
    const grants: SendGrant[] = [];
    const l = {
      ratePerSecond: 100_000,
      grant: async (want: number) => {
        // The first grant is due now; the one asked for ahead is long overdue by the time it is
        // used; the next one starts with the next slot.
        const g =
          grants.length === 0
            ? new SendGrant(slotNow(), 0, want, want)
            : grants.length === 1
              ? new SendGrant(slotNow() - 10, 0, want, want)
              : new SendGrant(slotNow() + 1, 0, want, want);
        grants.push(g);
        return g;
      },
    } as unknown as SendRateLimiter;
    // The clock stands still while the first grant is used (a busy machine must not make it stale
    // too); it moves on only for the wait on the fresh grant.
    // It stands at the last millisecond of a slot: every position of that slot is due, none stale.
    const lastMs = Math.floor(Date.now() / SLOT_MS) * SLOT_MS + SLOT_MS - 1;
    jest.useFakeTimers({ now: lastMs, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    try {
      const permits = new Permits(l);
      permits.expect(2 * G);
      for (let i = 0; i < G; i += 1) await permits.take();
      expect(grants).toHaveLength(2); // the second asked for halfway through the first
      const before = Date.now();
      let taken = false;
      const next = permits.take().then(() => (taken = true));
      await jest.advanceTimersByTimeAsync(0);
      expect(taken).toBe(false); // not sent at once from the stale positions
      await jest.advanceTimersByTimeAsync(2 * SLOT_MS);
      await next;
      // Its positions were all stale: a fresh grant, waited for, not G sends at once.
      expect(grants).toHaveLength(3);
      expect(Date.now()).toBeGreaterThanOrEqual(Math.floor(before / SLOT_MS) * SLOT_MS + SLOT_MS - 1);
    } finally {
      jest.useRealTimers();
    }
  });

  it('drops positions more than a slot overdue instead of sending them late in a burst', async () => {
    const stale = new SendGrant(Math.floor(Date.now() / SLOT_MS) - 10, 0, 5, 10);
    const fresh: SendGrant[] = [];
    const l = {
      ratePerSecond: 200,
      grant: async (want: number) => {
        if (fresh.length === 0) {
          fresh.push(stale);
          return stale;
        }
        const g = new SendGrant(Math.floor(Date.now() / SLOT_MS) + 1, 0, Math.min(want, 10), 10);
        fresh.push(g);
        return g;
      },
    } as unknown as SendRateLimiter;
    const permits = new Permits(l);
    permits.expect(20);
    // The first take gets the (already stale) grant: it is due long ago, so it goes at once ...
    await permits.take();
    // ... but when the sender comes back, the rest of it is stale: a new grant, not 4 at once.
    const before = Date.now();
    await permits.take();
    expect(fresh).toHaveLength(2);
    expect(Date.now()).toBeGreaterThanOrEqual(Math.floor(before / SLOT_MS) * SLOT_MS + SLOT_MS - 1);
  });

  it('a batch gives back, when it ends, the sends it expected and never asked a permit for', async () => {
    const run = async (end: boolean) => {
      const { asked, limiter: l } = dueNowLimiter();
      const permits = new Permits(l);
      const batch = new BatchPermits(permits);
      batch.expect(10);
      await batch.take();
      await batch.reserve();
      if (end) batch.end(); // 8 of its 10 sends never asked a permit
      permits.expect(4);
      for (let i = 0; i < 4; i += 1) await permits.take();
      return asked;
    };
    // Still expected, the 8 would make the worker ask the limiter ahead, halfway through the grant.
    expect(await run(false)).toEqual([10, 4]);
    expect(await run(true)).toEqual([10]);
  });
});

describe('a route with its own rate (RoutePermits)', () => {
  /** Permits that record the order in which they were used. */
  function recording(name: string, log: string[], reserve: boolean) {
    return {
      take: async () => {
        log.push(`${name}.take`);
      },
      ...(reserve
        ? {
            reserve: async () => {
              log.push(`${name}.reserve`);
              return 42;
            },
          }
        : {}),
    };
  }

  it("waits for the route's permit before it reserves the global one, and answers with the global one's time", async () => {
    const log: string[] = [];
    const p = new RoutePermits(recording('route', log, true), recording('global', log, true));
    expect(await p.reserve()).toBe(42);
    expect(log).toEqual(['route.take', 'global.reserve']);
  });

  it('takes one of each on take (a reserved global permit that went stale: the route counts high, never low)', async () => {
    const log: string[] = [];
    await new RoutePermits(recording('route', log, true), recording('global', log, true)).take();
    expect(log).toEqual(['route.take', 'global.take']);
  });

  it('global permits that cannot reserve are taken', async () => {
    const log: string[] = [];
    const before = Date.now();
    const due = await new RoutePermits(recording('route', log, false), recording('global', log, false)).reserve();
    expect(log).toEqual(['route.take', 'global.take']);
    expect(due).toBeGreaterThanOrEqual(before);
  });

  it("a route's BatchPermits and the global ones each count the batch's sends", async () => {
    const route = dueNowLimiter();
    const global = dueNowLimiter();
    const routeBatch = new BatchPermits(new Permits(route.limiter));
    const globalBatch = new BatchPermits(new Permits(global.limiter));
    routeBatch.expect(3);
    globalBatch.expect(3);
    const p = new RoutePermits(routeBatch, globalBatch);
    for (let i = 0; i < 3; i += 1) await p.reserve();
    // Both limiters were asked for the batch's three sends, not one each.
    expect(route.asked[0]).toBe(3);
    expect(global.asked[0]).toBe(3);
  });
});
