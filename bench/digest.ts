/**
 * Benchmarks 1 and 2: a digest end to end against the raw SMTP limit, and the worker's memory at
 * two audience sizes. Everything talks to one discard sink in its own process.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import nodemailer, { type TransportOptions, type Transporter } from 'nodemailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import {
  ADMIN_KEY,
  type Child,
  addArticles,
  cpuSnapshot,
  cpuSpent,
  log,
  median,
  now,
  postgresSpent,
  probe,
  procStatusKb,
  query,
  sleep,
} from './support.js';

export interface Sink {
  child: Child;
  port: number;
  url: string;
}

export async function sinkCount(sink: Sink): Promise<number> {
  return (await sink.child.request<{ count: number }>({ cmd: 'mark' }, 'mark')).count;
}

export function sinkReached(sink: Sink, target: number, timeoutMs: number): Promise<{ at: number; count: number }> {
  return sink.child.request<{ at: number; count: number }>({ cmd: 'wait', target }, 'reached', timeoutMs);
}

export async function sinkTimes(sink: Sink, from: number): Promise<number[]> {
  return (await sink.child.request<{ times: number[] }>({ cmd: 'times', from }, 'times')).times;
}

export async function createDigest(apiUrl: string, slug: string, body: object = {}): Promise<string> {
  const res = await fetch(`${apiUrl}/v1/newsletters/${slug}/digests`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = (await res.json()) as { id?: string };
  if (res.status !== 201 || !answer.id)
    throw new Error(`POST digests answered ${res.status}: ${JSON.stringify(answer)}`);
  return answer.id;
}

/** Waits for the digest to end (sent) and checks its ledger. */
export async function digestOutcome(
  dbUrl: string,
  id: string,
  timeoutMs: number,
): Promise<{ status: string; sent: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [d] = await query<{ status: string; sent: number }>(
      dbUrl,
      `SELECT status, (SELECT count(*)::int FROM deliveries WHERE digest_id = $1 AND status = 'sent') AS sent
       FROM digests WHERE id = $1`,
      [id],
    );
    if (d && !['scheduled', 'sending'].includes(d.status)) return d;
    if (Date.now() > deadline) throw new Error(`digest ${id} still ${d?.status} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

export interface DigestRun {
  id: string;
  recipients: number;
  ms: number;
  mailsPerS: number;
  mjmlCalls: number | null;
  /** From creating the digest to its first message at the sink (plan, render, fan-out, first batch), ms. */
  firstMs: number;
  /** CPU µs per message, from creating the digest to the last message at the sink. */
  cpu: { worker: number | null; postgres: number; sink: number };
  /** Share of that time the worker's main thread was busy (its event loop not waiting). */
  workerBusy: number | null;
}

let articleTag = 0;

/**
 * One digest: fresh articles, POST /v1/newsletters/:slug/digests, and the clock stops at the sink's
 * accept time of the last expected message. The ledger is checked afterwards (all sent, none twice).
 */
export async function timedDigest(opts: {
  dbUrl: string;
  apiUrl: string;
  sink: Sink;
  slug: string;
  recipients: number;
  worker?: Child;
  timeoutMs: number;
  /** Adds the digest's fresh articles (default: six like the seeded ones). */
  articles?: (dbUrl: string, slug: string, tag: string) => Promise<void>;
  /** The POST body of the digest (default `{}`: now, at the newsletter's time), made when it is created. */
  body?: () => object;
}): Promise<DigestRun> {
  await (opts.articles ?? addArticles)(opts.dbUrl, opts.slug, `t${Date.now()}-${++articleTag}`);
  const start = opts.worker ? await probe(opts.worker) : null;
  const before = start?.mjmlCalls ?? null;
  const mark = await sinkCount(opts.sink);
  const reached = sinkReached(opts.sink, mark + opts.recipients, opts.timeoutMs);
  const pids = [opts.sink.child.proc.pid ?? 0, opts.worker?.proc.pid ?? 0];
  const database = new URL(opts.dbUrl).pathname.slice(1);
  const cpu0 = cpuSnapshot(pids, database);
  const t0 = now();
  const id = await createDigest(opts.apiUrl, opts.slug, opts.body?.() ?? {});
  const { at, count } = await reached;
  const ms = at - t0;
  const cpu1 = cpuSnapshot(pids, database);
  const end = opts.worker ? await probe(opts.worker) : null;
  const outcome = await digestOutcome(opts.dbUrl, id, 60_000);
  if (outcome.status !== 'sent' || outcome.sent !== opts.recipients) {
    throw new Error(`digest ${id}: ${outcome.status}, ${outcome.sent}/${opts.recipients} sent`);
  }
  await sleep(100);
  const extra = (await sinkCount(opts.sink)) - mark - opts.recipients;
  if (extra !== 0 || count < mark + opts.recipients)
    throw new Error(`digest ${id}: sink got ${extra} message(s) too many`);
  const after = opts.worker ? (await probe(opts.worker)).mjmlCalls : null;
  const times = await sinkTimes(opts.sink, mark);
  return {
    id,
    recipients: opts.recipients,
    ms,
    // A loop, not Math.min(...times): a million arguments overflow the stack.
    firstMs: times.reduce((a, b) => (b < a ? b : a), Infinity) - t0,
    mailsPerS: opts.recipients / (ms / 1000),
    mjmlCalls: before !== null && after !== null ? after - before : null,
    cpu: {
      worker: opts.worker ? (cpuSpent(cpu0, cpu1, pids[1]) * 1000) / opts.recipients : null,
      postgres: (postgresSpent(cpu0, cpu1) * 1000) / opts.recipients,
      sink: (cpuSpent(cpu0, cpu1, pids[0]) * 1000) / opts.recipients,
    },
    workerBusy: start && end ? performance.eventLoopUtilization(end.elu, start.elu).utilization : null,
  };
}

export type SocketMode = 'nodelay' | 'default' | 'nagle';

/**
 * Sockets for nodemailer. `nodelay`: exactly as MailTransport hands them out (getSocket, net.connect,
 * setNoDelay(true)). `nagle`: the same socket with Nagle left on; nodemailer 10 calls
 * setNoDelay(true) on every socket it gets, so that call is made a no-op to see what a pool without
 * TCP_NODELAY costs. `default`: no getSocket, nodemailer opens its own sockets.
 */
function socketFactory(port: number, mode: Exclude<SocketMode, 'default'>) {
  return (_opts: unknown, cb: (err: Error | null, s?: { connection: Socket }) => void) => {
    const socket = connect(port, '127.0.0.1');
    if (mode === 'nodelay') socket.setNoDelay(true);
    else socket.setNoDelay = () => socket;
    const onError = (e: Error) => cb(e);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.removeListener('error', onError);
      cb(null, { connection: socket });
    });
  };
}

/** The bytes as a stream that yields them once: nodemailer pipes a stream as it is, where it wraps a Buffer in a PassThrough. */
function oneShot(raw: Buffer): Readable {
  let done = false;
  return new Readable({
    read() {
      if (done) return;
      done = true;
      this.push(raw);
      this.push(null);
    },
  });
}

/**
 * The raw limit: one nodemailer pool (same size as the worker's) sends the same pre-rendered
 * bytes `count` times, two messages queued per connection so no connection ever waits on us.
 */
export async function rawBlast(opts: {
  sink: Sink;
  raw: Buffer;
  count: number;
  connections: number;
  mode: SocketMode;
  timeoutMs: number;
  /** How the bytes are handed to nodemailer: a Buffer, or a stream that yields it once (the worker's form). */
  rawForm?: 'buffer' | 'stream';
}): Promise<RawRun> {
  const transport: Transporter = nodemailer.createTransport({
    pool: true,
    maxConnections: opts.connections,
    maxMessages: 1000,
    host: '127.0.0.1',
    port: opts.sink.port,
    secure: false,
    ...(opts.mode !== 'default' ? { getSocket: socketFactory(opts.sink.port, opts.mode) } : {}),
  } as TransportOptions);
  try {
    return await measuredBlast(opts, async () => {
      let next = 0;
      const lane = async () => {
        for (let i = next++; i < opts.count; i = next++) {
          await transport.sendMail({
            envelope: { from: 'newsletter@spine-health.example', to: [`raw${i}@example.com`] },
            raw: opts.rawForm === 'stream' ? oneShot(opts.raw) : opts.raw,
          });
        }
      };
      await Promise.all(Array.from({ length: opts.connections * 2 }, lane));
    });
  } finally {
    transport.close();
  }
}

/**
 * Runs `send` (which hands `count` messages to SMTP) and measures it against the sink: the time
 * from the start to the sink's last accept, and the CPU of this process and of the sink.
 */
async function measuredBlast(
  opts: { sink: Sink; count: number; timeoutMs: number },
  send: () => Promise<void>,
): Promise<RawRun> {
  const mark = await sinkCount(opts.sink);
  const reached = sinkReached(opts.sink, mark + opts.count, opts.timeoutMs);
  const sinkPid = opts.sink.child.proc.pid ?? 0;
  const cpu0 = cpuSnapshot([sinkPid]);
  const self0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = now();
  await send();
  const { at } = await reached;
  const ms = at - t0;
  const self = process.cpuUsage(self0);
  const busy = performance.eventLoopUtilization(elu0).utilization;
  const cpu1 = cpuSnapshot([sinkPid]);
  return {
    ms,
    mailsPerS: opts.count / (ms / 1000),
    count: opts.count,
    busy,
    cpu: {
      blaster: (self.user + self.system) / opts.count,
      sink: (cpuSpent(cpu0, cpu1, sinkPid) * 1000) / opts.count,
    },
  };
}

/**
 * For information, beside the target's pool: the same bytes over nodemailer's `SMTPConnection`
 * itself (what the worker's sending threads use), one message after another on each of
 * `connections` TCP_NODELAY connections, without the pool's per-message mail object, MIME node
 * and line-ending stream.
 */
export async function connectionBlast(opts: {
  sink: Sink;
  raw: Buffer;
  count: number;
  connections: number;
  timeoutMs: number;
}): Promise<RawRun> {
  const open = async (): Promise<SMTPConnection> => {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(opts.sink.port, '127.0.0.1');
      s.setNoDelay(true);
      s.once('error', reject);
      s.once('connect', () => resolve(s));
    });
    const c = new SMTPConnection({ host: '127.0.0.1', port: opts.sink.port, connection: socket, logger: false });
    await new Promise<void>((resolve, reject) => {
      c.once('error', reject);
      c.connect((err) => (err ? reject(err) : resolve()));
    });
    return c;
  };
  let next = 0;
  const lane = async () => {
    let c: SMTPConnection | null = null;
    let sent = 0;
    try {
      for (let i = next++; i < opts.count; i = next++) {
        // As the pool: a new connection after 1000 messages.
        if (!c || sent >= 1000) {
          c?.quit();
          c = await open();
          sent = 0;
        }
        const conn = c;
        await new Promise<void>((resolve, reject) =>
          conn.send(
            { from: 'newsletter@spine-health.example', to: [`raw${i}@example.com`], size: opts.raw.length },
            opts.raw,
            (err) => (err ? reject(err) : resolve()),
          ),
        );
        sent += 1;
      }
    } finally {
      c?.quit();
    }
  };
  return measuredBlast(opts, async () => {
    await Promise.all(Array.from({ length: opts.connections }, lane));
  });
}

/** `cpu`: µs per message of the blaster (this process: the bench's other work is idle meanwhile) and the sink. */
type RawRun = {
  ms: number;
  mailsPerS: number;
  count: number;
  /** Share of the blast the blaster's main thread was busy. */
  busy: number;
  cpu: { blaster: number; sink: number };
};

export interface Bench1Result {
  backend: 'redis' | 'postgres';
  /** The full-size digest sent before the reps (the worker's compiler still warming), not counted. */
  warmUp: DigestRun;
  digest: DigestRun[];
  rawNodelay: RawRun[];
  rawDefault: RawRun[];
  rawNagle: RawRun[];
  /** Per rep, the same bytes over `SMTPConnection`s without the pool (information, not the target). */
  rawConnections: RawRun[];
  /** Per rep, the NODELAY blast with the bytes handed as a Buffer and as a stream (the faster is `rawNodelay`). */
  rawForms: { buffer: number; stream: number }[];
  ratios: number[];
  ratio: number;
  digestMailsPerS: number;
  rawNodelayMailsPerS: number;
  rawDefaultMailsPerS: number;
  rawNagleMailsPerS: number;
  rawConnectionsMailsPerS: number;
  /** Digest vs `rawConnections`, median of the reps (information). */
  ratioConnections: number;
  mjmlCallsPerDigest: number | null;
  messageBytes: number;
}

/** Interleaved repetitions (digest, raw NODELAY, raw default, raw Nagle) so that load drift hits all alike. */
export async function bench1(opts: {
  backend: 'redis' | 'postgres';
  dbUrl: string;
  apiUrl: string;
  sink: Sink;
  worker: Child;
  raw: Buffer;
  n: number;
  reps: number;
  defaultCount: number;
  nagleCount: number;
  connections: number;
}): Promise<Bench1Result> {
  const digest: DigestRun[] = [];
  const rawNodelay: RawRun[] = [];
  const rawDefault: RawRun[] = [];
  const rawNagle: RawRun[] = [];
  const rawConnections: RawRun[] = [];
  const rawForms: { buffer: number; stream: number }[] = [];
  const ratios: number[] = [];
  const timeoutMs = Math.max(120_000, opts.n * 20);
  const blast = (mode: SocketMode, count: number, rawForm: 'buffer' | 'stream' = 'buffer') =>
    rawBlast({ sink: opts.sink, raw: opts.raw, count, connections: opts.connections, mode, timeoutMs, rawForm });
  const conn = { sink: opts.sink, raw: opts.raw, connections: opts.connections, timeoutMs };
  const digestRun = () =>
    timedDigest({
      dbUrl: opts.dbUrl,
      apiUrl: opts.apiUrl,
      sink: opts.sink,
      slug: 'spine-health',
      recipients: opts.n,
      worker: opts.worker,
      timeoutMs,
    });
  // The blaster runs in this process: warm its JIT once. The worker has sent a digest before this
  // (the memory run's, or a small one); one more of the full size first, because its compiler is
  // still at work in the digest after that one: traced with --trace-opt at 10 000 recipients, the
  // worker compiled 414 functions (1.95 s) in its first digest, 166 (0.68 s) in the second, 41
  // (0.19 s) in the third and 24 (0.07 s) in the fourth. Its figures are logged, not counted.
  await blast('nodelay', Math.min(opts.n, 500));
  await blast('nodelay', Math.min(opts.n, 500), 'stream');
  await connectionBlast({ ...conn, count: Math.min(opts.n, 500) });
  const warmUp = await digestRun();
  log(
    `  [${opts.backend}] warm-up digest (not counted): ${warmUp.mailsPerS.toFixed(0)}/s, first message after ${warmUp.firstMs.toFixed(0)} ms; ` +
      `CPU µs/message: worker ${warmUp.cpu.worker?.toFixed(0) ?? '-'}, PostgreSQL ${warmUp.cpu.postgres.toFixed(0)}, sink ${warmUp.cpu.sink.toFixed(0)}`,
  );
  for (let rep = 1; rep <= opts.reps; rep++) {
    const d = await digestRun();
    digest.push(d);
    // The raw limit is the faster of the two ways to hand nodemailer the bytes, measured each rep.
    const rb = await blast('nodelay', opts.n);
    const rs = await blast('nodelay', opts.n, 'stream');
    rawForms.push({ buffer: rb.mailsPerS, stream: rs.mailsPerS });
    const r = rs.mailsPerS > rb.mailsPerS ? rs : rb;
    rawNodelay.push(r);
    const df = opts.defaultCount > 0 ? await blast('default', opts.defaultCount) : null;
    if (df) rawDefault.push(df);
    const p = await blast('nagle', opts.nagleCount);
    rawNagle.push(p);
    const rc = await connectionBlast({ ...conn, count: opts.n });
    rawConnections.push(rc);
    ratios.push(d.mailsPerS / r.mailsPerS);
    log(
      `  [${opts.backend}] rep ${rep}: digest ${d.mailsPerS.toFixed(0)}/s (${(d.ms / 1000).toFixed(2)} s, first message after ${d.firstMs.toFixed(0)} ms, mjml ${d.mjmlCalls}), ` +
        `raw NODELAY ${r.mailsPerS.toFixed(0)}/s (bytes as a Buffer ${rb.mailsPerS.toFixed(0)}/s, as a stream ${rs.mailsPerS.toFixed(0)}/s), nodemailer default ${df ? df.mailsPerS.toFixed(0) : '-'}/s, ` +
        `Nagle ${p.mailsPerS.toFixed(0)}/s, SMTPConnection ${rc.mailsPerS.toFixed(0)}/s → ratio ${(d.mailsPerS / r.mailsPerS).toFixed(3)}; ` +
        `CPU µs/message: worker ${d.cpu.worker?.toFixed(0) ?? '-'}, PostgreSQL ${d.cpu.postgres.toFixed(0)}, sink ${d.cpu.sink.toFixed(0)}; ` +
        `main thread busy: worker ${d.workerBusy === null ? '-' : `${(d.workerBusy * 100).toFixed(0)} %`}, blaster ${(r.busy * 100).toFixed(0)} %; ` +
        `raw blaster ${r.cpu.blaster.toFixed(0)}, sink ${r.cpu.sink.toFixed(0)}; SMTPConnection blaster ${rc.cpu.blaster.toFixed(0)}`,
    );
  }
  const calls = digest.map((d) => d.mjmlCalls).filter((c): c is number => c !== null);
  return {
    backend: opts.backend,
    warmUp,
    digest,
    rawNodelay,
    rawDefault,
    rawNagle,
    rawConnections,
    rawForms,
    ratios,
    ratio: median(ratios),
    digestMailsPerS: median(digest.map((d) => d.mailsPerS)),
    rawNodelayMailsPerS: median(rawNodelay.map((r) => r.mailsPerS)),
    rawDefaultMailsPerS: median(rawDefault.map((r) => r.mailsPerS)),
    rawNagleMailsPerS: median(rawNagle.map((r) => r.mailsPerS)),
    rawConnectionsMailsPerS: median(rawConnections.map((r) => r.mailsPerS)),
    ratioConnections: median(digest.map((d, i) => d.mailsPerS / rawConnections[i].mailsPerS)),
    mjmlCallsPerDigest: calls.length ? Math.max(...calls) : null,
    messageBytes: opts.raw.length,
  };
}

// ---------------------------------------------------------------- memory

export class RedisMemory {
  private timer?: NodeJS.Timeout;
  peak = 0;
  constructor(private readonly redis: Redis) {}

  async usedMemory(): Promise<number> {
    const info = await this.redis.info('memory');
    return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0);
  }

  start(): void {
    this.peak = 0;
    const tick = async () => {
      this.peak = Math.max(this.peak, await this.usedMemory().catch(() => 0));
    };
    void tick();
    this.timer = setInterval(() => void tick(), 100);
  }

  async stop(): Promise<number> {
    clearInterval(this.timer);
    this.peak = Math.max(this.peak, await this.usedMemory());
    return this.peak;
  }
}

export interface MemoryRun {
  recipients: number;
  ms: number;
  workerHwmKb: number;
  workerRssAfterKb: number;
  /** V8 heap in use after a full GC once the digest is done (what is really kept). */
  liveHeapMb: number;
  /** Highest VmRSS seen in each quarter of the digest's duration (sampled every 100 ms), kB. */
  rssByQuarterKb: number[];
  redisBaseline: number;
  redisPeak: number;
}

/**
 * One digest by a fresh worker (so VmHWM is this digest's peak), with Redis used_memory sampled
 * every 100 ms. The caller starts the worker; the first digest also waits for it to boot.
 */
export async function memoryRun(opts: {
  dbUrl: string;
  apiUrl: string;
  sink: Sink;
  worker: Child;
  slug: string;
  recipients: number;
  redisMem: RedisMemory;
}): Promise<MemoryRun> {
  const redisBaseline = await opts.redisMem.usedMemory();
  opts.redisMem.start();
  const samples: [number, number][] = [];
  const sampler = setInterval(() => samples.push([now(), procStatusKb(opts.worker.proc.pid!, 'VmRSS')]), 100);
  const started = now();
  const run = await timedDigest({
    dbUrl: opts.dbUrl,
    apiUrl: opts.apiUrl,
    sink: opts.sink,
    slug: opts.slug,
    recipients: opts.recipients,
    timeoutMs: Math.max(180_000, opts.recipients * 20),
  });
  clearInterval(sampler);
  const span = run.ms;
  const rssByQuarterKb = [0, 0, 0, 0];
  for (const [t, kb] of samples) {
    const q = Math.min(3, Math.max(0, Math.floor(((t - started) / span) * 4)));
    rssByQuarterKb[q] = Math.max(rssByQuarterKb[q], kb);
  }
  await sleep(300);
  const redisPeak = await opts.redisMem.stop();
  const pid = opts.worker.proc.pid!;
  const workerHwmKb = procStatusKb(pid, 'VmHWM');
  const workerRssAfterKb = procStatusKb(pid, 'VmRSS');
  const live = await probe(opts.worker, true);
  return {
    recipients: opts.recipients,
    ms: run.ms,
    workerHwmKb,
    workerRssAfterKb,
    liveHeapMb: live.heapUsed / 1048576,
    rssByQuarterKb,
    redisBaseline,
    redisPeak,
  };
}

/** Asks the sink for the bytes of the next message it accepts (the one the raw blast re-sends). */
export function captureNext(sink: Sink): Promise<Buffer> {
  return sink.child
    .request<{ raw: string }>({ cmd: 'capture' }, 'captured', 600_000)
    .then((m) => Buffer.from(m.raw, 'base64'));
}

export { Redis };
