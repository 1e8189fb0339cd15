import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DIGEST_QUEUE, MAIL_QUEUE } from '../../libs/queue/src/jobs.js';
import { admin, waitUntil } from '../support/admin.js';
import { type RunningApps, startApps, testConfig } from '../support/apps.js';
import { addAudience } from '../support/audience.js';
import { createTestDatabase, query, seedDatabase } from '../support/db.js';
import { postJson } from '../support/http.js';
import { ThrowawayRedis, freePort } from '../support/redis-server.js';
import { TestSmtp } from '../support/smtp.js';
import { TcpProxy } from '../support/tcp-proxy.js';

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

describe('Redis comes back empty', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let redis: ThrowawayRedis;
  let apps: RunningApps;

  beforeAll(async () => {
    db = await createTestDatabase('redis_empty');
    await seedDatabase(db.url);
    smtp = await new TestSmtp({ parse: false }).start();
    redis = new ThrowawayRedis(await freePort());
    await redis.start();
    await addAudience(db.url, { prefix: 'empty', count: 600, newsletter: 'spine-health' });
    const config = testConfig({
      dbUrl: db.url,
      smtpUrl: smtp.url,
      backend: 'redis',
      env: { ...FAST_RECONCILE, DIGEST_BATCH_SIZE: '50' },
    });
    config.queue.redisUrl = redis.url;
    apps = await startApps(config);
  });

  afterAll(async () => {
    await apps?.close();
    await redis?.stop();
    await smtp?.stop();
    await db?.drop();
  });

  const wipe = async () => {
    const r = new Redis(redis.url);
    await r.flushall();
    await r.quit();
  };

  it('a confirmation whose job was lost is rebuilt from the outbox and sent once', async () => {
    const mail = apps.worker!.get<Queue>(getQueueToken(MAIL_QUEUE));
    await mail.pause();
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'lost-job@example.com' });
    await waitUntil(
      () => query<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM outbox WHERE dispatched_at IS NOT NULL`),
      (r) => r[0].n >= 1,
      10_000,
      'event dispatched',
    );
    await wipe(); // the job and the pause flag are gone with it
    await smtp.waitFor(() => smtp.to('lost-job@example.com').length >= 1, 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(smtp.to('lost-job@example.com')).toHaveLength(1);
  });

  it('a digest whose batch jobs were lost mid-send is resumed and completes once per reader', async () => {
    const digests = apps.worker!.get<Queue>(getQueueToken(DIGEST_QUEUE));
    const created = await admin<{ id: string }>(apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    await smtp.waitFor((m) => m.length >= 100, 20_000);
    await digests.pause();
    await wipe();
    await waitUntil(
      () => admin<{ status: string }>(apps.baseUrl, 'GET', `/v1/digests/${created.body.id}`),
      (r) => r.body.status === 'sent',
      60_000,
      'resumed digest',
    );
    const per = new Map<string, number>();
    for (const m of smtp.messages)
      for (const t of m.envelope.to) if (t.startsWith('empty')) per.set(t, (per.get(t) ?? 0) + 1);
    expect(per.size).toBe(600);
    const dupes = [...per.values()].filter((n) => n > 1).length;
    record('redisEmptyDigest', { recipients: 600, delivered: per.size, duplicates: dupes });
    // Only a message in flight when the jobs vanished may go twice.
    expect(dupes).toBeLessThanOrEqual(5);
  });
});

describe('PostgreSQL unreachable during a send', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let proxy: TcpProxy;
  let apps: RunningApps;

  beforeAll(async () => {
    db = await createTestDatabase('pg_down');
    await seedDatabase(db.url);
    smtp = await new TestSmtp({ parse: false }).start();
    await addAudience(db.url, { prefix: 'dbdown', count: 1500, newsletter: 'spine-health' });
    proxy = await new TcpProxy('127.0.0.1', Number(new URL(db.url).port || 5432)).start();
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    viaProxy.hostname = '127.0.0.1';
    // The api talks to PostgreSQL directly; the worker (relay, sender, reconciler) through the proxy.
    const apiConfig = testConfig({
      dbUrl: db.url,
      smtpUrl: smtp.url,
      backend: 'redis',
      env: { ...FAST_RECONCILE, SEND_RATE_PER_SECOND: '300' },
    });
    apps = await startApps(apiConfig, { worker: false });
    const workerConfig = { ...apiConfig, db: { url: viaProxy.toString() } };
    const { createWorker } = await import('../../apps/worker/src/bootstrap.js');
    const worker = await createWorker(workerConfig);
    await worker.init();
    apps.worker = worker;
  });

  afterAll(async () => {
    proxy?.restore();
    await apps?.close();
    await proxy?.stop();
    await smtp?.stop();
    await db?.drop();
  });

  it('sends nothing without its ledger claim while the database is away, and resumes by itself', async () => {
    const created = await admin<{ id: string }>(apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    await smtp.waitFor((m) => m.length >= 300, 30_000);
    proxy.cut();
    await new Promise((r) => setTimeout(r, 1000));
    const atCut = smtp.messages.length;
    await new Promise((r) => setTimeout(r, 9000));
    // Nothing can be claimed while PostgreSQL is away: at most what was already handed to SMTP arrives.
    expect(smtp.messages.length).toBe(atCut);
    proxy.restore();
    await waitUntil(
      () => admin<{ status: string }>(apps.baseUrl, 'GET', `/v1/digests/${created.body.id}`),
      (r) => r.body.status === 'sent',
      90_000,
      'digest after outage',
    );
    const per = new Map<string, number>();
    for (const m of smtp.messages) for (const t of m.envelope.to) per.set(t, (per.get(t) ?? 0) + 1);
    expect(per.size).toBe(1500);
    const [{ sent }] = await query<{ sent: number }>(
      db.url,
      `SELECT count(*)::int AS sent FROM deliveries WHERE digest_id = $1 AND status = 'sent'`,
      [created.body.id],
    );
    expect(sent).toBe(1500);
    record('databaseDown', {
      recipients: 1500,
      delivered: per.size,
      messages: smtp.messages.length,
      sentBeforeCut: atCut,
      outageSeconds: 10,
    });
    // Every message that went out has its ledger row; extra copies only for messages in flight at the cut.
    expect(smtp.messages.length - per.size).toBeLessThanOrEqual(20);
  });
});

describe('policy rejections (5.7.x)', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let apps: RunningApps;

  beforeAll(async () => {
    db = await createTestDatabase('policy');
    await seedDatabase(db.url);
    smtp = await new TestSmtp({ parse: false }).start();
    await addAudience(db.url, { prefix: 'pol', count: 200, newsletter: 'sports-health' });
    apps = await startApps(
      testConfig({
        dbUrl: db.url,
        smtpUrl: smtp.url,
        backend: 'postgres',
        env: { DIGEST_POLICY_FAILURE_LIMIT: '5', SEND_RATE_PER_SECOND: '200', DIGEST_BATCH_SIZE: '20' },
      }),
    );
  });

  afterAll(async () => {
    await apps?.close();
    await smtp?.stop();
    await db?.drop();
  });

  it('suppress no one, and after the configured number the digest stops and says why', async () => {
    smtp.rcptHook = () => ({ code: 554, message: '5.7.1 Service unavailable; client host blocked by policy' });
    const created = await admin<{ id: string }>(apps.baseUrl, 'POST', '/v1/newsletters/sports-health/digests', {});
    const d = await waitUntil(
      () =>
        admin<{ status: string; reason: string; failed: number }>(
          apps.baseUrl,
          'GET',
          `/v1/digests/${created.body.id}`,
        ),
      (r) => r.body.status === 'failed',
      30_000,
      'paused digest',
    );
    expect(d.body.reason).toMatch(/^paused: \d+ messages were rejected by the receiving servers' policy \(5\.7\.x\)/);
    expect(d.body.failed).toBeLessThan(200);
    const [{ n }] = await query<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM suppressions`);
    expect(n).toBe(0);
    const [{ bounced }] = await query<{ bounced: number }>(
      db.url,
      `SELECT count(*)::int AS bounced FROM subscribers WHERE status <> 'ok'`,
    );
    expect(bounced).toBe(0);
  });
});
