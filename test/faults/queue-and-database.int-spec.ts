import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DIGEST_QUEUE, MAIL_QUEUE } from '#queue/jobs.js';
import { admin, waitUntil } from '../support/admin.js';
import { addAudience } from '../support/audience.js';
import { query } from '../support/db.js';
import { postJson, sleep } from '../support/http.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { type Stack, useStack } from '../support/stack.js';

// The test process runs api, worker and SMTP sink on one event loop: a send can take seconds here,
// so claims count as stale only after 30 s (longer than a sender keeps retrying its ledger write).
const figures: Record<string, unknown> = {};
function record(name: string, value: unknown): void {
  figures[name] = value;
  mkdirSync('artifacts', { recursive: true });
  writeFileSync('artifacts/faults-queue-db.json', JSON.stringify(figures, null, 2));
}

const FAST_RECONCILE = {
  RECONCILE_INTERVAL_MS: '300',
  RECONCILE_AFTER_MS: '3000',
  DELIVERY_STALE_SECONDS: '30',
  JOB_LOCK_MS: '2000',
};

const REDIS_DOWN_MS = 60_000;
const DB_DOWN_MS = 20_000;

/**
 * One app stack (api + worker in this process) on a Redis of its own, to be stopped under it.
 * Two run side by side, so the minute of outage is spent once: Redis restarted from its
 * append-only file (the runbook's setting) and Redis restarted empty.
 */
interface OutageStack {
  label: 'aof' | 'empty';
  stack: Stack;
}

function useOutageStack(label: OutageStack['label']): OutageStack {
  const stack = useStack({
    label: `redis_down_${label}`,
    smtp: { parse: false },
    ownRedis: { appendOnly: label === 'aof' },
    env: { ...FAST_RECONCILE, PUBLIC_POSTS_PER_IP_PER_MINUTE: '100000', SEND_RATE_PER_SECOND: '10' },
  });
  return { label, stack };
}

/** Signs up a new address every `everyMs` until stopped; remembers which ones got their 202. */
function signupStream({ label, stack }: OutageStack, everyMs: number) {
  const accepted: { email: string; at: number }[] = [];
  const refused: { email: string; status: number }[] = [];
  let n = 0;
  let running = true;
  const one = async (email: string) => {
    const res = await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email }).catch(() => null);
    if (res?.status === 202) accepted.push({ email, at: Date.now() });
    else refused.push({ email, status: res?.status ?? 0 });
    await res?.body?.cancel();
  };
  const loop = (async () => {
    while (running) {
      await one(`${label}-${(n += 1)}@example.com`);
      await sleep(everyMs);
    }
  })();
  return {
    accepted,
    refused,
    /** Many at once: some of them are queued in Redis, not yet sent, when it dies. */
    burst: (count: number) => Promise.all(Array.from({ length: count }, () => one(`${label}-${(n += 1)}@example.com`))),
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

describe('Redis stopped for 60 s while signups arrive', () => {
  const stacks = [useOutageStack('aof'), useOutageStack('empty')];

  const outage = async ({ label, stack }: OutageStack) => {
    const stream = signupStream({ label, stack }, 400);
    await stack.smtp.waitFor((m) => m.length >= 5, 20_000);
    // A burst faster than the send rate: confirmations wait in Redis when it dies.
    await stream.burst(40);
    const unhandled = async () =>
      (
        await query<{ n: number }>(
          stack.db.url,
          `SELECT count(*)::int AS n FROM outbox WHERE dispatched_at IS NOT NULL AND handled_at IS NULL`,
        )
      )[0].n;
    await waitUntil(unhandled, (n) => n >= 20, 10_000, 'confirmations queued in Redis');
    await stack.redis.stop();
    const stoppedAt = Date.now();
    const queued = await unhandled();
    await sleep(REDIS_DOWN_MS / 2);
    const healthWhileDown = (await fetch(`${stack.apps.baseUrl}/health`)).status;
    await sleep(REDIS_DOWN_MS / 2);
    const whileDown = new Set(stream.accepted.filter((a) => a.at > stoppedAt).map((a) => a.email));
    // Jobs a worker already held may finish meanwhile; nothing signed up during the outage can.
    const mailedWhileDown = stack.smtp.messages.filter((m) => m.envelope.to.some((t) => whileDown.has(t))).length;
    await stack.redis.start();
    const backAt = Date.now();
    const probe = new Redis(stack.redis.url);
    const keysWhenBack = await probe.dbsize();
    await probe.quit();
    await sleep(3000);
    await stream.stop();
    const wanted = new Set(stream.accepted.map((a) => a.email));
    await stack.smtp.waitFor(
      (m) => new Set(m.flatMap((x) => x.envelope.to).filter((t) => wanted.has(t))).size >= wanted.size,
      120_000,
    );
    const recoveredMs = Date.now() - backAt;
    // Long enough for the reconciler to republish anything it still thought lost.
    await sleep(Number(FAST_RECONCILE.RECONCILE_AFTER_MS) + 2000);
    const per = new Map<string, number>();
    for (const m of stack.smtp.messages) for (const t of m.envelope.to) per.set(t, (per.get(t) ?? 0) + 1);
    return {
      label,
      downSeconds: REDIS_DOWN_MS / 1000,
      accepted: stream.accepted.length,
      acceptedWhileDown: whileDown.size,
      refused: stream.refused.length,
      queuedInRedisAtStop: queued,
      healthWhileDown,
      keysWhenBack,
      mailedWhileDown,
      confirmed: [...wanted].filter((e) => per.get(e) === 1).length,
      missing: [...wanted].filter((e) => !per.has(e)).length,
      duplicates: [...per.values()].filter((n) => n > 1).length,
      strays: [...per.keys()].filter((e) => !wanted.has(e)).length,
      secondsToLastConfirmationAfterRestart: Math.round(recoveredMs / 100) / 10,
    };
  };

  it(
    'every 202 leads to exactly one confirmation after Redis is back, with its data or empty',
    async () => {
      const results = await Promise.all(stacks.map(outage));
      record('redisDown', results);
      for (const r of results) {
        expect(r.refused).toBe(0);
        expect(r.queuedInRedisAtStop).toBeGreaterThanOrEqual(10);
        expect(r.healthWhileDown).toBe(503);
        // The AOF really brought the data back (the other one really came back empty).
        if (r.label === 'aof') expect(r.keysWhenBack).toBeGreaterThan(0);
        // A signup every 400 ms: most of the outage's worth arrived while Redis was away.
        expect(r.acceptedWhileDown).toBeGreaterThan((REDIS_DOWN_MS / 400) * 0.6);
        expect(r.mailedWhileDown).toBe(0);
        expect(r.missing).toBe(0);
        expect(r.duplicates).toBe(0);
        expect(r.strays).toBe(0);
        expect(r.confirmed).toBe(r.accepted);
      }
    },
    REDIS_DOWN_MS + 180_000,
  );
});

describe('Redis comes back empty', () => {
  const stack = useStack({
    label: 'redis_empty',
    smtp: { parse: false },
    ownRedis: {},
    env: { ...FAST_RECONCILE, DIGEST_BATCH_SIZE: '50' },
    prepare: () => addAudience(stack.db.url, { prefix: 'empty', count: 600, newsletter: 'spine-health' }),
  });

  const wipe = async () => {
    const r = new Redis(stack.redis.url);
    await r.flushall();
    await r.quit();
  };

  it('a confirmation whose job was lost is rebuilt from the outbox and sent once', async () => {
    const mail = stack.apps.worker!.get<Queue>(getQueueToken(MAIL_QUEUE));
    await mail.pause();
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'lost-job@example.com' });
    await waitUntil(
      () => query<{ n: number }>(stack.db.url, `SELECT count(*)::int AS n FROM outbox WHERE dispatched_at IS NOT NULL`),
      (r) => r[0].n >= 1,
      10_000,
      'event dispatched',
    );
    await wipe(); // the job and the pause flag are gone with it
    await stack.smtp.waitFor(() => stack.smtp.to('lost-job@example.com').length >= 1, 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(stack.smtp.to('lost-job@example.com')).toHaveLength(1);
  });

  it('a digest whose batch jobs were lost mid-send is resumed and completes once per reader', async () => {
    const digests = stack.apps.worker!.get<Queue>(getQueueToken(DIGEST_QUEUE));
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    await stack.smtp.waitFor((m) => m.length >= 100, 20_000);
    await digests.pause();
    await wipe();
    await waitUntil(
      () => admin<{ status: string }>(stack.apps.baseUrl, 'GET', `/v1/digests/${created.body.id}`),
      (r) => r.body.status === 'sent',
      60_000,
      'resumed digest',
    );
    const per = new Map<string, number>();
    for (const m of stack.smtp.messages)
      for (const t of m.envelope.to) if (t.startsWith('empty')) per.set(t, (per.get(t) ?? 0) + 1);
    expect(per.size).toBe(600);
    const dupes = [...per.values()].filter((n) => n > 1).length;
    record('redisEmptyDigest', { recipients: 600, delivered: per.size, duplicates: dupes });
    // Only a message in flight when the jobs vanished may go twice.
    expect(dupes).toBeLessThanOrEqual(5);
  });
});

describe('PostgreSQL unreachable during a send', () => {
  const stack = useStack({
    label: 'pg_down',
    queue: 'redis',
    worker: false,
    smtp: { parse: false },
    env: { ...FAST_RECONCILE, SEND_RATE_PER_SECOND: '300' },
    prepare: () => addAudience(stack.db.url, { prefix: 'dbdown', count: 1500, newsletter: 'spine-health' }),
  });
  let proxy: TcpProxy;

  beforeAll(async () => {
    proxy = await new TcpProxy('127.0.0.1', Number(new URL(stack.db.url).port || 5432)).start();
    const viaProxy = new URL(stack.db.url);
    viaProxy.port = String(proxy.port);
    viaProxy.hostname = '127.0.0.1';
    // The api talks to PostgreSQL directly; the worker (relay, sender, reconciler) through the proxy.
    await stack.apps.startWorker({ ...stack.config, db: { url: viaProxy.toString() } });
    // The worker closes cleanly only with its database back.
    stack.onTeardown(() => proxy.restore());
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  it(
    `sends nothing without its ledger claim while the database is away ${DB_DOWN_MS / 1000} s, and resumes by itself`,
    async () => {
      const created = await admin<{ id: string }>(
        stack.apps.baseUrl,
        'POST',
        '/v1/newsletters/spine-health/digests',
        {},
      );
      await stack.smtp.waitFor((m) => m.length >= 300, 30_000);
      const beforeCut = stack.smtp.messages.length;
      proxy.cut();
      const cutAt = Date.now();
      // What was already claimed and handed to SMTP may still arrive in the first second…
      await sleep(1000);
      const atCut = stack.smtp.messages.length;
      await sleep(DB_DOWN_MS - 1000);
      // …after that nothing can be claimed while PostgreSQL is away, so nothing goes out.
      const duringCut = stack.smtp.messages.length - atCut;
      proxy.restore();
      const downMs = Date.now() - cutAt;
      await waitUntil(
        () => admin<{ status: string }>(stack.apps.baseUrl, 'GET', `/v1/digests/${created.body.id}`),
        (r) => r.body.status === 'sent',
        90_000,
        'digest after outage',
      );
      const resumedSeconds = Math.round((Date.now() - cutAt - downMs) / 100) / 10;
      const per = new Map<string, number>();
      for (const m of stack.smtp.messages) for (const t of m.envelope.to) per.set(t, (per.get(t) ?? 0) + 1);
      const [{ sent }] = await query<{ sent: number }>(
        stack.db.url,
        `SELECT count(*)::int AS sent FROM deliveries WHERE digest_id = $1 AND status = 'sent'`,
        [created.body.id],
      );
      record('databaseDown', {
        recipients: 1500,
        delivered: per.size,
        messages: stack.smtp.messages.length,
        sentBeforeCut: beforeCut,
        inFlightAtCut: atCut - beforeCut,
        sentWhileDown: duringCut,
        outageSeconds: Math.round(downMs / 100) / 10,
        secondsToFinishAfterRestore: resumedSeconds,
        duplicates: stack.smtp.messages.length - per.size,
      });
      expect(duringCut).toBe(0);
      expect(per.size).toBe(1500);
      expect(sent).toBe(1500);
      // Every message that went out has its ledger row; extra copies only for messages in flight at the cut.
      expect(stack.smtp.messages.length - per.size).toBeLessThanOrEqual(20);
    },
    DB_DOWN_MS + 150_000,
  );
});

describe('policy rejections (5.7.x)', () => {
  const stack = useStack({
    label: 'policy',
    smtp: { parse: false },
    env: { DIGEST_POLICY_FAILURE_LIMIT: '5', SEND_RATE_PER_SECOND: '200', DIGEST_BATCH_SIZE: '20' },
    prepare: () => addAudience(stack.db.url, { prefix: 'pol', count: 200, newsletter: 'sports-health' }),
  });

  it('suppress no one, and after the configured number the digest stops and says why', async () => {
    stack.smtp.rcptHook = () => ({ code: 554, message: '5.7.1 Service unavailable; client host blocked by policy' });
    const created = await admin<{ id: string }>(
      stack.apps.baseUrl,
      'POST',
      '/v1/newsletters/sports-health/digests',
      {},
    );
    const d = await waitUntil(
      () =>
        admin<{ status: string; reason: string; failed: number }>(
          stack.apps.baseUrl,
          'GET',
          `/v1/digests/${created.body.id}`,
        ),
      (r) => r.body.status === 'failed',
      30_000,
      'paused digest',
    );
    expect(d.body.reason).toMatch(/^paused: \d+ messages were rejected by the receiving servers' policy \(5\.7\.x\)/);
    expect(d.body.failed).toBeLessThan(200);
    const [{ n }] = await query<{ n: number }>(stack.db.url, `SELECT count(*)::int AS n FROM suppressions`);
    expect(n).toBe(0);
    const [{ bounced }] = await query<{ bounced: number }>(
      stack.db.url,
      `SELECT count(*)::int AS bounced FROM subscribers WHERE status <> 'ok'`,
    );
    expect(bounced).toBe(0);
  });
});
