/**
 * `npm run bench [-- --quick | --n N] [--reps R]
 *  [--only digest,variants,tracking,memory,digest-pg,rate,render,subscribe,import,clicks,dkim] [--rate R] [--keep-logs]`
 *
 * Runs Mailroom's benchmarks side by side on this machine, against PostgreSQL and Redis on
 * localhost (databases bench_*, Redis keys bench-<run>*, all removed at the end), with the api,
 * the workers, a discard SMTP sink and the baselines each in its own process. Prints progress on
 * stderr, then a summary whose last lines are `name value target` triples, and refreshes this
 * run's block in BENCHMARKS.md.
 */
import 'reflect-metadata';
import { Queue } from 'bullmq';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ROOT_DIR } from '#core/paths.js';
import { dataSourceOptions } from '#db/data-source.js';
import { seed } from '#db/seed.js';
import {
  type Bench1Result,
  type DigestRun,
  type MemoryRun,
  Redis,
  RedisMemory,
  type Sink,
  bench1,
  captureNext,
  memoryRun,
  timedDigest,
} from './digest.js';
import { type RateResult, rateDigest } from './rate.js';
import { benchDkimMicro, benchDkimRate, type DkimMicroResult, type DkimRateResult, prepareDkimRate } from './dkim.js';
import { addVariantAudience, benchVariants } from './variants.js';
import { type RenderResult, bench3 } from './render.js';
import { type Triple, formatValue, machine, meets, writeReport } from './report.js';
import { type Bench4Result, type Bench5Result, bench4, bench5 } from './subscribe.js';
import { type ClicksResult, type TrackingResult, benchClicks, benchTracking, prepareClicks } from './clicks.js';
import {
  APP_SECRET,
  type Child,
  REDIS_URL,
  RUN_ID,
  addAudience,
  appEnv,
  createDatabase,
  dropDatabases,
  log,
  now,
  query,
  sleep,
  startChild,
  stopAllChildren,
  waitForHttp,
} from './support.js';

const ALL = [
  'memory',
  'digest',
  'variants',
  'tracking',
  'render',
  'subscribe',
  'import',
  'clicks',
  'rate',
  'digest-pg',
  'dkim',
] as const;
type BenchName = (typeof ALL)[number];

interface Args {
  quick: boolean;
  n: number;
  reps: number;
  only: Set<BenchName>;
  rate: number;
  keepLogs: boolean;
  profile: boolean;
  importRows: number;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    if (i >= 0) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(`${flag}=`));
    return eq?.slice(flag.length + 1);
  };
  const num = (flag: string, def: number): number => {
    const raw = get(flag);
    if (raw === undefined) return def;
    const v = Number(raw.replace(/_/g, ''));
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} must be a positive whole number, got "${raw}"`);
    return v;
  };
  const quick = argv.includes('--quick');
  const n = num('--n', quick ? 2000 : 10_000);
  const onlyRaw = get('--only');
  const only = new Set<BenchName>(
    onlyRaw
      ? onlyRaw.split(',').map((s) => {
          if (!(ALL as readonly string[]).includes(s))
            throw new Error(`--only: unknown benchmark "${s}" (${ALL.join(', ')})`);
          return s as BenchName;
        })
      : // digest-pg doubles the digest part: left out of --quick (two-minute budget) unless asked for.
        ALL.filter((b) => !(quick && b === 'digest-pg')),
  );
  return {
    quick,
    n,
    reps: num('--reps', 3),
    only,
    rate: num('--rate', quick ? 100 : 200),
    keepLogs: argv.includes('--keep-logs') || argv.includes('--profile'),
    profile: argv.includes('--profile'),
    // --quick: 10 000 rows, as the default run; a 2 000-row file mostly measures the request's fixed cost.
    importRows: num('--import-rows', quick ? 10_000 : n),
  };
}

const args = parseArgs(process.argv.slice(2));
const logDir = mkdtempSync(join(tmpdir(), `mailroom-bench-${RUN_ID}-`));
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
const prefixBase = `bench-${RUN_ID}`;
const triples: Triple[] = [];
const details: string[] = [];
const notDone: string[] = [];
let failed = false;

async function cleanRedis(): Promise<number> {
  let removed = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefixBase}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) removed += await redis.unlink(...keys);
  } while (cursor !== '0');
  return removed;
}

let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await stopAllChildren().catch((err: unknown) => log(`stopping children: ${String(err)}`));
  await cleanRedis()
    .then((n) => log(`removed ${n} Redis key(s) under ${prefixBase}*`))
    .catch((err: unknown) => log(`Redis clean-up: ${String(err)}`));
  redis.disconnect();
  await dropDatabases();
  if (!args.keepLogs && !failed) rmSync(logDir, { recursive: true, force: true });
  else log(`child logs kept in ${logDir}`);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    failed = true;
    void cleanup().finally(() => process.exit(130));
  });
}

async function seeded(url: string): Promise<void> {
  const ds = new DataSource(dataSourceOptions(url));
  await ds.initialize();
  try {
    await seed(ds);
  } finally {
    await ds.destroy();
  }
}

async function startSink(): Promise<Sink> {
  const child = startChild('sink', 'bench/sink.js', {}, { logDir });
  const { port } = await child.next<{ port: number }>('ready', undefined, 30_000);
  return { child, port, url: `smtp://127.0.0.1:${port}` };
}

function startWorker(
  name: string,
  dbUrl: string,
  sink: Sink,
  opts: { redis: boolean; prefix: string; extra?: Record<string, string> },
): Child {
  return startChild(
    name,
    'apps/worker/src/main.js',
    appEnv({
      dbUrl,
      smtpUrl: sink.url,
      redis: opts.redis,
      prefix: opts.prefix,
      extra: { LOG_LEVEL: 'info', ...opts.extra },
    }),
    { probe: true, logDir, nodeArgs: [...WORKER_NODE_ARGS, ...profileArgs(name)] },
  );
}

/** Variants in local time send waves up to 18 hours late (see bench/variants.ts): within the grace. */
const GRACE = { DIGEST_GRACE_MINUTES: '1440' };

/** The worker runs with the heap flags `npm run start:worker` and docker-compose.yml give it. */
const WORKER_NODE_ARGS = [`--max-old-space-size=${process.env.WORKER_HEAP_MB ?? '128'}`, '--max-semi-space-size=4'];

/** With --profile, app children write a V8 CPU profile into the log folder when they stop. */
function profileArgs(name: string): string[] {
  return args.profile ? ['--cpu-prof', `--cpu-prof-dir=${logDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
}

async function startApi(
  name: string,
  dbUrl: string,
  smtpUrl: string,
  prefix: string,
  extra: Record<string, string> = {},
): Promise<{ child: Child; url: string }> {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = startChild(
    name,
    'apps/api/src/main.js',
    appEnv({ dbUrl, smtpUrl, redis: true, prefix, extra: { PORT: String(port), ...extra } }),
    { probe: true, logDir, nodeArgs: profileArgs(name) },
  );
  const url = `http://127.0.0.1:${port}`;
  await Promise.race([
    waitForHttp(`${url}/health`, 90_000),
    new Promise((_, reject) =>
      child.proc.once('exit', (c) => reject(new Error(`${name} exited (${c}); see ${logDir}/${name}.log`))),
    ),
  ]);
  return { child, url };
}

/** Waits until `count` BullMQ workers listen on the digest queue under `prefix` (Redis backend). */
async function waitForWorkers(prefix: string, count: number, timeoutMs = 90_000): Promise<void> {
  // BullMQ leaves a connection it was handed open: it is closed here, or the bench would never exit.
  const connection = redis.duplicate();
  const q = new Queue('digest', { connection, prefix });
  try {
    const deadline = Date.now() + timeoutMs;
    while ((await q.getWorkersCount()) < count) {
      if (Date.now() > deadline) throw new Error(`${count} digest worker(s) did not start in ${timeoutMs} ms`);
      await sleep(200);
    }
  } finally {
    await q.close();
    connection.disconnect();
  }
  await sleep(300);
}

const mb = (kb: number) => kb / 1024;

function section(title: string, lines: string[]): void {
  details.push(`#### ${title}`, '', ...lines, '');
}

async function main(): Promise<void> {
  const t0 = now();
  const want = (b: BenchName) => args.only.has(b);
  log(`run ${RUN_ID}: N=${args.n}, reps=${args.reps}, benchmarks: ${[...args.only].join(', ')}; logs in ${logDir}`);
  await redis.connect();
  // The smaller audience of benchmark 2: big enough for the worker to reach its steady state.
  const smallN = args.quick ? 500 : Math.max(1000, Math.round(args.n / 10));
  // The target is a 60 s mean (quick: 5 s): each digest sends for longer than that (65 s, quick 7 s),
  // so that its first 60 s could hold more than 60 × R messages if the rate were not kept.
  const rateWindowS = args.quick ? 5 : 60;
  const rateRecipients = args.rate * (rateWindowS + (args.quick ? 2 : 5));
  const needDigestDb =
    want('memory') ||
    want('digest') ||
    want('variants') ||
    want('tracking') ||
    want('digest-pg') ||
    want('rate') ||
    want('dkim');
  // The DKIM benchmark's two audiences (a From domain with a DKIM key, one without).
  const dkimN = args.quick ? 2000 : Math.min(args.n, 10_000);
  const needApiDb = want('subscribe') || want('import');
  // The clicks benchmark's api has a database of its own (its readers would count in benchmark 4's figures).
  const clickReaders = 20_000;
  const clickArticles = 6;

  // ------------------------------------------------------------ set-up
  const [digestDb, apiDb, clicksDb] = await Promise.all([
    needDigestDb ? createDatabase('digest') : Promise.resolve(''),
    needApiDb ? createDatabase('api') : Promise.resolve(''),
    want('clicks') ? createDatabase('clicks') : Promise.resolve(''),
  ]);
  if (digestDb) {
    await seeded(digestDb);
    // Every digest then carries exactly the six articles the bench adds before it (same message size).
    await query(digestDb, 'DELETE FROM article_newsletters; DELETE FROM articles');
    await addAudience(digestDb, 'big', args.n, 'spine-health');
    await addAudience(digestDb, 'small', smallN, 'arthritis-health');
    await addAudience(digestDb, 'rate', rateRecipients, 'sports-health');
    if (want('variants')) await addVariantAudience(digestDb, args.n);
    if (want('dkim')) await prepareDkimRate(digestDb, (slug) => addAudience(digestDb, slug, dkimN, slug));
  }
  if (apiDb) await seeded(apiDb);
  const clickSetup = clicksDb
    ? await seeded(clicksDb).then(() =>
        prepareClicks(clicksDb, { slug: 'spine-health', readers: clickReaders, articles: clickArticles }),
      )
    : undefined;
  log(`databases ready (${((now() - t0) / 1000).toFixed(1)} s)`);

  let sink: Sink | undefined;
  let digestApi: { child: Child; url: string } | undefined;
  if (needDigestDb) {
    sink = await startSink();
    digestApi = await startApi('api-digest', digestDb, sink.url, `${prefixBase}-api`);
    log(`sink on :${sink.port}, api on ${digestApi.url}`);
  }

  // ------------------------------------------------------------ 2. memory (fresh workers), also the warm-up of 1
  let warm: Child | undefined;
  let raw: Buffer | undefined;
  const redisPrefix = `${prefixBase}-redis`;
  if (sink && digestApi && (want('memory') || want('digest') || want('tracking'))) {
    const redisMem = new RedisMemory(redis);
    const runs: MemoryRun[] = [];
    if (want('memory')) {
      log(`2. memory: small digest (${smallN}) on a fresh worker`);
      const w = startWorker('worker-small', digestDb, sink, { redis: true, prefix: redisPrefix });
      runs.push(
        await memoryRun({
          dbUrl: digestDb,
          apiUrl: digestApi.url,
          sink,
          worker: w,
          slug: 'arthritis-health',
          recipients: smallN,
          redisMem,
        }),
      );
      await w.stop();
    }
    log(`2. memory: large digest (${args.n}) on a fresh worker (its first message is captured for the raw blast)`);
    warm = startWorker('worker-redis', digestDb, sink, { redis: true, prefix: redisPrefix, extra: GRACE });
    const captured = captureNext(sink);
    const big = await memoryRun({
      dbUrl: digestDb,
      apiUrl: digestApi.url,
      sink,
      worker: warm,
      slug: 'spine-health',
      recipients: args.n,
      redisMem,
    });
    raw = await captured;
    if (want('memory')) {
      runs.push(big);
      const [s, l] = runs;
      const rssRatio = l.workerHwmKb / s.workerHwmKb;
      const redisRatio = l.redisPeak / s.redisPeak;
      const redisDeltaS = Math.max(1, s.redisPeak - s.redisBaseline);
      const redisDeltaL = Math.max(1, l.redisPeak - l.redisBaseline);
      for (const r of runs)
        log(
          `  N=${r.recipients}: worker VmHWM ${mb(r.workerHwmKb).toFixed(1)} MB (RSS after ${mb(r.workerRssAfterKb).toFixed(1)} MB), ` +
            `live heap after GC ${r.liveHeapMb.toFixed(1)} MB, ` +
            `peak RSS per quarter of the run ${r.rssByQuarterKb.map((k) => mb(k).toFixed(0)).join('/')} MB, ` +
            `Redis used_memory peak ${(r.redisPeak / 1e6).toFixed(2)} MB (baseline ${(r.redisBaseline / 1e6).toFixed(2)} MB)`,
        );
      triples.push({ name: 'worker_peak_rss_ratio', value: rssRatio, target: '<=1.2' });
      triples.push({ name: 'redis_used_memory_ratio', value: redisRatio, target: '<=1.2' });
      triples.push({ name: 'redis_used_memory_growth_ratio', value: redisDeltaL / redisDeltaS, target: '-' });
      triples.push({ name: 'worker_live_heap_ratio', value: l.liveHeapMb / s.liveHeapMb, target: '-' });
      section(`2. Memory: ${s.recipients} vs ${l.recipients} recipients, each on a fresh worker (Redis backend)`, [
        '| recipients | worker VmHWM | worker peak RSS by quarter of the run | worker RSS after | live heap after GC | Redis used_memory peak | Redis baseline | Redis growth during run | digest time |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        ...runs.map(
          (r) =>
            `| ${r.recipients} | ${mb(r.workerHwmKb).toFixed(1)} MB | ${r.rssByQuarterKb.map((k) => mb(k).toFixed(0)).join(' / ')} MB | ${mb(r.workerRssAfterKb).toFixed(1)} MB | ${r.liveHeapMb.toFixed(1)} MB | ${(r.redisPeak / 1e6).toFixed(2)} MB | ${(r.redisBaseline / 1e6).toFixed(2)} MB | ${((r.redisPeak - r.redisBaseline) / 1e3).toFixed(0)} kB | ${(r.ms / 1000).toFixed(2)} s |`,
        ),
      ]);
    }
  }

  // ------------------------------------------------------------ 1. digest vs raw limit
  const results1: Bench1Result[] = [];
  if (sink && digestApi && warm && raw && want('digest')) {
    log(
      `1. digest (${args.n}) vs raw blast, Redis backend, ${args.reps} interleaved reps; message ${raw.length} bytes`,
    );
    results1.push(
      await bench1({
        backend: 'redis',
        dbUrl: digestDb,
        apiUrl: digestApi.url,
        sink,
        worker: warm,
        raw,
        n: args.n,
        reps: args.reps,
        // Information only, not a target: fewer messages in --quick (two-minute budget).
        defaultCount: Math.min(args.n, args.quick ? 500 : 1000),
        nagleCount: Math.min(args.n, args.quick ? 100 : 250),
        connections: 5,
      }),
    );
  }

  // ------------------------------------------------------------ 1c. topic variants: 64 vs one
  if (sink && digestApi && want('variants')) {
    log(`1c. topic variants: a digest of 64 variants vs one, ${args.n} readers, ${args.reps} alternated reps`);
    const w =
      warm ?? startWorker('worker-variants', digestDb, sink, { redis: true, prefix: redisPrefix, extra: GRACE });
    const v = await benchVariants({
      dbUrl: digestDb,
      apiUrl: digestApi.url,
      sink,
      worker: w,
      n: args.n,
      reps: args.reps,
    });
    if (!warm) await w.stop();
    const calls = v.many.map((d) => d.mjmlCalls).filter((c): c is number => c !== null);
    triples.push({ name: 'variants64_vs_one', value: v.ratio, target: '>=0.9' });
    if (calls.length) triples.push({ name: 'mjml_calls_64_variants', value: Math.max(...calls), target: '=64' });
    section(`1c. Topic variants — Redis queue backend, ${args.n} readers, six articles, 64 variants vs one`, [
      "Readers follow the 63 sets of six topics (and none): `personalize: order` needs 64 variants, `off` one. Same audience, same articles' size, alternated on one worker.",
      '',
      '| rep | 64 variants | mjml2html calls | first message after | one variant | mjml2html calls | ratio |',
      '|---:|---:|---:|---:|---:|---:|---:|',
      ...v.many.map(
        (m, i) =>
          `| ${i + 1} | ${m.mailsPerS.toFixed(0)} mails/s | ${m.mjmlCalls ?? 'n/a'} | ${m.firstMs.toFixed(0)} ms | ${v.one[i].mailsPerS.toFixed(0)} mails/s | ${v.one[i].mjmlCalls ?? 'n/a'} | ${(m.mailsPerS / v.one[i].mailsPerS).toFixed(3)} |`,
      ),
      `| median | | | | | | ${v.ratio.toFixed(3)} |`,
    ]);
  }

  // ------------------------------------------------------------ 1d. tracked links on vs off
  if (sink && digestApi && warm && want('tracking')) {
    log(`1d. tracking on vs off: ${args.n} readers, the worker of 1, ${args.reps} reps alternated (on, off, …, on)`);
    const t: TrackingResult = await benchTracking({
      dbUrl: digestDb,
      apiUrl: digestApi.url,
      sink,
      worker: warm,
      slug: 'spine-health',
      n: args.n,
      reps: args.reps,
    });
    triples.push({ name: 'digest_tracking_on_vs_off', value: t.ratio, target: '>=0.95' });
    triples.push({ name: 'digest_tracking_on_mails_per_s', value: t.onMailsPerS, target: '-' });
    triples.push({ name: 'digest_tracking_off_mails_per_s', value: t.offMailsPerS, target: '-' });
    const cpu = (r: { cpu: { worker: number | null } }) => r.cpu.worker?.toFixed(0) ?? '–';
    section(
      `1d. Tracked links on vs off — Redis queue backend, ${args.n} readers, six articles, the worker and audience of 1`,
      [
        "The newsletter's `tracking` is switched (`PATCH /v1/newsletters/spine-health`) before each digest, alternated: on, off, on, off, …, on, after a pair not counted; each untracked digest sits between two tracked ones and its rep's ratio is their mean rate ÷ its rate (a drift, such as the worker still warming up, cancels out). With tracking on, each article link is `/c/<digest>.<article>.<mac>.<reader>.<mac>`: one HMAC per recipient (the reader's half) on top of the issue's.",
        '',
        '| rep | tracking on, before | tracking off | tracking on, after | on (mean) / off | worker CPU µs/message: on before / off / on after | `digests.tracking` on / off | /c/ links in the first message: on after (verified, distinct) / off |',
        '|---:|---:|---:|---:|---:|---:|:-:|---:|',
        ...t.off.map((b, i) => {
          const [a, c] = [t.on[i], t.on[i + 1]];
          return `| ${i + 1} | ${a.mailsPerS.toFixed(0)} mails/s (${(a.ms / 1000).toFixed(2)} s) | ${b.mailsPerS.toFixed(0)} mails/s (${(b.ms / 1000).toFixed(2)} s) | ${c.mailsPerS.toFixed(0)} mails/s (${(c.ms / 1000).toFixed(2)} s) | ${t.ratios[i].toFixed(3)} | ${cpu(a)} / ${cpu(b)} / ${cpu(c)} | ${c.stored} / ${b.stored} | ${c.links.links} (${c.links.valid}, ${c.links.distinct}) / ${b.links.links} |`;
        }),
        `| median | ${t.onMailsPerS.toFixed(0)} (all ${t.on.length} tracked) | ${t.offMailsPerS.toFixed(0)} | | ${t.ratio.toFixed(3)} | | | |`,
        '',
        `Every tracked rep's digest was stored with \`tracking\` = true and its first message (captured at the sink) carried tracked links whose tokens verify with the api's key and name that digest; every untracked rep's digest had \`tracking\` = false and no /c/ link. Message size: ${t.on[0]?.bytes ?? '–'} B tracked, ${t.off[0]?.bytes ?? '–'} B untracked. Warm-up pair (not counted): on ${t.warmUp[0].mailsPerS.toFixed(0)}, off ${t.warmUp[1].mailsPerS.toFixed(0)} mails/s.`,
      ],
    );
  }
  // ------------------------------------------------------------ DKIM signing cost
  if (sink && digestApi && want('dkim')) {
    log(`DKIM: fast-path build unsigned vs signed (in-process), then ${dkimN} readers signed vs unsigned`);
    const micro: DkimMicroResult = await benchDkimMicro({ reps: 5, recipients: args.quick ? 1000 : 3000 });
    const w = warm ?? startWorker('worker-dkim', digestDb, sink, { redis: true, prefix: redisPrefix, extra: GRACE });
    const rate: DkimRateResult = await benchDkimRate({
      dbUrl: digestDb,
      apiUrl: digestApi.url,
      sink,
      worker: w,
      recipients: dkimN,
      reps: args.reps,
    });
    if (!warm) await w.stop();
    const cost = micro.signedUs - micro.unsignedUs;
    log(
      `  build ${micro.unsignedUs.toFixed(1)} µs unsigned, ${micro.signedUs.toFixed(1)} µs signed (+${cost.toFixed(1)} µs; RSA alone ${micro.rsaUs.toFixed(1)} µs); ` +
        `digest ${rate.unsignedMailsPerS.toFixed(0)} mails/s unsigned, ${rate.signedMailsPerS.toFixed(0)} signed (${rate.ratio.toFixed(3)})`,
    );
    triples.push({ name: 'dkim_sign_us_per_message', value: cost, target: '-' });
    triples.push({ name: 'dkim_digest_signed_vs_unsigned', value: rate.ratio, target: '-' });
    triples.push({ name: 'dkim_digest_signed_mails_per_s', value: rate.signedMailsPerS, target: '-' });
    triples.push({ name: 'dkim_digest_unsigned_mails_per_s', value: rate.unsignedMailsPerS, target: '-' });
    const cpu = (r: DigestRun) => r.cpu.worker?.toFixed(0) ?? '–';
    section(
      `DKIM signing — the digest's spliced fast path, and ${dkimN} readers signed vs unsigned (Redis queue backend)`,
      [
        `In-process, ${micro.recipients} messages of a tracked six-article issue (${micro.messageBytes} B, ${micro.personalValues} personal values), median of 5 loops:`,
        '',
        `- build unsigned: ${micro.unsignedUs.toFixed(1)} µs/message; signed: ${micro.signedUs.toFixed(1)} µs/message; **signing: ${cost.toFixed(1)} µs/message**`,
        `- of which one RSA-2048 signature: ${micro.rsaUs.toFixed(1)} µs; the rest is the per-recipient body hash (static parts canonicalised once per issue, the text's prefix hashed once and copied) and the header hash`,
        `- the same message signed as one buffer after building (no shared parts): +${micro.wholeMessageUs.toFixed(1)} µs/message`,
        '',
        `End to end: newsletters whose From is news@signed.example (a DKIM key) and news@unsigned.example (none), ${dkimN} readers each, alternated on one worker after a warm-up pair (whose first messages were checked: signed / not signed).`,
        '',
        '| rep | unsigned | signed | signed / unsigned | worker CPU µs/message: unsigned / signed |',
        '|---:|---:|---:|---:|---:|',
        ...rate.unsigned.map((u, i) => {
          const sg = rate.signed[i];
          return `| ${i + 1} | ${u.mailsPerS.toFixed(0)} mails/s (${(u.ms / 1000).toFixed(2)} s) | ${sg.mailsPerS.toFixed(0)} mails/s (${(sg.ms / 1000).toFixed(2)} s) | ${(sg.mailsPerS / u.mailsPerS).toFixed(3)} | ${cpu(u)} / ${cpu(sg)} |`;
        }),
        `| median | ${rate.unsignedMailsPerS.toFixed(0)} | ${rate.signedMailsPerS.toFixed(0)} | ${rate.ratio.toFixed(3)} | |`,
      ],
    );
  }
  await warm?.stop();

  // ------------------------------------------------------------ 2b. memory on the PostgreSQL queue backend
  // Same two audiences on fresh workers whose queues live in PostgreSQL (no Redis at all), once
  // the Redis worker is gone (its outbox relay would take the digests). Left out of the
  // million-recipient run, which would double its length.
  if (sink && digestApi && want('memory') && !args.quick && args.n <= 100_000) {
    const pgRuns: MemoryRun[] = [];
    const redisMem = new RedisMemory(redis);
    for (const [name, slug, recipients] of [
      ['worker-pg-small', 'arthritis-health', smallN],
      ['worker-pg-large', 'spine-health', args.n],
    ] as const) {
      log(`2b. memory, PostgreSQL queues: ${recipients} recipients on a fresh worker`);
      const w = startWorker(name, digestDb, sink, { redis: false, prefix: `${prefixBase}-pgmem` });
      pgRuns.push(
        await memoryRun({ dbUrl: digestDb, apiUrl: digestApi.url, sink, worker: w, slug, recipients, redisMem }),
      );
      await w.stop();
    }
    const [s, l] = pgRuns;
    triples.push({ name: 'worker_peak_rss_ratio_pg', value: l.workerHwmKb / s.workerHwmKb, target: '<=1.2' });
    section(
      `2b. Memory: ${s.recipients} vs ${l.recipients} recipients, each on a fresh worker (PostgreSQL queue backend)`,
      [
        '| recipients | worker VmHWM | worker peak RSS by quarter of the run | worker RSS after | live heap after GC | digest time |',
        '|---:|---:|---:|---:|---:|---:|',
        ...pgRuns.map(
          (r) =>
            `| ${r.recipients} | ${mb(r.workerHwmKb).toFixed(1)} MB | ${r.rssByQuarterKb.map((k) => mb(k).toFixed(0)).join(' / ')} MB | ${mb(r.workerRssAfterKb).toFixed(1)} MB | ${r.liveHeapMb.toFixed(1)} MB | ${(r.ms / 1000).toFixed(2)} s |`,
        ),
      ],
    );
  }

  if (sink && digestApi && want('digest-pg')) {
    if (!raw) {
      notDone.push('digest-pg needs the captured message of the Redis run (run it with digest)');
    } else {
      log(`1b. digest (${args.n}) vs raw blast, PostgreSQL queue backend`);
      const w = startWorker('worker-pg', digestDb, sink, { redis: false, prefix: `${prefixBase}-pg` });
      // Warm-up (and boot) on the small audience.
      await timedDigest({
        dbUrl: digestDb,
        apiUrl: digestApi.url,
        sink,
        slug: 'arthritis-health',
        recipients: smallN,
        worker: w,
        timeoutMs: 180_000,
      });
      results1.push(
        await bench1({
          backend: 'postgres',
          dbUrl: digestDb,
          apiUrl: digestApi.url,
          sink,
          worker: w,
          raw,
          n: args.n,
          reps: args.reps,
          defaultCount: 0,
          nagleCount: Math.min(args.n, args.quick ? 100 : 250),
          connections: 5,
        }),
      );
      await w.stop();
    }
  }
  for (const r of results1) {
    const sfx = r.backend === 'redis' ? '' : '_pg';
    triples.push({ name: `digest_vs_raw_blast${sfx}`, value: r.ratio, target: '>=0.8' });
    triples.push({ name: `digest_mails_per_s${sfx}`, value: r.digestMailsPerS, target: '-' });
    triples.push({ name: `raw_nodelay_mails_per_s${sfx}`, value: r.rawNodelayMailsPerS, target: '-' });
    if (r.rawDefault.length)
      triples.push({ name: `raw_nodemailer_default_mails_per_s${sfx}`, value: r.rawDefaultMailsPerS, target: '-' });
    triples.push({ name: `raw_nagle_mails_per_s${sfx}`, value: r.rawNagleMailsPerS, target: '-' });
    triples.push({ name: `raw_smtp_connection_mails_per_s${sfx}`, value: r.rawConnectionsMailsPerS, target: '-' });
    triples.push({ name: `digest_vs_raw_smtp_connection${sfx}`, value: r.ratioConnections, target: '-' });
    if (r.backend === 'redis' && r.mjmlCallsPerDigest !== null)
      triples.push({ name: 'mjml_calls_per_digest', value: r.mjmlCallsPerDigest, target: '=1' });
    section(
      `1. Digest end to end vs raw SMTP blast — ${r.backend} queue backend, ${args.n} recipients, ${r.messageBytes} B message, 5 connections`,
      [
        '"raw pool, getSocket + TCP_NODELAY" (the target\'s limit) is the faster of two blasts in the same rep: the bytes handed to nodemailer as a Buffer (which it wraps in a PassThrough) and as a stream yielding them once.',
        '"raw SMTPConnection" (information, not the target): the same bytes over nodemailer\'s `SMTPConnection` without the pool, one message after another on each of the 5 TCP_NODELAY connections, as the worker\'s sending threads send them.',
        '',
        "| rep | digest (POST → last accept) | raw pool, getSocket + TCP_NODELAY | bytes as Buffer / as stream | raw pool, nodemailer's own sockets | raw pool, Nagle forced on | digest / raw NODELAY | raw SMTPConnection | digest / raw SMTPConnection | mjml2html calls |",
        '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        ...r.digest.map(
          (d, i) =>
            `| ${i + 1} | ${d.mailsPerS.toFixed(0)} mails/s (${(d.ms / 1000).toFixed(2)} s) | ${r.rawNodelay[i].mailsPerS.toFixed(0)} mails/s (${(r.rawNodelay[i].ms / 1000).toFixed(2)} s) | ${r.rawForms[i].buffer.toFixed(0)} / ${r.rawForms[i].stream.toFixed(0)} | ${r.rawDefault[i] ? `${r.rawDefault[i].mailsPerS.toFixed(0)} mails/s (${r.rawDefault[i].count} msgs)` : '–'} | ${r.rawNagle[i].mailsPerS.toFixed(0)} mails/s (${r.rawNagle[i].count} msgs) | ${r.ratios[i].toFixed(3)} | ${r.rawConnections[i].mailsPerS.toFixed(0)} mails/s | ${(d.mailsPerS / r.rawConnections[i].mailsPerS).toFixed(3)} | ${d.mjmlCalls ?? 'n/a'} |`,
        ),
        `| median | ${r.digestMailsPerS.toFixed(0)} | ${r.rawNodelayMailsPerS.toFixed(0)} | | ${r.rawDefault.length ? r.rawDefaultMailsPerS.toFixed(0) : '–'} | ${r.rawNagleMailsPerS.toFixed(0)} | ${r.ratio.toFixed(3)} | ${r.rawConnectionsMailsPerS.toFixed(0)} | ${r.ratioConnections.toFixed(3)} | |`,
        '',
        `Before the reps, a warm-up digest of the same size (not counted; the worker's compiler is still at work in it): ${r.warmUp.mailsPerS.toFixed(0)} mails/s, worker ${r.warmUp.cpu.worker?.toFixed(0) ?? '–'} µs of CPU per message.`,
        '',
        "Where the CPU went, µs per message (user + system time from /proc; PostgreSQL: the bench database's backends plus the WAL writer, checkpointer and background writer; the machine has 2 cores):",
        '',
        '| rep | digest: worker | digest: PostgreSQL | digest: sink | digest: total | raw: blaster | raw: sink | raw: total | main thread busy: worker / blaster |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        ...r.digest.map((d, i) => {
          const raw = r.rawNodelay[i].cpu;
          const total = (d.cpu.worker ?? 0) + d.cpu.postgres + d.cpu.sink;
          const busy = d.workerBusy === null ? '–' : `${(d.workerBusy * 100).toFixed(0)} %`;
          return `| ${i + 1} | ${d.cpu.worker?.toFixed(0) ?? '–'} | ${d.cpu.postgres.toFixed(0)} | ${d.cpu.sink.toFixed(0)} | ${total.toFixed(0)} | ${raw.blaster.toFixed(0)} | ${raw.sink.toFixed(0)} | ${(raw.blaster + raw.sink).toFixed(0)} | ${busy} / ${(r.rawNodelay[i].busy * 100).toFixed(0)} % |`;
        }),
      ],
    );
  }

  // ------------------------------------------------------------ 6. rate accuracy, two workers
  if (sink && digestApi && want('rate')) {
    log(`6. rate accuracy: SEND_RATE_PER_SECOND=${args.rate}, two workers, ${rateRecipients} recipients, twice`);
    const prefix = `${prefixBase}-rate`;
    const extra = { SEND_RATE_PER_SECOND: String(args.rate), DIGEST_BATCH_SIZE: '50' };
    const ws = [
      startWorker('worker-rate-1', digestDb, sink, { redis: true, prefix, extra }),
      startWorker('worker-rate-2', digestDb, sink, { redis: true, prefix, extra }),
    ];
    await waitForWorkers(prefix, 2);
    const phases: [string, RateResult][] = [];
    // First digest on freshly started workers (cold JIT, SMTP pools not yet open), then a second one right after.
    for (const phase of ['first digest after start', 'second digest (warm workers)']) {
      const r = await rateDigest({
        dbUrl: digestDb,
        apiUrl: digestApi.url,
        sink,
        slug: 'sports-health',
        recipients: rateRecipients,
        rate: args.rate,
        meanWindowS: rateWindowS,
      });
      phases.push([phase, r]);
      log(
        `  ${phase}: ${r.messages} mails over ${r.windowS.toFixed(2)} s: first ${rateWindowS} s ${r.windowMean.toFixed(1)}/s (${r.windowMeanRatio.toFixed(3)} R), ` +
          `busiest ${rateWindowS} s ${r.busiestWindowMean.toFixed(1)}/s, whole send ${r.mean.toFixed(1)}/s (${r.meanRatio.toFixed(3)} R), ` +
          `busiest 1 s window ${r.maxSliding} (${r.maxRatio.toFixed(3)} R), per aligned second ${r.perSecond.join(' ')}; ` +
          `first 2 s per 100 ms: ${r.first2s.join(' ')}`,
      );
    }
    await Promise.all(ws.map((w) => w.stop()));
    const [[, cold], [, warmRun]] = phases;
    triples.push({ name: 'rate_mean_over_R', value: cold.windowMeanRatio, target: '0.95..1' });
    triples.push({ name: 'rate_max_1s_window_over_R', value: cold.maxRatio, target: '<=1.1' });
    triples.push({ name: 'rate_mean_over_R_warm', value: warmRun.windowMeanRatio, target: '0.95..1' });
    triples.push({ name: 'rate_max_1s_window_over_R_warm', value: warmRun.maxRatio, target: '<=1.1' });
    section(
      `6. Rate accuracy — SEND_RATE_PER_SECOND=${args.rate}, two workers (Redis), ${rateRecipients} mails per digest`,
      [
        `The target's mean is the first ${rateWindowS} s from the first accept (each digest holds ${rateWindowS + (args.quick ? 2 : 5)} s of mail at the rate, so that window could show more than R). Whole send: (mails − 1) / (last − first accept).`,
        '',
        `| digest | window (first → last accept) | first ${rateWindowS} s | busiest ${rateWindowS} s | whole send | busiest sliding 1 s | busiest aligned second | per aligned second | per 100 ms, first 2 s |`,
        '|---|---:|---:|---:|---:|---:|---:|---|---|',
        ...phases.map(
          ([phase, r]) =>
            `| ${phase} | ${r.windowS.toFixed(2)} s | ${r.windowMean.toFixed(1)}/s = ${r.windowMeanRatio.toFixed(3)} R | ${r.busiestWindowMean.toFixed(1)}/s | ${r.mean.toFixed(1)}/s = ${r.meanRatio.toFixed(3)} R | ${r.maxSliding} = ${r.maxRatio.toFixed(3)} R | ${r.maxAligned} | ${r.perSecond.join(' ')} | ${r.first2s.join(' ')} |`,
        ),
      ],
    );
  }

  // ------------------------------------------------------------ 3. render once
  if (want('render')) {
    log('3. render once: one issue render vs per-recipient personalisation (in-process)');
    const r: RenderResult = await bench3({ reps: 15, recipients: args.quick ? 2000 : 10_000 });
    log(
      `  issue render ${r.issueMs.toFixed(1)} ms (mjml2html alone ${r.mjml2htmlMs?.toFixed(1) ?? 'n/a'} ms, ${r.mjmlCallsPerIssue} call), ` +
        `personalise ${r.personalizeUs.toFixed(1)} µs/recipient (${r.htmlBytes} B HTML), personalise+MIME build ${r.messageBuildUs.toFixed(0)} µs QP / ${r.messageBuildBase64Us.toFixed(0)} µs base64 (${r.messageBytes} B)`,
    );
    triples.push({ name: 'personalize_vs_mjml2html', value: r.ratio, target: '<=0.05' });
    if (!results1.some((x) => x.mjmlCallsPerDigest !== null))
      triples.push({ name: 'mjml_calls_per_digest', value: r.mjmlCallsPerIssue, target: '=1' });
    section('3. Render once (in-process, DigestRenderer)', [
      `- one issue render (renderIssue: Handlebars → MJML → mjml2html → html-to-text): ${r.issueMs.toFixed(1)} ms (median of 15)`,
      `- mjml2html alone on the issue's MJML: ${r.mjml2htmlMs?.toFixed(1) ?? 'n/a'} ms; mjml2html calls per issue: ${r.mjmlCallsPerIssue}`,
      `- per recipient, personalize (escaped Handlebars, ${r.htmlBytes} B HTML + text): ${r.personalizeUs.toFixed(1)} µs (median of 3 loops of ${r.recipients})`,
      `- per recipient, personalize + nodemailer MIME build (not part of the target, for the record): ${r.messageBuildUs.toFixed(0)} µs with quoted-printable bodies (${r.messageBytes} B message), ${r.messageBuildBase64Us.toFixed(0)} µs with \`textEncoding: 'base64'\``,
      `- ratio personalize / mjml2html: ${r.ratio.toFixed(4)}`,
    ]);
  }

  // ------------------------------------------------------------ 4 and 5. subscribe API, import
  if (needApiDb) {
    const api = await startApi('api-subscribe', apiDb, 'smtp://127.0.0.1:2525', `${prefixBase}-sub`, {
      PUBLIC_POSTS_PER_IP_PER_MINUTE: '1000000',
    });
    if (want('subscribe')) {
      const rawServer = startChild(
        'raw-subscribe',
        'bench/raw-subscribe-server.js',
        { DATABASE_URL: apiDb },
        { logDir },
      );
      const { port } = await rawServer.next<{ port: number }>('ready', undefined, 30_000);
      const seconds = args.quick ? 2 : 10;
      log(
        `4. subscribe: autocannon ${seconds} s × ${args.reps} reps, app vs bare Fastify + pg, then both at 500 req/s`,
      );
      const r: Bench4Result = await bench4({
        appUrl: api.url,
        rawUrl: `http://127.0.0.1:${port}`,
        dbUrl: apiDb,
        reps: args.reps,
        seconds,
        rateSeconds: args.quick ? 3 : 10,
        connections: 10,
        fixedRate: 500,
      });
      await rawServer.stop();
      triples.push({ name: 'subscribe_vs_raw', value: r.ratio, target: '>=0.6' });
      triples.push({ name: 'subscribe_req_per_s', value: r.appReqPerS, target: '-' });
      triples.push({ name: 'raw_subscribe_req_per_s', value: r.rawReqPerS, target: '-' });
      triples.push({ name: 'subscribe_p99_ms_at_500rps', value: r.appAtRate.p99, target: '<50' });
      // A p99 only means something if the 500 req/s were actually served.
      triples.push({ name: 'subscribe_served_rps_at_500rps', value: r.appAtRate.reqPerS, target: '>=475' });
      section(`4. Subscribe API — autocannon, ${r.connections} connections, unique address per request`, [
        '| rep | app POST /v1/subscriptions | bare Fastify + pg | ratio |',
        '|---:|---:|---:|---:|',
        ...r.app.map(
          (a, i) =>
            `| ${i + 1} | ${a.reqPerS.toFixed(0)} req/s (p50 ${a.p50} ms, p99 ${a.p99} ms) | ${r.raw[i].reqPerS.toFixed(0)} req/s (p50 ${r.raw[i].p50} ms, p99 ${r.raw[i].p99} ms) | ${r.ratios[i].toFixed(3)} |`,
        ),
        `| median | ${r.appReqPerS.toFixed(0)} | ${r.rawReqPerS.toFixed(0)} | ${r.ratio.toFixed(3)} |`,
        '',
        `- at a fixed ${r.fixedRate} req/s: app p50 ${r.appAtRate.p50} ms, p99 ${r.appAtRate.p99} ms (${r.appAtRate.reqPerS.toFixed(0)} req/s served); bare p50 ${r.rawAtRate.p50} ms, p99 ${r.rawAtRate.p99} ms`,
        `- stored afterwards: ${r.stored.subscribers} subscribers, ${r.stored.outbox} outbox rows (no worker runs on this database: no mail is sent)`,
        `- the app's sign-ups per statement (concurrent sign-ups share one, see SignupWriter): ${(r.stored.appRows / Math.max(1, r.stored.appStatements)).toFixed(2)} (${r.stored.appRows} sign-ups in ${r.stored.appStatements} transactions, counted by xmin)`,
      ]);
    }
    if (want('import')) {
      const reps = args.importRows > 200_000 ? 1 : args.reps;
      log(
        `5. import: ${args.importRows} CSV rows through POST /v1/newsletters/:slug/subscribers/import, ${reps} rep(s)`,
      );
      const r: Bench5Result = await bench5({ apiUrl: api.url, rows: args.importRows, reps });
      triples.push({ name: 'import_rows_per_s', value: r.rowsPerS, target: '>=10000' });
      section(`5. Import — ${args.importRows} generated CSV rows over HTTP (streamed), ${reps} rep(s)`, [
        ...r.runs.map(
          (x, i) =>
            `- rep ${i + 1}: ${(x.ms / 1000).toFixed(2)} s → ${x.rowsPerS.toFixed(0)} rows/s (${x.created} created)`,
        ),
        `- median: ${r.rowsPerS.toFixed(0)} rows/s`,
      ]);
    }
    await api.child.stop();
  }

  // ------------------------------------------------------------ 7. tracked link clicks
  if (clickSetup) {
    const api = await startApi('api-clicks', clicksDb, 'smtp://127.0.0.1:2525', `${prefixBase}-clk`);
    const rawServer = startChild('raw-click', 'bench/raw-click-server.js', { APP_SECRET }, { logDir });
    const { port } = await rawServer.next<{ port: number }>('ready', undefined, 30_000);
    const seconds = args.quick ? 2 : 10;
    const rateSeconds = args.quick ? 4 : 10;
    const fixedRate = 2000;
    log(
      `7. clicks: GET /c/:token, ${clickReaders} readers × ${clickArticles} articles, autocannon ~${seconds} s × ${args.reps} reps, ` +
        `app vs bare Fastify, then both at ${fixedRate} req/s for ${rateSeconds} s`,
    );
    const r: ClicksResult = await benchClicks({
      appUrl: api.url,
      rawUrl: `http://127.0.0.1:${port}`,
      appPid: api.child.proc.pid ?? 0,
      rawPid: rawServer.proc.pid ?? 0,
      dbUrl: clicksDb,
      setup: clickSetup,
      reps: args.reps,
      seconds,
      rateSeconds,
      connections: 10,
      fixedRate,
    });
    await rawServer.stop();
    await api.child.stop();
    triples.push({ name: 'clicks_vs_raw', value: r.ratio, target: '>=0.6' });
    triples.push({ name: 'clicks_req_per_s', value: r.appReqPerS, target: '-' });
    triples.push({ name: 'raw_clicks_req_per_s', value: r.rawReqPerS, target: '-' });
    triples.push({ name: 'clicks_p99_ms_at_2000rps', value: r.appAtRate.p99, target: '<50' });
    triples.push({ name: 'clicks_served_rps_at_2000rps', value: r.appServedAtRate, target: '>=1900' });
    triples.push({ name: 'clicks_recorded_ratio', value: r.recorded / r.appRedirects, target: '=1' });
    const cpu = (l: { cpu: { server: number; postgres: number; bench: number } }, pg: boolean) =>
      `${l.cpu.server.toFixed(0)}${pg ? ` + PostgreSQL ${l.cpu.postgres.toFixed(0)}` : ''} (autocannon ${l.cpu.bench.toFixed(0)})`;
    section(
      `7. Clicks — GET /c/:token under autocannon, ${r.connections} connections, ${r.tokens} different tokens, Safari user agent`,
      [
        `A sent digest of ${clickArticles} articles to ${clickReaders} readers (deliveries finished an hour ago: no click is \`early\`). Request i goes to reader i mod ${clickReaders}, and a reader never clicks one of the six links (the one at their id mod 6), so no reader covers every link of the mail: no click is a \`burst\`, all are recorded as human. The bare handler checks the same token (\`verifyClickToken\`) and answers the same 302 to a fixed Location, with no database. Every run is an exact number of requests (autocannon \`amount\`, sized from the run before), so none is in flight when it ends; req/s = 302s / (last answer − start).`,
        '',
        '| rep | app GET /c/:token | bare Fastify, same HMAC | ratio | CPU µs/request: api (+ PostgreSQL) | CPU µs/request: bare |',
        '|---:|---:|---:|---:|---:|---:|',
        ...r.app.map(
          (a, i) =>
            `| ${i + 1} | ${a.reqPerS.toFixed(0)} req/s (p50 ${a.p50} ms, p99 ${a.p99} ms) | ${r.raw[i].reqPerS.toFixed(0)} req/s (p50 ${r.raw[i].p50} ms, p99 ${r.raw[i].p99} ms) | ${r.ratios[i].toFixed(3)} | ${cpu(a, true)} | ${cpu(r.raw[i], false)} |`,
        ),
        `| median | ${r.appReqPerS.toFixed(0)} | ${r.rawReqPerS.toFixed(0)} | ${r.ratio.toFixed(3)} | | |`,
        '',
        `- at a fixed ${r.fixedRate} req/s for ${rateSeconds} s (${r.appAtRate.redirects} requests): app p50 ${r.appAtRate.p50} ms, p99 ${r.appAtRate.p99} ms (${r.appServedAtRate.toFixed(0)} req/s served: 302s / the longer of ${rateSeconds} s and the run); bare p50 ${r.rawAtRate.p50} ms, p99 ${r.rawAtRate.p99} ms (${r.rawServedAtRate.toFixed(0)} req/s served)`,
        `- recorded: ${r.recorded} rows in \`link_clicks\` for ${r.appRedirects} 302s the app answered over all its runs (warm-up and link check included): ${(r.recorded / r.appRedirects).toFixed(4)}; verdicts: ${r.verdicts.map((v) => `${v.verdict}${v.reason ? ` (${v.reason})` : ''} ${v.n}`).join(', ')}`,
        `- clicks per INSERT (group commit, rows sharing an xmin): ${(r.recorded / Math.max(1, r.statements)).toFixed(1)} (${r.statements} statements)`,
      ],
    );
  }

  for (const b of ALL)
    if (!args.only.has(b))
      notDone.push(
        b === 'digest-pg' && args.quick && !process.argv.includes('--only')
          ? 'digest-pg (benchmark 1 on the PostgreSQL queue backend): left out of --quick to stay within two minutes; run `npm run bench` or add `--only memory,digest,digest-pg`'
          : `${b}: not run (--only)`,
      );
  log(`done in ${((now() - t0) / 1000).toFixed(1)} s`);
}

function summary(durationS: number, env: { postgres: string; redis: string }): void {
  const explicit = process.argv.includes('--only') || process.argv.some((a) => a.startsWith('--only='));
  const subset = explicit ? ` (only ${[...args.only].join(', ')})` : '';
  const key = `${args.quick ? 'quick,' : ''}n=${args.n}${explicit ? `,only=${[...args.only].join('+')}` : ''}`;
  const cmd = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  const block = [
    `### ${args.quick ? 'Quick run' : 'Run'}: N = ${args.n}${subset}`,
    '',
    `\`${cmd}\` — ${durationS.toFixed(0)} s${failed ? ' — **the run failed; figures are partial**' : ''}`,
    '',
    ...machine(env),
    '',
    '| figure | value | target | met |',
    '|---|---:|---|:-:|',
    ...triples.map((t) => {
      const ok = meets(t);
      return `| \`${t.name}\` | ${formatValue(t.value)} | ${t.target === '-' ? '(info)' : t.target} | ${ok === null ? '' : ok ? 'yes' : '**no**'} |`;
    }),
    '',
    ...details,
    ...(notDone.length ? ['Not measured in this run:', '', ...notDone.map((x) => `- ${x}`), ''] : []),
  ].join('\n');
  writeReport(join(ROOT_DIR, 'BENCHMARKS.md'), key, block);

  const w = Math.max(...triples.map((t) => t.name.length), 10);
  process.stdout.write('\nMailroom benchmarks — target met?\n');
  for (const t of triples) {
    const ok = meets(t);
    process.stdout.write(
      `  ${ok === null ? '    ' : ok ? 'ok  ' : 'MISS'} ${t.name.padEnd(w)} ${formatValue(t.value).padStart(8)}  ${t.target}\n`,
    );
  }
  process.stdout.write('\n');
  for (const t of triples) process.stdout.write(`${t.name} ${formatValue(t.value)} ${t.target}\n`);
}

const started = now();
let env = { postgres: 'PostgreSQL n/a', redis: 'n/a' };
try {
  await main().catch(async (err: unknown) => {
    failed = true;
    log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  });
  try {
    const [v] = await query<{ v: string }>(
      process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      `SELECT split_part(version(), ' on ', 1) AS v`,
    );
    env = { postgres: v.v, redis: /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'n/a' };
  } catch {
    /* the report says n/a */
  }
} finally {
  await cleanup();
}
summary((now() - started) / 1000, env);
// Everything is closed by now; exit at once rather than wait on a handle some library left behind.
process.exit(failed ? 1 : 0);
