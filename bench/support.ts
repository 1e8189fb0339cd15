/** Shared plumbing for the benchmarks: databases, audiences, child processes, statistics. */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import pg from 'pg';
import { migrate } from '#db/data-source.js';
import type { IssueArticle } from '#digests/digest-renderer.service.js';
import { ROOT_DIR } from '#core/paths.js';

export const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const DIST = join(ROOT_DIR, 'dist');
export const RUN_ID = randomBytes(4).toString('hex');
/** Long enough for the config's checks; only ever used against throw-away databases. */
export const APP_SECRET = `bench-secret-${randomBytes(16).toString('hex')}`;
export const ADMIN_KEY = `bench-admin-${randomBytes(12).toString('hex')}`;

export const now = (): number => performance.timeOrigin + performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------- databases

function withDb(base: string, db: string): string {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.toString();
}

async function adminQuery(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const created: string[] = [];

/** A fresh bench_* database, migrated (with BullMQ's PostgreSQL schema too). Dropped by dropDatabases(). */
export async function createDatabase(label: string): Promise<string> {
  const name = `bench_${label}_${RUN_ID}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  created.push(name);
  const url = withDb(PG_ADMIN_URL, name);
  await migrate(url, { queueSchema: true });
  return url;
}

export async function dropDatabases(): Promise<void> {
  for (const name of created.splice(0)) {
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((err: unknown) =>
      log(`could not drop ${name}: ${String(err)}`),
    );
  }
}

export async function query<T = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** N confirmed subscribers of one newsletter, set-based (like test/support/audience.ts), in slices. */
export async function addAudience(url: string, prefix: string, count: number, newsletter: string): Promise<void> {
  const slice = 100_000;
  for (let start = 1; start <= count; start += slice) {
    const end = Math.min(count, start + slice - 1);
    await query(
      url,
      `WITH s AS (
         INSERT INTO subscribers (email, name, status)
         SELECT $1 || g || '@example.com', 'Reader ' || g, 'ok' FROM generate_series($2::int, $3::int) g
         RETURNING id)
       INSERT INTO subscriptions (subscriber_id, newsletter_id, status, confirmed_at)
       SELECT s.id, (SELECT id FROM newsletters WHERE slug = $4), 'active', now() FROM s`,
      [prefix, start, end, newsletter],
    );
  }
  await query(url, 'ANALYZE subscribers; ANALYZE subscriptions');
}

/** Like the seeded sample articles: a title, a two-line summary, no image. */
export const SUMMARY =
  'Physical therapists explain what usually helps, what to avoid in the first days and when a visit to a doctor is worth it.';

/** The in-process issue of the render and DKIM benchmarks: six articles shaped like benchmark 1's digests. */
export function inProcessArticles(label: string): IssueArticle[] {
  return Array.from({ length: 6 }, (_, i) => ({
    url: `https://www.spine-health.example/bench/${label}/${i}`,
    title: `Bench article ${i}: ${label} — relieving upper back pain at the desk`,
    summary: SUMMARY,
    imageUrl: null,
    topics: ['Upper Back Pain', 'Exercise'],
  }));
}

/**
 * Fresh articles for the next digest of a newsletter (the planner only takes articles no digest
 * carried yet); with `ownTopics`, article g is on "Bench topic g" alone.
 */
export async function addArticles(
  url: string,
  newsletter: string,
  tag: string,
  count = 6,
  ownTopics = false,
): Promise<void> {
  await query(
    url,
    `WITH a AS (
       INSERT INTO articles (url, title, summary, topics, published_at)
       SELECT 'https://www.spine-health.example/bench/' || $2 || '/' || g,
              'Bench article ' || g || ': ' || $2 || ' — relieving upper back pain at the desk',
              $3, CASE WHEN $5 THEN ARRAY['Bench topic ' || g] ELSE ARRAY['Upper Back Pain','Exercise'] END,
              now() - g * interval '1 millisecond'
       FROM generate_series(1, $4::int) g
       RETURNING id)
     INSERT INTO article_newsletters (article_id, newsletter_id)
     SELECT a.id, (SELECT id FROM newsletters WHERE slug = $1) FROM a`,
    [newsletter, tag, SUMMARY, count, ownTopics],
  );
}

// ---------------------------------------------------------------- child processes

export interface Child {
  proc: ChildProcess;
  name: string;
  /** Sends a message and waits for the reply of that type (and id, when given). */
  request<T>(msg: Record<string, unknown>, type: string, timeoutMs?: number): Promise<T>;
  next<T>(type: string, pred?: (m: T) => boolean, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

let seq = 0;
const children = new Set<Child>();

/**
 * Starts `node [--import probe] dist/<script>` with an IPC channel. Output goes to a log file
 * under os tmp (named in the bench's stderr) so a crash can be read afterwards.
 */
export function startChild(
  name: string,
  script: string,
  env: Record<string, string>,
  opts: { probe?: boolean; logDir: string; nodeArgs?: string[] },
): Child {
  const args = [
    ...(opts.nodeArgs ?? []),
    ...(opts.probe ? ['--expose-gc', '--import', join(DIST, 'bench', 'worker-probe.js')] : []),
    join(DIST, script),
  ];
  const proc = spawn(process.execPath, args, {
    cwd: ROOT_DIR,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const out = createWriteStream(join(opts.logDir, `${name}.log`));
  proc.stdout?.pipe(out);
  proc.stderr?.pipe(out);
  const listeners = new Set<(m: { type?: string; id?: number }) => void>();
  proc.on('message', (m: { type?: string; id?: number }) => listeners.forEach((l) => l(m)));
  const next = <T>(type: string, pred: (m: T) => boolean = () => true, timeoutMs = 600_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`${name} exited (${code}) while waiting for "${type}"; see ${opts.logDir}/${name}.log`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${name}: timed out waiting for "${type}"`));
      }, timeoutMs);
      const l = (m: { type?: string }) => {
        if (m.type === type && pred(m as T)) {
          cleanup();
          resolve(m as T);
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(l);
        proc.off('exit', onExit);
      };
      listeners.add(l);
      proc.once('exit', onExit);
    });
  const child: Child = {
    proc,
    name,
    next,
    request<T>(msg: Record<string, unknown>, type: string, timeoutMs = 30_000): Promise<T> {
      const id = ++seq;
      const p = next<T>(type, (m) => (m as { id?: number }).id === id, timeoutMs);
      proc.send({ ...msg, id });
      return p;
    },
    async stop() {
      children.delete(child);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
  children.add(child);
  return child;
}

export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => c.stop()));
}

/** VmHWM / VmRSS of a process, in kB. */
export function procStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export interface Probe {
  mjmlCalls: number;
  rssKb: number;
  hwmKb: number;
  heapUsed: number;
  /** The main thread's time so far, busy and idle (`performance.eventLoopUtilization()`). */
  elu: EventLoopUtilization;
}

/** Asks a probed child for its figures; with `gc`, after a full garbage collection (live heap). */
export const probe = (c: Child, gc = false): Promise<Probe> => c.request<Probe>({ cmd: 'probe', gc }, 'probe', 10_000);

/** Waits until a TCP port answers (the api child listening). */
export async function waitForHttp(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer in ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

/** The environment a production worker or api child gets. */
export function appEnv(opts: {
  dbUrl: string;
  smtpUrl: string;
  redis: boolean;
  prefix: string;
  extra?: Record<string, string>;
}): Record<string, string> {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: opts.dbUrl,
    SMTP_URL: opts.smtpUrl,
    ...(opts.redis ? { REDIS_URL: REDIS_URL } : {}),
    QUEUE_PREFIX: opts.prefix,
    APP_SECRET,
    ADMIN_API_KEY: ADMIN_KEY,
    PUBLIC_URL: 'http://mailroom.bench',
    PUBLIC_URL_ALLOW_HTTP: 'true', // a bench rig: no https here
    LOG_LEVEL: 'warn',
    OUTBOX_POLL_MS: '50',
    SEND_RATE_PER_SECOND: '100000',
    SMTP_POOL_SIZE: '5',
    // `SMTP_THREADS=0 npm run bench` compares the worker sending from its main thread.
    ...(process.env.SMTP_THREADS ? { SMTP_THREADS: process.env.SMTP_THREADS } : {}),
    ...opts.extra,
  };
}

// ---------------------------------------------------------------- CPU accounting

/**
 * CPU time (user + system, ms) of the given processes and of the PostgreSQL server processes
 * that work for `database` (its backends and autovacuum workers, and the shared WAL writer,
 * checkpointer and background writer): other databases' load on a shared server is left out.
 */
export interface CpuSnapshot {
  byPid: Map<number, number>;
  postgres: Map<number, number>;
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

export function cpuSnapshot(pids: number[], database = ''): CpuSnapshot {
  const byPid = new Map<number, number>();
  const postgres = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ms = (Number(fields[11]) + Number(fields[12])) * TICK_MS;
    if (pids.includes(pid)) byPid.set(pid, ms);
    if (comm === 'postgres') {
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if ((database && cmd.includes(` ${database} `)) || /walwriter|checkpointer|background writer/.test(cmd))
        postgres.set(pid, ms);
    }
  }
  return { byPid, postgres };
}

/** CPU ms one process spent between two snapshots. */
export function cpuSpent(a: CpuSnapshot, b: CpuSnapshot, pid: number): number {
  return (b.byPid.get(pid) ?? 0) - (a.byPid.get(pid) ?? 0);
}

/** CPU ms the PostgreSQL server spent between two snapshots (backends that ended meanwhile are missed). */
export function postgresSpent(a: CpuSnapshot, b: CpuSnapshot): number {
  let ms = 0;
  for (const [pid, t] of b.postgres) ms += t - (a.postgres.get(pid) ?? 0);
  return ms;
}
