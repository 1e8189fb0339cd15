/**
 * Benchmarks 4 and 5: the public subscribe endpoint under autocannon against a bare Fastify + pg
 * baseline doing the same writes, and the CSV import through the admin HTTP route.
 */
import autocannon from 'autocannon';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { ADMIN_KEY, log, median, now, query } from './support.js';

let unique = 0;

interface Load {
  reqPerS: number;
  ok: number;
  errors: number;
  non2xx: number;
  p50: number;
  p99: number;
  seconds: number;
}

/** autocannon against POST /v1/subscriptions, every request with a new address. */
async function cannon(
  baseUrl: string,
  tag: string,
  opts: { seconds: number; connections: number; rate?: number },
): Promise<Load> {
  const run = `${tag}-${Date.now().toString(36)}`;
  const result = await autocannon({
    url: baseUrl,
    connections: opts.connections,
    duration: opts.seconds,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    requests: [
      {
        method: 'POST',
        path: '/v1/subscriptions',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        setupRequest: (req) => ({
          ...req,
          body: JSON.stringify({ email: `s${++unique}-${run}@example.com`, newsletters: ['spine-health'] }),
        }),
      },
    ],
  });
  return {
    reqPerS: result['2xx'] / result.duration,
    ok: result['2xx'],
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    p50: result.latency.p50,
    p99: result.latency.p99,
    seconds: result.duration,
  };
}

export interface Bench4Result {
  app: Load[];
  raw: Load[];
  ratios: number[];
  ratio: number;
  appReqPerS: number;
  rawReqPerS: number;
  fixedRate: number;
  appAtRate: Load;
  rawAtRate: Load;
  connections: number;
  stored: { subscribers: number; outbox: number; appRows: number; appStatements: number };
}

export async function bench4(opts: {
  appUrl: string;
  rawUrl: string;
  dbUrl: string;
  reps: number;
  seconds: number;
  rateSeconds: number;
  connections: number;
  fixedRate: number;
}): Promise<Bench4Result> {
  // Warm-up: JIT, connection pools, prepared plans.
  await cannon(opts.appUrl, 'warm', { seconds: 1, connections: opts.connections });
  await cannon(opts.rawUrl, 'warm', { seconds: 1, connections: opts.connections });
  const app: Load[] = [];
  const raw: Load[] = [];
  const ratios: number[] = [];
  for (let rep = 1; rep <= opts.reps; rep++) {
    const a = await cannon(opts.appUrl, 'app', { seconds: opts.seconds, connections: opts.connections });
    const r = await cannon(opts.rawUrl, 'raw', { seconds: opts.seconds, connections: opts.connections });
    app.push(a);
    raw.push(r);
    ratios.push(a.reqPerS / r.reqPerS);
    log(
      `  rep ${rep}: app ${a.reqPerS.toFixed(0)} req/s (p99 ${a.p99} ms, non2xx ${a.non2xx}, errors ${a.errors}), ` +
        `raw ${r.reqPerS.toFixed(0)} req/s (p99 ${r.p99} ms) → ratio ${(a.reqPerS / r.reqPerS).toFixed(3)}`,
    );
    if (a.non2xx + a.errors > 0 || r.non2xx + r.errors > 0)
      throw new Error('subscribe load got errors or non-2xx answers');
  }
  const appAtRate = await cannon(opts.appUrl, 'app-rate', {
    seconds: opts.rateSeconds,
    connections: opts.connections,
    rate: opts.fixedRate,
  });
  const rawAtRate = await cannon(opts.rawUrl, 'raw-rate', {
    seconds: opts.rateSeconds,
    connections: opts.connections,
    rate: opts.fixedRate,
  });
  log(
    `  at ${opts.fixedRate} req/s: app p50 ${appAtRate.p50} ms p99 ${appAtRate.p99} ms (${appAtRate.reqPerS.toFixed(0)} req/s); ` +
      `raw p50 ${rawAtRate.p50} ms p99 ${rawAtRate.p99} ms`,
  );
  // Rows one transaction wrote share its xmin: the app's sign-ups per statement (SignupWriter).
  const [stored] = await query<{ subscribers: number; outbox: number; appRows: number; appStatements: number }>(
    opts.dbUrl,
    `SELECT (SELECT count(*)::int FROM subscribers) AS subscribers, (SELECT count(*)::int FROM outbox) AS outbox,
            (SELECT count(*)::int FROM subscribers WHERE email LIKE '%-app-%') AS "appRows",
            (SELECT count(DISTINCT xmin::text)::int FROM subscribers WHERE email LIKE '%-app-%') AS "appStatements"`,
  );
  log(
    `  the app's sign-ups per statement: ${(stored.appRows / Math.max(1, stored.appStatements)).toFixed(2)} (${stored.appRows} in ${stored.appStatements})`,
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
    connections: opts.connections,
    stored,
  };
}

// ---------------------------------------------------------------- import

/** A generated CSV, produced as it is read (a million rows never sit in memory). */
function csv(rows: number, tag: string): Readable {
  let i = 0;
  const consented = new Date(Date.now() - 86_400_000).toISOString();
  return new Readable({
    read() {
      if (i === 0) this.push('email,name,topics,timezone,consented_at,source\n');
      const lines: string[] = [];
      for (const end = Math.min(rows, i + 1000); i < end; i++) {
        lines.push(
          `imp${i}-${tag}@example.com,Reader ${i},Neck Pain|Upper Back Pain,America/Chicago,${consented},https://www.spine-health.example/a/${i % 97}\n`,
        );
      }
      this.push(lines.join(''));
      if (i >= rows) this.push(null);
    },
  });
}

export interface ImportRun {
  rows: number;
  ms: number;
  rowsPerS: number;
  created: number;
}

async function importOnce(apiUrl: string, rows: number, tag: string): Promise<ImportRun> {
  const url = new URL(`${apiUrl}/v1/newsletters/spine-health/subscribers/import`);
  const t0 = now();
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'text/csv' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) reject(new Error(`import answered ${res.statusCode}: ${text.slice(0, 300)}`));
          else resolve(text);
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    csv(rows, tag).pipe(req);
  });
  const ms = now() - t0;
  const report = JSON.parse(body) as { created: number; invalid: number };
  if (report.created !== rows) throw new Error(`import created ${report.created} of ${rows}: ${body.slice(0, 300)}`);
  return { rows, ms, rowsPerS: rows / (ms / 1000), created: report.created };
}

export interface Bench5Result {
  runs: ImportRun[];
  rowsPerS: number;
}

export async function bench5(opts: { apiUrl: string; rows: number; reps: number }): Promise<Bench5Result> {
  const runs: ImportRun[] = [];
  for (let rep = 1; rep <= opts.reps; rep++) {
    const r = await importOnce(opts.apiUrl, opts.rows, `${rep}-${Date.now().toString(36)}`);
    runs.push(r);
    log(`  rep ${rep}: ${r.rows} rows in ${(r.ms / 1000).toFixed(2)} s → ${r.rowsPerS.toFixed(0)} rows/s`);
  }
  return { runs, rowsPerS: median(runs.map((r) => r.rowsPerS)) };
}
