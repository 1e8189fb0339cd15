import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { admin, waitUntil } from '../support/admin.js';
import { ADMIN_KEY } from '../support/apps.js';
import { addAudience } from '../support/audience.js';
import { query } from '../support/db.js';
import { WorkerProcess, buildOnce } from '../support/worker-process.js';
import { useStack } from '../support/stack.js';

/**
 * Fault injection with real worker processes: kill -9 three times during a 5 000-recipient
 * digest, and SIGTERM during a send. Figures go to artifacts/faults.json.
 */
describe('a worker killed or stopped mid-send', () => {
  const N = 5000;
  // Before the stack: the worker processes run the build.
  beforeAll(() => buildOnce());
  const stack = useStack({
    label: 'faults',
    queue: 'redis',
    worker: false,
    smtp: { parse: false },
    env: {
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
    },
    prepare: () => addAudience(stack.db.url, { prefix: 'crash', count: N, newsletter: 'spine-health' }),
  });
  /** The worker processes' environment: this stack's database, SMTP sink, queue prefix and secret. */
  let env: Record<string, string>;
  const report: Record<string, unknown> = {};

  const counts = () => {
    const m = new Map<string, number>();
    for (const msg of stack.smtp.messages) for (const t of msg.envelope.to) m.set(t, (m.get(t) ?? 0) + 1);
    return m;
  };
  const inFlight = async (digestId: string) =>
    (
      await query<{ n: number }>(
        stack.db.url,
        `SELECT count(*)::int AS n FROM deliveries WHERE digest_id = $1 AND status = 'sending'`,
        [digestId],
      )
    )[0].n;
  const digest = (id: string) =>
    admin<{ status: string; sent: number }>(stack.apps.baseUrl, 'GET', `/v1/digests/${id}`).then((r) => r.body);

  beforeAll(() => {
    env = stack.processEnv();
  });

  afterAll(async () => {
    mkdirSync('artifacts', { recursive: true });
    writeFileSync('artifacts/faults.json', JSON.stringify(report, null, 2));
  });

  it('kill -9 three times during a 5 000-recipient digest: everyone gets it, duplicates ≤ messages in flight', async () => {
    let worker = new WorkerProcess(env).start();
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    const id = created.body.id;
    const kills: { atMessages: number; inFlight: number }[] = [];
    for (let k = 1; k <= 3; k += 1) {
      const target = Math.min(N - 200, stack.smtp.messages.length + 900);
      await stack.smtp.waitFor((m) => m.length >= target, 60_000);
      const flying = await inFlight(id);
      await worker.stop('SIGKILL');
      kills.push({ atMessages: stack.smtp.messages.length, inFlight: flying });
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
      messages: stack.smtp.messages.length,
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
    await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
      url: 'https://www.spine-health.example/news/graceful',
      title: 'Graceful shutdown',
      publishedAt: new Date().toISOString(),
      newsletters: ['spine-health'],
    });
    const slow = { ...env, SEND_RATE_PER_SECOND: '400' };
    let worker = new WorkerProcess(slow).start();
    const start = stack.smtp.messages.length;
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    await stack.smtp.waitFor((m) => m.length >= start + 600, 60_000);
    const tookMs = await worker.stop('SIGTERM');
    // Nest closes everything, then re-raises the signal: exiting by SIGTERM is the graceful path.
    expect(worker.exitCode === 0 || worker.signal === 'SIGTERM').toBe(true);
    expect(tookMs).toBeLessThan(30_000);
    expect(await inFlight(created.body.id)).toBe(0);
    const atStop = stack.smtp.messages.length - start;
    worker = new WorkerProcess({ ...env }).start();
    await waitUntil(
      () => digest(created.body.id),
      (d) => d.status === 'sent',
      120_000,
      'digest sent after restart',
    );
    await worker.stop('SIGTERM');
    const got = new Map<string, number>();
    for (const m of stack.smtp.messages.slice(start)) for (const t of m.envelope.to) got.set(t, (got.get(t) ?? 0) + 1);
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
    expect((await fetch(`${stack.apps.baseUrl}/v1/digests/1`)).status).toBe(401);
    expect(
      (await fetch(`${stack.apps.baseUrl}/v1/digests/1`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status,
    ).toBe(200);
  });
});
