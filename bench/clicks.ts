/**
 * Tracked links. The clicks benchmark: GET /c/:token on the api (token check, the article's URL, the click
 * group-committed to `link_clicks`, 302) under autocannon, against a bare Fastify handler doing the
 * same token check and answering the same 302 with no database (bench/raw-click-server.ts).
 *
 * Every run is given an exact number of requests (autocannon's `amount`): it ends when the last
 * answer is in, none is left in flight, so the rows in `link_clicks` can be compared with the 302s
 * the app answered one for one. A run's length is set from the rates of the runs before it.
 *
 * The tracking benchmark: a digest's send rate with the newsletter's `tracking` on and off,
 * alternated on one worker and audience (those of benchmark 1).
 */
import autocannon from 'autocannon';
import pg from 'pg';
import { articlePart, clickKey, readerPart, verifyClickToken } from '#digests/click-tokens.js';
import { type DigestRun, type Sink, captureNext, timedDigest } from './digest.js';
import {
  ADMIN_KEY,
  APP_SECRET,
  type Child,
  addAudience,
  cpuSnapshot,
  cpuSpent,
  log,
  median,
  now,
  postgresSpent,
  query,
  SUMMARY,
} from './support.js';

/** A reader's browser (Safari on a Mac): no word of the scanner list, no prefetch header. */
export const BROWSER_UA =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';
const HEADERS = {
  'user-agent': BROWSER_UA,
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-US,en;q=0.9',
};

export interface ClickSetup {
  digestId: string;
  articleIds: string[];
  articleUrls: string[];
  readerIds: string[];
}

/**
 * On the api's database, set-based: a sent digest of `slug` with `articles` articles, `readers`
 * confirmed readers, and their deliveries finished an hour ago (so no click is `early`).
 */
export async function prepareClicks(
  dbUrl: string,
  opts: { slug: string; readers: number; articles: number },
): Promise<ClickSetup> {
  await addAudience(dbUrl, 'click', opts.readers, opts.slug);
  const [d] = await query<{ id: string; articles: string[]; urls: string[] }>(
    dbUrl,
    `WITH n AS (SELECT id FROM newsletters WHERE slug = $1),
     d AS (
       INSERT INTO digests (newsletter_id, status, trigger, send_at, subject, recipients, started_at, finished_at, tracking)
       SELECT n.id, 'sent', 'manual', now() - interval '65 minutes', 'Bench clicks', $2,
              now() - interval '65 minutes', now() - interval '60 minutes', true
       FROM n RETURNING id),
     a AS (
       INSERT INTO articles (url, title, summary, topics, published_at)
       SELECT 'https://www.spine-health.example/bench/clicks/' || g, 'Bench click article ' || g, $3,
              ARRAY['Upper Back Pain'], now() - g * interval '1 minute'
       FROM generate_series(1, $4::int) g RETURNING id, url),
     da AS (
       INSERT INTO digest_articles (digest_id, article_id, position)
       SELECT d.id, a.id, (row_number() OVER (ORDER BY a.id))::int FROM d, a)
     SELECT d.id::text AS id, array_agg(a.id::text ORDER BY a.id) AS articles, array_agg(a.url ORDER BY a.id) AS urls
     FROM d, a GROUP BY d.id`,
    [opts.slug, opts.readers, SUMMARY, opts.articles],
  );
  await query(
    dbUrl,
    `INSERT INTO deliveries (digest_id, subscriber_id, subscription_id, status, claimed_at, finished_at)
     SELECT $1, s.subscriber_id, s.id, 'sent', now() - interval '61 minutes', now() - interval '60 minutes'
     FROM subscriptions s JOIN subscribers r ON r.id = s.subscriber_id
     WHERE s.newsletter_id = (SELECT id FROM newsletters WHERE slug = $2) AND r.email LIKE 'click%'`,
    [d.id, opts.slug],
  );
  const readers = await query<{ id: string }>(
    dbUrl,
    'SELECT subscriber_id::text AS id FROM deliveries WHERE digest_id = $1 ORDER BY subscriber_id',
    [d.id],
  );
  await query(dbUrl, 'ANALYZE digests; ANALYZE articles; ANALYZE digest_articles; ANALYZE deliveries');
  return { digestId: d.id, articleIds: d.articles, articleUrls: d.urls, readerIds: readers.map((r) => r.id) };
}

/**
 * The paths of tracked links, minted as the worker mints them (the api's APP_SECRET). Request i
 * goes to reader i mod R, so one reader's next click comes R requests later; and reader r never
 * clicks article r mod A, so no reader ever clicks every link of the mail and no click is judged
 * a `burst`, whatever the rate: every click is recorded as human.
 */
export class ClickTokens {
  private i = 0;
  private readonly articleParts: string[];
  private readonly readerParts: string[];

  constructor(setup: ClickSetup, secret = APP_SECRET) {
    const key = clickKey(secret);
    this.articleParts = setup.articleIds.map((a) => articlePart(key, setup.digestId, a));
    this.readerParts = setup.readerIds.map((r) => readerPart(key, setup.digestId, r));
  }

  /** Different tokens in the rotation. */
  get distinct(): number {
    return this.readerParts.length * (this.articleParts.length - 1);
  }

  path(): string {
    const i = this.i++;
    const readers = this.readerParts.length;
    const articles = this.articleParts.length;
    const r = i % readers;
    const pass = Math.floor(i / readers) % (articles - 1);
    const k = (r + 1 + pass) % articles;
    return `/c/${this.articleParts[k]}.${this.readerParts[r]}`;
  }
}

export interface ClickLoad {
  requests: number;
  redirects: number;
  /** Answers other than 302, errors and timeouts. */
  failures: number;
  /**
   * Redirects per second: from the first request to the last answer, and for the app on to the
   * commit of its last click (clicks are written behind the answers).
   */
  reqPerS: number;
  /** The app's clicks still being written after its last answer (0 for the raw server). */
  drainSeconds: number;
  p50: number;
  p99: number;
  seconds: number;
  /** CPU µs per request: the server process, PostgreSQL (the database's backends) and this process (autocannon). */
  cpu: { server: number; postgres: number; bench: number };
}

async function cannon(
  baseUrl: string,
  tokens: ClickTokens,
  opts: { amount: number; connections: number; rate?: number; pid: number; database?: string },
): Promise<ClickLoad> {
  const cpu0 = cpuSnapshot([opts.pid], opts.database ?? '');
  const self0 = process.cpuUsage();
  const t0 = now();
  let last = t0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: baseUrl,
        connections: opts.connections,
        amount: opts.amount,
        ...(opts.rate ? { overallRate: opts.rate } : {}),
        requests: [{ method: 'GET', headers: HEADERS, setupRequest: (req) => ({ ...req, path: tokens.path() }) }],
      },
      (err, res) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res)),
    );
    instance.on('response', () => {
      last = now();
    });
  });
  const cpu1 = cpuSnapshot([opts.pid], opts.database ?? '');
  const self = process.cpuUsage(self0);
  const seconds = (last - t0) / 1000;
  const redirects = result['3xx'];
  const requests = redirects + result['1xx'] + result['2xx'] + result['4xx'] + result['5xx'];
  const per = Math.max(1, requests);
  return {
    requests,
    redirects,
    failures: requests - redirects + result.errors + result.timeouts,
    reqPerS: redirects / seconds,
    drainSeconds: 0,
    p50: result.latency.p50,
    p99: result.latency.p99,
    seconds,
    cpu: {
      server: (cpuSpent(cpu0, cpu1, opts.pid) * 1000) / per,
      postgres: opts.database ? (postgresSpent(cpu0, cpu1) * 1000) / per : 0,
      bench: (self.user + self.system) / per,
    },
  };
}

export interface ClicksResult {
  app: ClickLoad[];
  raw: ClickLoad[];
  ratios: number[];
  ratio: number;
  appReqPerS: number;
  rawReqPerS: number;
  fixedRate: number;
  appAtRate: ClickLoad;
  rawAtRate: ClickLoad;
  /** Served at the fixed rate: redirects / max(the offered seconds, the run's length). */
  appServedAtRate: number;
  rawServedAtRate: number;
  connections: number;
  tokens: number;
  /** 302s the app answered over every run, warm-up included, and the rows in link_clicks afterwards. */
  appRedirects: number;
  recorded: number;
  verdicts: { verdict: string; reason: string | null; n: number }[];
  /** Clicks per INSERT (rows sharing an xmin): the group commit at work. */
  statements: number;
}

/** Checks one link on a server: the token's 302 and its Location, and 404 for a tampered token. */
async function probeLink(baseUrl: string, path: string, location: string | null): Promise<void> {
  const ok = await fetch(`${baseUrl}${path}`, { redirect: 'manual', headers: HEADERS });
  await ok.arrayBuffer();
  const at = ok.headers.get('location');
  if (ok.status !== 302 || (location !== null && at !== location))
    throw new Error(`${baseUrl}${path} answered ${ok.status} to ${at}, expected 302 to ${location ?? 'anything'}`);
  const bad = await fetch(`${baseUrl}${path.slice(0, -1)}${path.endsWith('A') ? 'B' : 'A'}`, {
    redirect: 'manual',
    headers: HEADERS,
  });
  await bad.arrayBuffer();
  if (bad.status !== 404) throw new Error(`a tampered token answered ${bad.status} on ${baseUrl}`);
}

export async function benchClicks(opts: {
  appUrl: string;
  rawUrl: string;
  appPid: number;
  rawPid: number;
  dbUrl: string;
  setup: ClickSetup;
  reps: number;
  seconds: number;
  rateSeconds: number;
  connections: number;
  fixedRate: number;
}): Promise<ClicksResult> {
  const database = new URL(opts.dbUrl).pathname.slice(1);
  const appTokens = new ClickTokens(opts.setup);
  const rawTokens = new ClickTokens(opts.setup);
  // The first token goes to reader 0, article 1: the app must send it to that article's URL.
  await probeLink(opts.appUrl, appTokens.path(), opts.setup.articleUrls[1]);
  await probeLink(opts.rawUrl, rawTokens.path(), null);
  let appRedirects = 1;
  const counter = new pg.Client({ connectionString: opts.dbUrl });
  await counter.connect();
  const app: ClickLoad[] = [];
  const raw: ClickLoad[] = [];
  const ratios: number[] = [];
  const run = async (which: 'app' | 'raw', amount: number, rate?: number): Promise<ClickLoad> => {
    const r =
      which === 'app'
        ? await cannon(opts.appUrl, appTokens, {
            amount,
            connections: opts.connections,
            rate,
            pid: opts.appPid,
            database,
          })
        : await cannon(opts.rawUrl, rawTokens, { amount, connections: opts.connections, rate, pid: opts.rawPid });
    if (which === 'app') {
      appRedirects += r.redirects;
      // Every click answered is in link_clicks before the run counts as done.
      const t0 = performance.now();
      for (;;) {
        const { rows } = await counter.query<{ n: number }>(`SELECT count(*)::int AS n FROM link_clicks`);
        if (rows[0].n >= appRedirects) break;
        if (performance.now() - t0 > 30_000)
          throw new Error(`clicks: ${rows[0].n} of ${appRedirects} clicks written 30 s after the last answer`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      r.drainSeconds = (performance.now() - t0) / 1000;
      r.seconds += r.drainSeconds;
      r.reqPerS = r.redirects / r.seconds;
    }
    if (r.failures > 0) throw new Error(`clicks: ${which} got ${r.failures} answer(s) other than 302 or errors`);
    return r;
  };
  // Warm-up (JIT, the app's URL cache and pool, prepared plans), about a second each. A run's
  // length is set from the median rate of the runs of its side so far (warm-up included).
  const appRates = [(await run('app', 3000)).reqPerS];
  const rawRates = [(await run('raw', 6000)).reqPerS];
  log(`  warm-up: app ${appRates[0].toFixed(0)} req/s, raw ${rawRates[0].toFixed(0)} req/s`);
  const sized = (rates: number[]) => Math.max(opts.connections * 100, Math.round(median(rates) * opts.seconds));
  for (let rep = 1; rep <= opts.reps; rep++) {
    const a = await run('app', sized(appRates));
    const r = await run('raw', sized(rawRates));
    appRates.push(a.reqPerS);
    rawRates.push(r.reqPerS);
    app.push(a);
    raw.push(r);
    ratios.push(a.reqPerS / r.reqPerS);
    log(
      `  rep ${rep}: app ${a.reqPerS.toFixed(0)} req/s (${a.redirects} in ${a.seconds.toFixed(2)} s of which ${a.drainSeconds.toFixed(2)} s writing after the last answer, p50 ${a.p50} ms, p99 ${a.p99} ms), ` +
        `raw ${r.reqPerS.toFixed(0)} req/s (${r.redirects} in ${r.seconds.toFixed(2)} s, p99 ${r.p99} ms) → ratio ${(a.reqPerS / r.reqPerS).toFixed(3)}; ` +
        `CPU µs/request: api ${a.cpu.server.toFixed(0)}, PostgreSQL ${a.cpu.postgres.toFixed(0)}, autocannon ${a.cpu.bench.toFixed(0)} | ` +
        `raw server ${r.cpu.server.toFixed(0)}, autocannon ${r.cpu.bench.toFixed(0)}`,
    );
  }
  const atRate = opts.fixedRate * opts.rateSeconds;
  const appAtRate = await run('app', atRate, opts.fixedRate);
  const rawAtRate = await run('raw', atRate, opts.fixedRate);
  const served = (l: ClickLoad) => l.redirects / Math.max(opts.rateSeconds, l.seconds);
  log(
    `  at ${opts.fixedRate} req/s for ${opts.rateSeconds} s: app p50 ${appAtRate.p50} ms p99 ${appAtRate.p99} ms ` +
      `(${served(appAtRate).toFixed(0)} req/s served, ${appAtRate.redirects} in ${appAtRate.seconds.toFixed(2)} s); ` +
      `raw p50 ${rawAtRate.p50} ms p99 ${rawAtRate.p99} ms (${served(rawAtRate).toFixed(0)} req/s served)`,
  );
  await counter.end();
  // Every app run ended once each click it answered was committed.
  const [stored] = await query<{ recorded: number; statements: number }>(
    opts.dbUrl,
    `SELECT count(*)::int AS recorded, count(DISTINCT xmin::text)::int AS statements FROM link_clicks`,
  );
  const verdicts = await query<{ verdict: string; reason: string | null; n: number }>(
    opts.dbUrl,
    `SELECT verdict, reason, count(*)::int AS n FROM link_clicks GROUP BY 1, 2 ORDER BY 3 DESC`,
  );
  log(
    `  link_clicks: ${stored.recorded} rows for ${appRedirects} 302s the app answered (${verdicts.map((v) => `${v.reason ?? v.verdict} ${v.n}`).join(', ')}); ` +
      `${(stored.recorded / Math.max(1, stored.statements)).toFixed(1)} clicks per INSERT (${stored.statements} statements)`,
  );
  return {
    app,
    raw,
    ratios,
    ratio: median(ratios),
    appReqPerS: median(app.map((a) => a.reqPerS)),
    rawReqPerS: median(raw.map((r) => r.reqPerS)),
    fixedRate: opts.fixedRate,
    appAtRate,
    rawAtRate,
    appServedAtRate: served(appAtRate),
    rawServedAtRate: served(rawAtRate),
    connections: opts.connections,
    tokens: appTokens.distinct,
    appRedirects,
    recorded: stored.recorded,
    verdicts,
    statements: stored.statements,
  };
}

// ---------------------------------------------------------------- tracking on vs off

/** Decodes quoted-printable soft breaks and escapes (the digest's parts are quoted-printable). */
function unQp(raw: Buffer): string {
  return raw
    .toString('latin1')
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** Tracked links in a message: all of them, and those whose token verifies and names `digestId`. */
export function trackedLinks(raw: Buffer, digestId: string): { links: number; valid: number; distinct: number } {
  const key = clickKey(APP_SECRET);
  const found = [...unQp(raw).matchAll(/\/c\/([0-9]+\.[0-9]+\.[A-Za-z0-9_-]{16}\.[0-9]+\.[A-Za-z0-9_-]{16})/g)].map(
    (m) => m[1],
  );
  const valid = found.filter((t) => verifyClickToken(key, t)?.digestId === digestId);
  return { links: found.length, valid: valid.length, distinct: new Set(valid).size };
}

export interface TrackingRun extends DigestRun {
  /** `digests.tracking` of the rep's digest, as the planner stored it. */
  stored: boolean;
  /** Tracked links in the rep's first message (see trackedLinks). */
  links: { links: number; valid: number; distinct: number };
  /** Size of that message. */
  bytes: number;
}

export interface TrackingResult {
  warmUp: TrackingRun[];
  /** `reps + 1` tracked digests: off[i] ran between on[i] and on[i + 1]. */
  on: TrackingRun[];
  off: TrackingRun[];
  ratios: number[];
  ratio: number;
  onMailsPerS: number;
  offMailsPerS: number;
}

async function setTracking(apiUrl: string, slug: string, on: boolean): Promise<void> {
  const res = await fetch(`${apiUrl}/v1/newsletters/${slug}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tracking: on }),
  });
  const body = (await res.json()) as { tracking?: boolean };
  if (res.status !== 200 || body.tracking !== on)
    throw new Error(`PATCH tracking=${on} answered ${res.status}: ${JSON.stringify(body)}`);
}

/**
 * Digests of `n` readers with the newsletter's tracking on and off, alternated (on, off, on, off,
 * …, on: `reps` untracked digests, each between two tracked ones) on one worker, after a pair not
 * counted. A rep's ratio is the mean rate of the tracked digests on either side of its untracked
 * one ÷ that one's: a drift (the worker still warming up, the machine's load) cancels out instead
 * of counting against whichever side comes first. Each digest is checked: `digests.tracking` as
 * asked, and its first message carries verified /c/ links (on) or none (off). Tracking is left on.
 */
export async function benchTracking(opts: {
  dbUrl: string;
  apiUrl: string;
  sink: Sink;
  worker: Child;
  slug: string;
  n: number;
  reps: number;
}): Promise<TrackingResult> {
  const timeoutMs = Math.max(120_000, opts.n * 20);
  const rep = async (on: boolean): Promise<TrackingRun> => {
    await setTracking(opts.apiUrl, opts.slug, on);
    const captured = captureNext(opts.sink);
    const d = await timedDigest({
      dbUrl: opts.dbUrl,
      apiUrl: opts.apiUrl,
      sink: opts.sink,
      slug: opts.slug,
      recipients: opts.n,
      worker: opts.worker,
      timeoutMs,
    });
    const first = await captured;
    const links = trackedLinks(first, d.id);
    const [row] = await query<{ tracking: boolean }>(opts.dbUrl, 'SELECT tracking FROM digests WHERE id = $1', [d.id]);
    if (row.tracking !== on || (on ? links.valid === 0 || links.valid !== links.links : links.links !== 0))
      throw new Error(
        `tracking ${on ? 'on' : 'off'}: digest ${d.id} stored tracking=${row.tracking}, its first message had ${links.links} /c/ link(s), ${links.valid} valid`,
      );
    return { ...d, stored: row.tracking, links, bytes: first.length };
  };
  try {
    const warmUp = [await rep(true), await rep(false)];
    log(
      `  warm-up pair (not counted): on ${warmUp[0].mailsPerS.toFixed(0)}/s, off ${warmUp[1].mailsPerS.toFixed(0)}/s`,
    );
    const on: TrackingRun[] = [await rep(true)];
    const off: TrackingRun[] = [];
    const ratios: number[] = [];
    for (let i = 1; i <= opts.reps; i++) {
      const b = await rep(false);
      const a = await rep(true);
      const before = on[on.length - 1];
      off.push(b);
      on.push(a);
      const ratio = (before.mailsPerS + a.mailsPerS) / 2 / b.mailsPerS;
      ratios.push(ratio);
      log(
        `  rep ${i}: on ${before.mailsPerS.toFixed(0)}/s, off ${b.mailsPerS.toFixed(0)}/s (${(b.ms / 1000).toFixed(2)} s, ${b.links.links} /c/ links, ${b.bytes} B), ` +
          `on ${a.mailsPerS.toFixed(0)}/s (${(a.ms / 1000).toFixed(2)} s, ${a.links.valid} verified /c/ links in its first message, ${a.bytes} B) → ratio ${ratio.toFixed(3)}; ` +
          `worker CPU µs/message off ${b.cpu.worker?.toFixed(0) ?? '-'} / on ${a.cpu.worker?.toFixed(0) ?? '-'}`,
      );
    }
    return {
      warmUp,
      on,
      off,
      ratios,
      ratio: median(ratios),
      onMailsPerS: median(on.map((r) => r.mailsPerS)),
      offMailsPerS: median(off.map((r) => r.mailsPerS)),
    };
  } finally {
    await setTracking(opts.apiUrl, opts.slug, true);
  }
}
