import { type Claim, LedgerWriter, type SentRecord } from './ledger-writer.js';

/** A stand-in ledger in memory: rows and the round trips that reached it. */
function ledger(opts: { failFirst?: number; delayMs?: number } = {}) {
  const trips: { claims: string[]; sent: SentRecord[] }[] = [];
  const state = new Map<string, string>();
  let fail = opts.failFirst ?? 0;
  const write = async (claims: string[], sent: SentRecord[]): Promise<Map<string, Claim>> => {
    await new Promise((r) => setTimeout(r, opts.delayMs ?? 2));
    if (fail > 0) {
      fail -= 1;
      throw new Error('connection refused');
    }
    trips.push({ claims, sent });
    for (const s of sent) state.set(s.subscriberId, 'sent');
    const out = new Map<string, Claim>();
    for (const id of claims) {
      out.set(id, state.has(id) ? 'taken' : 'claimed');
      if (!state.has(id)) state.set(id, 'sending');
    }
    return out;
  };
  return { trips, state, write };
}

/** Waits until `ok()` holds (a loaded machine can run timers late), failing after `ms`. */
async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ledger writer (group commit of claims and sent records)', () => {
  it('carries every claim and sent record that arrives during a round trip in the next one', async () => {
    const l = ledger({ delayMs: 5 });
    const w = new LedgerWriter(l.write, { maxDelayMs: 1000, maxTrips: 1 });
    const first = w.claim('1');
    const rest = Promise.all(['2', '3', '4'].map((id) => w.claim(id)));
    w.recordSent({ subscriberId: '0', messageId: '<m0>' });
    expect(await first).toBe('claimed');
    expect(await rest).toEqual(['claimed', 'claimed', 'claimed']);
    expect(l.trips).toHaveLength(2);
    expect(l.trips[1]).toEqual({ claims: ['2', '3', '4'], sent: [{ subscriberId: '0', messageId: '<m0>' }] });
    expect(await w.claim('2')).toBe('taken');
  });

  it('claims a group of rows in one round trip, with the sent records waiting for it', async () => {
    const l = ledger();
    const w = new LedgerWriter(l.write, { maxDelayMs: 1000, maxTrips: 1 });
    await w.claimAll(['1', '2']);
    w.recordSent({ subscriberId: '1', messageId: '<m1>' });
    w.recordSent({ subscriberId: '2', messageId: '<m2>' });
    expect(await w.claimAll(['3', '4', '5', '2'])).toEqual(['claimed', 'claimed', 'claimed', 'taken']);
    expect(l.trips).toEqual([
      { claims: ['1', '2'], sent: [] },
      {
        claims: ['3', '4', '5', '2'],
        sent: [
          { subscriberId: '1', messageId: '<m1>' },
          { subscriberId: '2', messageId: '<m2>' },
        ],
      },
    ]);
  });

  it('with two round trips allowed, a claim does not wait for the one under way', async () => {
    const l = ledger({ delayMs: 30 });
    const w = new LedgerWriter(l.write, { maxDelayMs: 1000, maxTrips: 2 });
    const claims = await Promise.all([w.claim('1'), w.claim('2'), w.claim('3')]);
    expect(claims).toEqual(['claimed', 'claimed', 'claimed']);
    // '1' alone, then '2' at once in a second trip while the first is under way (one at a time
    // would have carried '2' and '3' together after it), then '3'.
    expect(l.trips.map((t) => t.claims)).toEqual([['1'], ['2'], ['3']]);
  });

  it('a sent record handed in during a round trip waits for the next claim, not a trip of its own', async () => {
    const l = ledger({ delayMs: 5 });
    const w = new LedgerWriter(l.write, { maxDelayMs: 5000 });
    const first = w.claim('1');
    w.recordSent({ subscriberId: '0', messageId: '<m0>' });
    expect(await first).toBe('claimed');
    await new Promise((r) => setTimeout(r, 30));
    // The trip ended and the record is not due yet: nothing else went out.
    expect(l.trips).toHaveLength(1);
    expect(w.unwritten).toBe(1);
    expect(await w.claim('2')).toBe('claimed');
    expect(l.trips).toHaveLength(2);
    expect(l.trips[1]).toEqual({ claims: ['2'], sent: [{ subscriberId: '0', messageId: '<m0>' }] });
    await new Promise((r) => setImmediate(r)); // the trip's own bookkeeping, after its claims settle
    expect(w.unwritten).toBe(0);
  });

  it('a sent record handed in during a round trip is still written by its delay when no claim comes', async () => {
    const l = ledger({ delayMs: 5 });
    const w = new LedgerWriter(l.write, { maxDelayMs: 40 });
    const first = w.claim('1');
    w.recordSent({ subscriberId: '0', messageId: '<m0>' });
    await first;
    await until(() => l.state.get('0') === 'sent');
    expect(l.trips.map((t) => t.sent.length)).toEqual([0, 1]);
    expect(l.state.get('0')).toBe('sent');
  });

  it('writes a sent record on its own after the delay when no claim comes', async () => {
    const l = ledger();
    const w = new LedgerWriter(l.write, { maxDelayMs: 20 });
    w.recordSent({ subscriberId: '9', messageId: '<m9>' });
    expect(w.unwritten).toBe(1);
    await until(() => w.unwritten === 0);
    expect(l.state.get('9')).toBe('sent');
  });

  it('drain retries while the database is away and writes every record once', async () => {
    const l = ledger({ failFirst: 2 });
    const w = new LedgerWriter(l.write, { maxDelayMs: 1000 });
    for (let i = 0; i < 5; i += 1) w.recordSent({ subscriberId: String(i), messageId: `<m${i}>` });
    await expect(w.claim('99')).rejects.toThrow('connection refused');
    await w.drain();
    expect(w.unwritten).toBe(0);
    expect(l.trips.flatMap((t) => t.sent.map((s) => s.subscriberId)).sort()).toEqual(['0', '1', '2', '3', '4']);
  });

  it('drain gives up with the error after its retries', async () => {
    const l = ledger({ failFirst: 100 });
    const w = new LedgerWriter(l.write, { maxDelayMs: 1000, retries: 1 });
    w.recordSent({ subscriberId: '1', messageId: '<m1>' });
    await expect(w.drain()).rejects.toThrow('connection refused');
    expect(w.unwritten).toBe(1);
  });

  it('keeps retrying records a drain gave up on, on its own, until the database is back', async () => {
    const l = ledger({ failFirst: 3 });
    const w = new LedgerWriter(l.write, { maxDelayMs: 1000, retries: 1 });
    w.recordSent({ subscriberId: '7', messageId: '<m7>' });
    await expect(w.drain()).rejects.toThrow('connection refused');
    expect(w.unwritten).toBe(1);
    // Retries back off 500 ms, then 1 s: the third retry is the one that succeeds.
    await until(() => w.unwritten === 0, 10_000);
    expect(l.state.get('7')).toBe('sent');
  });
});
