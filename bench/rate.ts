/**
 * Benchmark 6: SEND_RATE_PER_SECOND=R shared by two workers. The sink's accept timestamps give
 * the mean rate over the sending window and the busiest one-second window (sliding).
 */
import { type Sink, createDigest, digestOutcome, sinkCount, sinkReached, sinkTimes } from './digest.js';
import { addArticles } from './support.js';

export interface RateResult {
  rate: number;
  messages: number;
  windowS: number;
  /** Over the whole send, (messages - 1) / (last accept - first accept). */
  mean: number;
  /** The target's figure: accepts in the first `meanWindowS` seconds from the first accept, per second. */
  meanWindowS: number;
  windowMean: number;
  windowMeanRatio: number;
  /** The busiest `meanWindowS`-second window anywhere in the send, per second. */
  busiestWindowMean: number;
  maxSliding: number;
  maxAligned: number;
  meanRatio: number;
  maxRatio: number;
  perSecond: number[];
  /** Mails per 100 ms over the first two seconds (where a burst would show). */
  first2s: number[];
}

/** Busiest window of `widthMs` that starts at an accept (a window's count can only grow up to its next accept). */
export function maxSlidingWindow(times: number[], widthMs: number): number {
  let best = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while (j < times.length && times[j] < times[i] + widthMs) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

/**
 * `meanWindowS`: the target's mean is over that many seconds; the send must last longer than that
 * (more than `meanWindowS` × R messages), or a window holding every message could not show a rate
 * above R.
 */
export function analyse(times: number[], rate: number, meanWindowS: number): RateResult {
  const sorted = [...times].sort((a, b) => a - b);
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  const windowS = (last - first) / 1000;
  const mean = (sorted.length - 1) / windowS;
  const inFirstWindow = sorted.filter((t) => t < first + meanWindowS * 1000).length;
  const windowMean = inFirstWindow / meanWindowS;
  const busiestWindowMean = maxSlidingWindow(sorted, meanWindowS * 1000) / meanWindowS;
  const maxSliding = maxSlidingWindow(sorted, 1000);
  const perSecond: number[] = [];
  for (const t of sorted) {
    const s = Math.floor(t / 1000) - Math.floor(first / 1000);
    perSecond[s] = (perSecond[s] ?? 0) + 1;
  }
  const aligned = Array.from(perSecond, (x) => x ?? 0);
  const first2s = Array.from({ length: 20 }, () => 0);
  for (const t of sorted) {
    const b = Math.floor((t - first) / 100);
    if (b < 20) first2s[b] += 1;
  }
  return {
    rate,
    messages: sorted.length,
    windowS,
    mean,
    meanWindowS,
    windowMean,
    windowMeanRatio: windowMean / rate,
    busiestWindowMean,
    maxSliding,
    maxAligned: Math.max(...aligned),
    meanRatio: mean / rate,
    maxRatio: maxSliding / rate,
    perSecond: aligned,
    first2s,
  };
}

/** One digest at the limited rate; the sink's accept times of its messages are analysed. */
export async function rateDigest(opts: {
  dbUrl: string;
  apiUrl: string;
  sink: Sink;
  slug: string;
  recipients: number;
  rate: number;
  meanWindowS: number;
}): Promise<RateResult> {
  await addArticles(opts.dbUrl, opts.slug, `rate-${Date.now()}`);
  const mark = await sinkCount(opts.sink);
  const reached = sinkReached(
    opts.sink,
    mark + opts.recipients,
    Math.max(120_000, (opts.recipients / opts.rate) * 3000),
  );
  const id = await createDigest(opts.apiUrl, opts.slug);
  await reached;
  const outcome = await digestOutcome(opts.dbUrl, id, 60_000);
  if (outcome.sent !== opts.recipients) throw new Error(`rate digest ${id}: ${outcome.sent}/${opts.recipients} sent`);
  const times = await sinkTimes(opts.sink, mark);
  if (times.length !== opts.recipients) throw new Error(`rate digest: sink saw ${times.length}/${opts.recipients}`);
  return analyse(times, opts.rate, opts.meanWindowS);
}
