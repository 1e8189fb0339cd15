import 'reflect-metadata';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { DIGEST_QUEUE } from '#queue/jobs.js';
import { SLOTS_PER_SECOND, slotCapacity } from '#mail/send-rate-limiter.service.js';
import { ReconcilerService } from '../apps/worker/src/outbox/reconciler.service.js';
import { addAudience } from './support/audience.js';
import { admin, waitUntil } from './support/admin.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

/** Sends slowed by the global rate, so a send can be watched, interrupted and cancelled. */
describe('controlling a digest while it sends', () => {
  const RATE = 150;
  /** Messages that can be claimed and not yet sent at once: 2 places × 2 claims per SMTP connection. */
  const LANES = 4 * 3;
  /** Messages handed to SMTP at once: 2 sending places per connection. */
  const PLACES = 2 * 3;
  const stack = useStack({
    label: 'digest_control',
    queue: 'redis',
    env: { SEND_RATE_PER_SECOND: String(RATE), DIGEST_BATCH_SIZE: '50', SMTP_POOL_SIZE: '3' },
    prepare: () => addAudience(stack.db.url, { prefix: 'aud', count: 400, newsletter: 'spine-health' }),
  });

  const digest = (id: string) =>
    admin<{ status: string; sent: number; skipped: number; recipients: number }>(
      stack.apps.baseUrl,
      'GET',
      `/v1/digests/${id}`,
    ).then((r) => r.body);
  const newArticle = (slug: string) =>
    admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
      url: `https://www.spine-health.example/news/${slug}`,
      title: `News ${slug}`,
      publishedAt: new Date().toISOString(),
      newsletters: ['spine-health'],
    });

  it('honours an unsubscribe that lands mid-send for every message not yet handed to SMTP', async () => {
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    const id = created.body.id;
    await stack.smtp.waitFor((m) => m.length >= 60, 30_000);
    // Unsubscribe 120 readers whose message has not been claimed yet.
    const gone = await query<{ email: string }>(
      stack.db.url,
      `UPDATE subscriptions s SET status = 'unsubscribed', unsubscribed_at = now()
       FROM subscribers u
       WHERE u.id = s.subscriber_id AND s.id IN (
         SELECT subscription_id FROM deliveries WHERE digest_id = $1 AND status = 'pending' ORDER BY subscriber_id DESC LIMIT 120)
       RETURNING u.email`,
      [id],
    );
    expect(gone).toHaveLength(120);
    const d = await waitUntil(
      () => digest(id),
      (x) => x.status === 'sent',
      60_000,
      'digest sent',
    );
    const received = new Set(stack.smtp.messages.flatMap((m) => m.envelope.to));
    const leaked = gone.filter((g) => received.has(g.email));
    // Only a message already claimed when the unsubscribe committed can still go: at most one per
    // claim a place holds (2 places × 2 claims per connection × SMTP_POOL_SIZE 3).
    expect(leaked.length).toBeLessThanOrEqual(LANES);
    expect(d.sent + d.skipped).toBe(400);
    expect(d.skipped).toBeGreaterThanOrEqual(120 - LANES);
  });

  it('sends nothing after a cancel returns, beyond messages in flight', async () => {
    await newArticle('cancel-me');
    await query(stack.db.url, `UPDATE subscriptions SET status = 'active', unsubscribed_at = NULL`);
    const start = stack.smtp.messages.length;
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    await stack.smtp.waitFor((m) => m.length >= start + 50, 30_000);
    const res = await admin<{ status: string }>(stack.apps.baseUrl, 'POST', `/v1/digests/${created.body.id}/cancel`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('cancelled');
    const atCancel = stack.smtp.messages.length;
    await new Promise((r) => setTimeout(r, 1500));
    expect(stack.smtp.messages.length - atCancel).toBeLessThanOrEqual(LANES);
    expect(stack.smtp.messages.length - start).toBeLessThan(400);
    expect((await digest(created.body.id)).status).toBe('cancelled');
    const [{ claimed }] = await query<{ claimed: number }>(
      stack.db.url,
      `SELECT count(*)::int AS claimed FROM deliveries WHERE digest_id = $1 AND status IN ('sent','sending')`,
      [created.body.id],
    );
    expect(claimed).toBe(stack.smtp.messages.length - start);
  });

  it('stops a message claimed ahead when its reader unsubscribes before its turn', async () => {
    await newArticle('claimed-ahead');
    await query(stack.db.url, `UPDATE subscriptions SET status = 'active', unsubscribed_at = NULL`);
    const start = stack.smtp.messages.length;
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    const id = created.body.id;
    await stack.smtp.waitFor((m) => m.length >= start + 30, 30_000);
    // Readers whose rows are claimed (status 'sending'), most of them not yet handed to SMTP.
    const gone = await query<{ email: string }>(
      stack.db.url,
      `UPDATE subscriptions s SET status = 'unsubscribed', unsubscribed_at = now()
       FROM subscribers u
       WHERE u.id = s.subscriber_id AND s.id IN (
         SELECT subscription_id FROM deliveries WHERE digest_id = $1 AND status = 'sending')
       RETURNING u.email`,
      [id],
    );
    const atUpdate = stack.smtp.messages.length;
    // The sender claims rows ahead while it hears revocation notices: more than it has places.
    expect(gone.length).toBeGreaterThan(PLACES);
    const d = await waitUntil(
      () => digest(id),
      (x) => x.status === 'sent',
      60_000,
      'digest sent',
    );
    const received = new Set(stack.smtp.messages.slice(start).flatMap((m) => m.envelope.to));
    const leaked = gone.filter((g) => received.has(g.email));
    // Rows still 'sending' include messages already accepted whose sent record was not written
    // yet; of the rest, only those already handed to SMTP when the unsubscribe committed can go:
    // one per sending place.
    const after = new Set(stack.smtp.messages.slice(atUpdate).flatMap((m) => m.envelope.to));
    expect(gone.filter((g) => after.has(g.email)).length).toBeLessThanOrEqual(PLACES);
    // Claimed and stopped: more than the places could have held (with row-by-row claims, at most
    // 2 per place are claimed at once, and those are mostly already with SMTP).
    expect(d.skipped).toBe(gone.length - leaked.length);
    expect(d.skipped).toBeGreaterThan(PLACES);
    expect(d.sent + d.skipped).toBe(400);
    const [{ claimed }] = await query<{ claimed: number }>(
      stack.db.url,
      `SELECT count(*)::int AS claimed FROM deliveries WHERE digest_id = $1 AND status = 'sending'`,
      [id],
    );
    expect(claimed).toBe(0);
  });

  it('sends everyone exactly once when its revocation listener is cut mid-send', async () => {
    await newArticle('listener-cut');
    await query(stack.db.url, `UPDATE subscriptions SET status = 'active', unsubscribed_at = NULL`);
    const start = stack.smtp.messages.length;
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    const id = created.body.id;
    await stack.smtp.waitFor((m) => m.length >= start + 40, 30_000);
    // The worker's listening session: its rows claimed ahead go back and are claimed again.
    const cut = await query(
      stack.db.url,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`,
    );
    expect(cut).toHaveLength(1);
    const d = await waitUntil(
      () => digest(id),
      (x) => x.status === 'sent',
      60_000,
      'digest sent',
    );
    expect(d.sent).toBe(400);
    const copies = new Map<string, number>();
    for (const m of stack.smtp.messages.slice(start))
      for (const to of m.envelope.to) copies.set(to, (copies.get(to) ?? 0) + 1);
    expect(copies.size).toBe(400);
    expect([...copies.values()].every((n) => n === 1)).toBe(true);
    const [{ left }] = await query<{ left: number }>(
      stack.db.url,
      `SELECT count(*)::int AS left FROM deliveries WHERE digest_id = $1 AND status <> 'sent'`,
      [id],
    );
    expect(left).toBe(0);
  });

  it('drains its batches oldest first, not all at one pace (the next ones start while the others still send)', async () => {
    await newArticle('oldest-first');
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    const id = created.body.id;
    await waitUntil(
      () => digest(id),
      (d) => d.status === 'sent',
      60_000,
      'the digest sent',
    );
    // The ledger's rows in subscriber order, 50 to a batch (DIGEST_BATCH_SIZE): when each was sent.
    const sent = await query<{ batch: number; at: string; status: string }>(
      stack.db.url,
      `SELECT ((row_number() OVER (ORDER BY subscriber_id) - 1) / 50)::int AS batch,
              (extract(epoch FROM finished_at) * 1000)::float8::text AS at, status
         FROM deliveries WHERE digest_id = $1`,
      [id],
    );
    const times = (b: number) =>
      sent
        .filter((r) => r.batch === b && r.status === 'sent')
        .map((r) => Number(r.at))
        .sort((x, y) => x - y);
    const first = times(0);
    const fourth = times(3);
    expect(first.length).toBeGreaterThan(40);
    expect(fourth.length).toBeGreaterThan(40);
    // Four batches run at once (DIGEST_CONCURRENCY). Shared in turn, they would finish together,
    // the first one's last message after most of the fourth's; oldest first, it is done before
    // the fourth has sent half of its messages.
    expect(first[first.length - 1]).toBeLessThan(fourth[Math.floor(fourth.length / 2)]);
  });

  it('keeps the global rate: no slot over its share, no second of slots over the rate', async () => {
    const slots = await query<{ slot: string; n: number }>(
      stack.db.url,
      `SELECT slot::text, n FROM send_rate ORDER BY slot`,
    );
    expect(slots.length).toBeGreaterThan(20);
    for (const s of slots) expect(s.n).toBeLessThanOrEqual(slotCapacity(RATE, Number(s.slot)));
    const bySlot = new Map(slots.map((s) => [Number(s.slot), s.n]));
    const first = Number(slots[0].slot);
    const last = Number(slots[slots.length - 1].slot);
    for (let start = first; start <= last; start += 1) {
      let sum = 0;
      for (let k = 0; k < SLOTS_PER_SECOND; k += 1) sum += bySlot.get(start + k) ?? 0;
      expect(sum).toBeLessThanOrEqual(RATE);
    }
  });

  it('fires the weekly schedule through BullMQ, once per firing, and stops when removed', async () => {
    expect(
      (
        await admin(stack.apps.baseUrl, 'PUT', '/v1/newsletters/spine-health/schedule', {
          cron: 'not a cron',
          timezone: 'UTC',
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await admin(stack.apps.baseUrl, 'PUT', '/v1/newsletters/spine-health/schedule', {
          cron: '0 9 * * 2',
          timezone: 'Mars/Base',
        })
      ).status,
    ).toBe(400);
    const weekly = await admin<{ next: string[] }>(stack.apps.baseUrl, 'PUT', '/v1/newsletters/spine-health/schedule', {
      cron: '0 9 * * 2',
      timezone: 'America/Chicago',
    });
    expect(weekly.status).toBe(200);
    expect(weekly.body.next).toHaveLength(3);
    for (const t of weekly.body.next) expect(new Date(t).getUTCDay()).toBe(2);

    const queue = stack.apps.worker!.get<Queue>(getQueueToken(DIGEST_QUEUE));
    const schedulers = async () => (await queue.getJobSchedulers(0, -1)).filter((s) => s.key.startsWith('schedule-'));
    await waitUntil(
      schedulers,
      (s) => s.length === 1 && s[0].pattern === '0 9 * * 2' && s[0].tz === 'America/Chicago',
      15_000,
      'weekly scheduler',
    );

    // Drive time through BullMQ: a schedule every 2 seconds fires real digests.
    await newArticle('scheduled');
    await admin(stack.apps.baseUrl, 'PUT', '/v1/newsletters/spine-health/schedule', {
      cron: '*/2 * * * * *',
      timezone: 'UTC',
    });
    const fired = await waitUntil(
      () =>
        query<{ status: string; reason: string | null }>(
          stack.db.url,
          `SELECT status, reason FROM digests WHERE trigger = 'schedule' ORDER BY id`,
        ),
      (list) => list.length >= 2 && list.every((d) => d.status !== 'scheduled' && d.status !== 'sending'),
      30_000,
      'two scheduled firings',
    );
    expect(fired[0].status).toBe('sent');
    expect(
      fired.slice(1).every((d) => d.status === 'skipped' && d.reason === 'no new articles since the last digest'),
    ).toBe(true);

    // A queue that lost its schedulers (Redis back empty) gets them back from the reconciler.
    await queue.removeJobScheduler('schedule-spine-health');
    expect(await schedulers()).toHaveLength(0);
    const recovered = await stack.apps.worker!.get(ReconcilerService).reconcile();
    expect(recovered.schedules).toBe(1);
    expect((await schedulers()).map((s) => [s.key, s.pattern, s.tz])).toEqual([
      ['schedule-spine-health', '*/2 * * * * *', 'UTC'],
    ]);
    expect((await stack.apps.worker!.get(ReconcilerService).reconcile()).schedules).toBe(0);

    // A restart neither loses nor doubles the scheduler.
    await stack.apps.stopWorker();
    await stack.apps.startWorker();
    const q2 = stack.apps.worker!.get<Queue>(getQueueToken(DIGEST_QUEUE));
    await new Promise((r) => setTimeout(r, 500));
    expect((await q2.getJobSchedulers(0, -1)).filter((s) => s.key.startsWith('schedule-'))).toHaveLength(1);

    expect((await admin(stack.apps.baseUrl, 'DELETE', '/v1/newsletters/spine-health/schedule')).status).toBe(204);
    await waitUntil(
      async () => (await q2.getJobSchedulers(0, -1)).filter((s) => s.key.startsWith('schedule-')).length,
      (n) => n === 0,
      15_000,
      'scheduler removed',
    );
    await new Promise((r) => setTimeout(r, 2500));
    const [{ n: before }] = await query<{ n: number }>(
      stack.db.url,
      `SELECT count(*)::int AS n FROM digests WHERE trigger = 'schedule'`,
    );
    await new Promise((r) => setTimeout(r, 2500));
    const [{ n: after }] = await query<{ n: number }>(
      stack.db.url,
      `SELECT count(*)::int AS n FROM digests WHERE trigger = 'schedule'`,
    );
    expect(after).toBe(before);
  });
});
