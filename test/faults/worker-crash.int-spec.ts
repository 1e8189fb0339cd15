import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { admin, waitUntil } from '../support/admin.js';
import { ADMIN_KEY, type RunningApps, startApps, testConfig } from '../support/apps.js';
import { addAudience } from '../support/audience.js';
import { TEST_REDIS_URL, createTestDatabase, query, seedDatabase } from '../support/db.js';
import { TestSmtp } from '../support/smtp.js';
import { WorkerProcess, buildOnce } from '../support/worker-process.js';

/**
 * Fault injection with real worker processes: kill -9 three times during a 5 000-recipient
 * digest, and SIGTERM during a send. Figures go to artifacts/faults.json.
 */
describe('a worker killed or stopped mid-send', () => {
  const N = 5000;
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let apps: RunningApps;
  let env: Record<string, string>;
  const report: Record<string, unknown> = {};

  const counts = () => {
    const m = new Map<string, number>();
    for (const msg of smtp.messages) for (const t of msg.envelope.to) m.set(t, (m.get(t) ?? 0) + 1);
    return m;
  };
  const inFlight = async (digestId: string) =>
    (
      await query<{ n: number }>(
        db.url,
        `SELECT count(*)::int AS n FROM deliveries WHERE digest_id = $1 AND status = 'sending'`,
        [digestId],
      )
    )[0].n;
  const digest = (id: string) =>
    admin<{ status: string; sent: number }>(apps.baseUrl, 'GET', `/v1/digests/${id}`).then((r) => r.body);

  beforeAll(async () => {
    buildOnce();
    db = await createTestDatabase('faults');
    await seedDatabase(db.url);
    smtp = await new TestSmtp({ parse: false }).start();
    await addAudience(db.url, { prefix: 'crash', count: N, newsletter: 'spine-health' });
    const secret = randomBytes(32).toString('hex');
    const prefix = `mrfault-${randomBytes(4).toString('hex')}`;
    env = {
      NODE_ENV: 'test',
      DATABASE_URL: db.url,
      SMTP_URL: smtp.url,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
      APP_SECRET: secret,
      PUBLIC_URL: 'http://mailroom.test',
      LOG_LEVEL: 'warn',
      OUTBOX_POLL_MS: '50',
      JOB_BACKOFF_MS: '200',
      JOB_LOCK_MS: '2000',
      DELIVERY_STALE_SECONDS: '3',
      RECONCILE_INTERVAL_MS: '1000',
      RECONCILE_AFTER_MS: '5000',
      SEND_RATE_PER_SECOND: '100000',
      DIGEST_BATCH_SIZE: '250',
      SMTP_POOL_SIZE: '5',
    };
    const config = testConfig({ dbUrl: db.url, smtpUrl: smtp.url, backend: 'redis', env });
    config.appSecret = secret;
    config.queue.prefix = prefix;
    apps = await startApps(config, { worker: false });
  });

  afterAll(async () => {
    await apps?.close();
    await smtp?.stop();
    await db?.drop();
    mkdirSync('artifacts', { recursive: true });
    writeFileSync('artifacts/faults.json', JSON.stringify(report, null, 2));
  });

  it('kill -9 three times during a 5 000-recipient digest: everyone gets it, duplicates ≤ messages in flight', async () => {
    let worker = new WorkerProcess(env).start();
    const created = await admin<{ id: string }>(apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    const id = created.body.id;
    const kills: { atMessages: number; inFlight: number }[] = [];
    for (let k = 1; k <= 3; k += 1) {
      const target = Math.min(N - 200, smtp.messages.length + 900);
      await smtp.waitFor((m) => m.length >= target, 60_000);
      const flying = await inFlight(id);
      await worker.stop('SIGKILL');
      kills.push({ atMessages: smtp.messages.length, inFlight: flying });
      worker = new WorkerProcess(env).start();
    }
    await waitUntil(
      () => digest(id),
      (d) => d.status === 'sent',
      120_000,
      'digest sent after crashes',
    );
    await worker.stop('SIGTERM');

    const c = counts();
    const duplicates = [...c.values()].reduce((sum, n) => sum + (n - 1), 0);
    const maxInFlight = kills.reduce((s, k) => s + Math.max(k.inFlight, 0), 0);
    report.kill9 = {
      recipients: N,
      delivered: c.size,
      messages: smtp.messages.length,
      duplicates,
      kills,
      maxCopies: Math.max(...c.values()),
    };
    expect(c.size).toBe(N);
    expect(Math.max(...c.values())).toBeLessThan(3);
    // Every duplicate was in flight at a kill; allow one pool's worth of sockets per kill on top of what was claimed.
    expect(duplicates).toBeLessThanOrEqual(maxInFlight + 3 * 5);
  });

  it('SIGTERM during a send: in-flight messages finish within 30 s, nothing is left claimed, no duplicates after restart', async () => {
    await admin(apps.baseUrl, 'POST', '/v1/articles', {
      url: 'https://www.spine-health.example/news/graceful',
      title: 'Graceful shutdown',
      publishedAt: new Date().toISOString(),
      newsletters: ['spine-health'],
    });
    const slow = { ...env, SEND_RATE_PER_SECOND: '400' };
    let worker = new WorkerProcess(slow).start();
    const start = smtp.messages.length;
    const created = await admin<{ id: string }>(apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    await smtp.waitFor((m) => m.length >= start + 600, 60_000);
    const tookMs = await worker.stop('SIGTERM');
    // Nest closes everything, then re-raises the signal: exiting by SIGTERM is the graceful path.
    expect(worker.exitCode === 0 || worker.signal === 'SIGTERM').toBe(true);
    expect(tookMs).toBeLessThan(30_000);
    expect(await inFlight(created.body.id)).toBe(0);
    const atStop = smtp.messages.length - start;
    worker = new WorkerProcess({ ...env }).start();
    await waitUntil(
      () => digest(created.body.id),
      (d) => d.status === 'sent',
      120_000,
      'digest sent after restart',
    );
    await worker.stop('SIGTERM');
    const got = new Map<string, number>();
    for (const m of smtp.messages.slice(start)) for (const t of m.envelope.to) got.set(t, (got.get(t) ?? 0) + 1);
    report.sigterm = {
      stopMs: tookMs,
      sentBeforeStop: atStop,
      delivered: got.size,
      duplicates: [...got.values()].filter((n) => n > 1).length,
    };
    expect(got.size).toBe(N);
    expect([...got.values()].every((n) => n === 1)).toBe(true);
  });

  it('the admin key still guards the API in this setup', async () => {
    expect((await fetch(`${apps.baseUrl}/v1/digests/1`)).status).toBe(401);
    expect(
      (await fetch(`${apps.baseUrl}/v1/digests/1`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status,
    ).toBe(200);
  });
});
