import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { admin } from './support/admin.js';
import { query } from './support/db.js';
import { postJson } from './support/http.js';
import { useStack } from './support/stack.js';

/** Requests per class; the classes take turns (in a new random order each round). */
const ROUNDS = 180;
/** Rounds sent first and thrown away: connections, prepared statements and caches warm up. */
const WARMUP = 20;
/** A difference this unlikely under "same distribution" counts as real (two-sided)... */
const ALPHA = 0.001;
/** ...unless the medians are this close anyway (a fraction of the reference median). */
const MEDIAN_TOLERANCE = 0.06;
/** Repeated requests per address: well under CONFIRMATIONS_PER_ADDRESS_PER_DAY. */
const PER_ADDRESS = 15;
const PER_DAY = 100;

type Sample = number[];

interface Footprint {
  subscribers: { status: string; updatedAt: string }[];
  subscriptions: string[];
  consents: number;
  confirmations: number;
  outbox: number;
}

/**
 * Two-sided Mann-Whitney U test (normal approximation, tie-corrected; fine for samples of
 * 100+): the p-value of "a and b come from one distribution".
 */
function mannWhitney(a: Sample, b: Sample): { u: number; z: number; p: number } {
  const all = [...a.map((v) => ({ v, g: 0 })), ...b.map((v) => ({ v, g: 1 }))].sort((x, y) => x.v - y.v);
  const n1 = a.length;
  const n2 = b.length;
  const n = n1 + n2;
  let rankSumA = 0;
  let tieTerm = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && all[j + 1].v === all[i].v) j += 1;
    const rank = (i + j) / 2 + 1; // average rank of a run of ties
    const t = j - i + 1;
    tieTerm += t ** 3 - t;
    for (let k = i; k <= j; k += 1) if (all[k].g === 0) rankSumA += rank;
    i = j + 1;
  }
  const u = rankSumA - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const sd = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  const z = sd === 0 ? 0 : (u - mean) / sd;
  return { u, z, p: Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))) };
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, error < 1.5e-7). */
function normalCdf(x: number): number {
  const t = 1 / (1 + (0.3275911 * Math.abs(x)) / Math.SQRT2);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-(x * x) / 2);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

function median(xs: Sample): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function shuffle<T>(xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * Invariant 4 against a timing side channel: how long `POST /v1/subscriptions` takes must not
 * tell whether an address is new, pending, active, rate limited, bounced, complained or erased.
 */
describe('subscribe timing (no enumeration by the clock)', () => {
  const stack = useStack({
    label: 'timing',
    worker: false,
    env: { PUBLIC_POSTS_PER_IP_PER_MINUTE: '100000', CONFIRMATIONS_PER_ADDRESS_PER_DAY: String(PER_DAY) },
  });
  const url = () => `${stack.apps.baseUrl}/v1/subscriptions`;

  const subscribe = async (email: string): Promise<void> => {
    const res = await postJson(url(), { email });
    expect(res.status).toBe(202);
    await res.arrayBuffer();
  };
  const webhook = async (email: string, type: 'hard' | 'complaint'): Promise<void> => {
    expect((await admin(stack.apps.baseUrl, 'POST', '/v1/webhooks/generic', { email, type })).status).toBe(200);
  };
  /** What the database holds about one class's addresses. */
  const footprint = async (cls: string) =>
    (
      await query<{ f: Footprint }>(
        stack.db.url,
        `SELECT json_build_object(
           'subscribers', (SELECT json_agg(json_build_object('status', u.status, 'updatedAt', u.updated_at) ORDER BY u.id)
                           FROM subscribers u WHERE u.email LIKE $1),
           'subscriptions', (SELECT json_agg(s.status ORDER BY s.id) FROM subscriptions s
                             JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email LIKE $1),
           'consents', (SELECT count(*) FROM consent_records c JOIN subscribers u ON u.id = c.subscriber_id WHERE u.email LIKE $1),
           'confirmations', (SELECT count(*) FROM confirmation_requests c
                             JOIN subscribers u ON u.id = c.subscriber_id WHERE u.email LIKE $1),
           'outbox', (SELECT count(*) FROM outbox o JOIN subscribers u ON o.payload->>'subscriberId' = u.id::text
                      WHERE u.email LIKE $1)) AS f`,
        [`${cls}-%`],
      )
    )[0].f;
  const addresses = (cls: string, n: number) => Array.from({ length: n }, (_, i) => `${cls}-${i}@timing.example`);

  it('answers in the same time whatever is known about the address', async () => {
    const total = ROUNDS + WARMUP;
    const reused = Math.ceil(total / PER_ADDRESS);

    // Addresses in each state. Classes that a request does not change reuse a few addresses;
    // "new" and "erased" change on the first request, so each request gets a fresh one.
    const fresh = addresses('new', total);
    const pending = addresses('pending', reused);
    const active = addresses('active', reused);
    const limited = addresses('limited', reused);
    const bounced = addresses('bounced', reused);
    const complained = addresses('complained', reused);
    const erased = addresses('erased', total);
    for (const e of [...pending, ...active, ...limited, ...bounced, ...complained, ...erased]) await subscribe(e);
    await query(
      stack.db.url,
      `UPDATE subscriptions s SET status = 'active', confirmed_at = now() FROM subscribers u
        WHERE u.id = s.subscriber_id AND (u.email LIKE 'active-%' OR u.email LIKE 'bounced-%' OR u.email LIKE 'complained-%')`,
    );
    // Rate limited: the day's confirmation mails already spent (pending, so a request would send one).
    await query(
      stack.db.url,
      `INSERT INTO confirmation_requests (subscriber_id)
       SELECT u.id FROM subscribers u, generate_series(1, $1) WHERE u.email LIKE 'limited-%'`,
      [PER_DAY],
    );
    for (const e of bounced) await webhook(e, 'hard');
    for (const e of complained) await webhook(e, 'complaint');
    for (const e of erased)
      expect((await admin(stack.apps.baseUrl, 'DELETE', `/v1/subscribers/${e}`)).status).toBe(204);

    const before = {
      bounced: await footprint('bounced'),
      complained: await footprint('complained'),
      limited: await footprint('limited'),
    };
    expect(before.bounced.subscribers.every((u) => u.status === 'bounced')).toBe(true);
    expect(before.limited.confirmations).toBe(reused * (PER_DAY + 1));

    const classes: Record<string, (i: number) => string> = {
      new: (i) => fresh[i],
      pending: (i) => pending[i % reused],
      active: (i) => active[i % reused],
      limited: (i) => limited[i % reused],
      bounced: (i) => bounced[i % reused],
      complained: (i) => complained[i % reused],
      erased: (i) => erased[i],
    };
    const names = Object.keys(classes);
    const samples: Record<string, Sample> = Object.fromEntries(names.map((n) => [n, []]));
    for (let i = 0; i < total; i += 1) {
      for (const name of shuffle(names)) {
        const email = classes[name](i);
        const t0 = performance.now();
        await subscribe(email);
        const ms = performance.now() - t0;
        if (i >= WARMUP) samples[name].push(ms);
      }
    }

    // The reference is the address nobody knows: every other state is compared with it.
    const reference = samples.new;
    const refMedian = median(reference);
    const report = names.map((name) => {
      const { z, p } = mannWhitney(samples[name], reference);
      const ratio = median(samples[name]) / refMedian;
      return { name, median: median(samples[name]), ratio, z, p };
    });
    const table = report
      .map(
        (r) =>
          `${r.name.padEnd(10)} median ${r.median.toFixed(3)} ms  ratio ${r.ratio.toFixed(3)}  z ${r.z.toFixed(2)}  p ${r.p.toExponential(2)}`,
      )
      .join('\n');
    process.stdout.write(`subscribe timing, ${ROUNDS} requests per class:\n${table}\n`);
    // A class leaks when its difference is both significant and larger than the tolerance.
    const leaks = report.filter((r) => r.p < ALPHA && Math.abs(r.ratio - 1) > MEDIAN_TOLERANCE);
    expect({ leaks: leaks.map((r) => r.name), table }).toEqual({ leaks: [], table });

    // Nothing of the blocked requests stayed: suppressed addresses as they were, no mail for the limited.
    expect(await footprint('bounced')).toEqual(before.bounced);
    expect(await footprint('complained')).toEqual(before.complained);
    const limitedAfter = await footprint('limited');
    expect([limitedAfter.confirmations, limitedAfter.outbox]).toEqual([
      before.limited.confirmations,
      before.limited.outbox,
    ]);
  }, 60_000);
});
