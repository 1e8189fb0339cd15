import 'reflect-metadata';
import { DateTime } from 'luxon';
import { ReconcilerService } from '../apps/worker/src/outbox/reconciler.service.js';
import { admin, waitUntil } from './support/admin.js';
import type { Backend } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

interface WaveView {
  timezone: string;
  timezones: string[];
  utcOffset: string | null;
  sendAt: string;
  recipients: number;
  sent: number;
  failed: number;
  skipped: number;
  status: string;
  reason: string | null;
}

interface DigestView {
  id: string;
  status: string;
  delivery: string;
  localTime: string | null;
  sent: number;
  skipped: number;
  pending: number;
  waves: WaveView[];
}

/** The newsletter's schedule zone: the zone of readers without one of their own. */
const NEWSLETTER_ZONE = 'America/New_York';
/** A cron that does not fire while the tests run (1 January, 09:00). */
const CRON = '0 9 1 1 *';

/** Readers by zone (null: none of their own). Paris has more readers than Berlin, in one wave. */
const READERS: { prefix: string; zone: string | null; count: number }[] = [
  { prefix: 'lt-chi-', zone: 'America/Chicago', count: 3 },
  { prefix: 'lt-ber-', zone: 'Europe/Berlin', count: 2 },
  { prefix: 'lt-par-', zone: 'Europe/Paris', count: 3 },
  { prefix: 'lt-kol-', zone: 'Asia/Kolkata', count: 3 },
  { prefix: 'lt-syd-', zone: 'Australia/Sydney', count: 2 },
  { prefix: 'lt-none-', zone: null, count: 2 },
];
const ALL = READERS.reduce((n, r) => n + r.count, 0);
/** The waves in time order for any wall clock: Sydney, Kolkata, Paris + Berlin, New York (no zone), Chicago. */
const WAVES = [
  { timezones: ['Australia/Sydney'], prefixes: ['lt-syd-'] },
  { timezones: ['Asia/Kolkata'], prefixes: ['lt-kol-'] },
  { timezones: ['Europe/Paris', 'Europe/Berlin'], prefixes: ['lt-par-', 'lt-ber-'] },
  { timezones: [NEWSLETTER_ZONE], prefixes: ['lt-none-'] },
  { timezones: ['America/Chicago'], prefixes: ['lt-chi-'] },
];
const waveOf = (email: string) => WAVES.findIndex((w) => w.prefixes.some((p) => email.startsWith(p)));

/** The wall clock of an instant in a zone, to the minute (truncated). */
const wallClock = (ms: number, zone: string) => DateTime.fromMillis(ms, { zone }).toFormat("yyyy-MM-dd'T'HH:mm");
/** When a zone's clocks show a wall-clock time. */
const instant = (wall: string, zone: string) => DateTime.fromISO(wall, { zone });

describe.each<Backend>(['postgres', 'redis'])('local-time delivery on the %s queue backend', (backend) => {
  const emails: Record<string, string[]> = {};
  const stack = useStack({
    label: `local_time_${backend}`,
    queue: backend,
    env: {
      SEND_RATE_PER_SECOND: '10000',
      DIGEST_GRACE_MINUTES: '60',
      // The reconciler runs only when a test calls it, and counts anything 100 ms still as stuck.
      RECONCILE_AFTER_MS: '100',
      RECONCILE_INTERVAL_MS: '3600000',
    },
    prepare: async () => {
      for (const r of READERS) {
        emails[r.prefix] = await addAudience(stack.db.url, {
          prefix: r.prefix,
          count: r.count,
          newsletter: 'spine-health',
        });
        if (r.zone)
          await query(stack.db.url, `UPDATE subscribers SET timezone = $2 WHERE email LIKE $1`, [
            `${r.prefix}%`,
            r.zone,
          ]);
      }
    },
  });
  const base = () => stack.apps.baseUrl;
  const digest = (id: string) => admin<DigestView>(base(), 'GET', `/v1/digests/${id}`).then((r) => r.body);
  const mailsOf = (subject: string) => stack.smtp.messages.filter((m) => m.parsed.subject === subject);
  const articleUrl = (set: string, i: number) => `https://www.spine-health.example/local/${backend}/${set}/${i}`;
  const ledger = (digestId: string) =>
    query<{ email: string; wave: number; status: string; detail: string | null; claimed_at: Date | null }>(
      stack.db.url,
      `SELECT u.email, x.wave, x.status, x.detail, x.claimed_at FROM deliveries x
       JOIN subscribers u ON u.id = x.subscriber_id WHERE x.digest_id = $1 ORDER BY u.email`,
      [digestId],
    );
  const createLocal = async (wall: string, subject: string, set: string) => {
    const res = await admin<{ id: string; status: string }>(base(), 'POST', '/v1/newsletters/spine-health/digests', {
      delivery: 'local',
      sendAt: wall,
      subject,
      articles: [articleUrl(set, 1), articleUrl(set, 2)],
    });
    expect(res.status).toBe(201);
    return res.body.id;
  };
  /** Waits until the waves are planned (stored): the digest is sending. */
  const planned = (id: string) =>
    waitUntil(
      () => digest(id),
      (d) => d.status !== 'scheduled' && d.waves.reduce((n, w) => n + w.recipients, 0) === ALL,
      30_000,
      `digest ${id} planned`,
    );
  /** The waves as the readers' zones make them for `wall` (checked against what the API shows). */
  const expectWaves = (waves: WaveView[], wall: string) => {
    expect(waves.map((w) => w.timezones)).toEqual(WAVES.map((w) => w.timezones));
    for (const [i, w] of waves.entries()) {
      const zone = WAVES[i].timezones[0];
      expect(w.timezone).toBe(zone);
      expect(new Date(w.sendAt).getTime()).toBe(instant(wall, zone).toMillis());
      expect(w.utcOffset).toBe(instant(wall, zone).toFormat('ZZ'));
      expect(w.recipients).toBe(
        READERS.filter((r) => WAVES[i].prefixes.includes(r.prefix)).reduce((n, r) => n + r.count, 0),
      );
    }
    // Berlin and Paris show 09:00 at one instant: one wave, Paris first (more readers).
    expect(waves.filter((w) => w.timezones.includes('Europe/Berlin'))).toHaveLength(1);
    expect(waves.find((w) => w.timezones.includes('Asia/Kolkata'))!.utcOffset).toBe('+05:30');
  };

  /** Digest B: its Paris/Berlin wave comes at the next minute that is at least 10 s away. */
  let later: { id: string; wall: string; due: number; atCreation: DigestView };

  beforeAll(async () => {
    const put = await admin(base(), 'PUT', '/v1/newsletters/spine-health/schedule', {
      cron: CRON,
      timezone: NEWSLETTER_ZONE,
    });
    expect(put.status).toBe(200);
    for (const set of ['now', 'later'])
      for (const i of [1, 2]) {
        const r = await admin(base(), 'POST', '/v1/articles', {
          url: articleUrl(set, i),
          title: `Local ${set} ${i}`,
          publishedAt: new Date(Date.now() - i * 3_600_000).toISOString(),
          newsletters: ['spine-health'],
        });
        expect([200, 201]).toContain(r.status);
      }
    // Created now so that its wait runs while the other tests do.
    const due = Math.ceil((Date.now() + 10_000) / 60_000) * 60_000;
    const wall = wallClock(due, 'Europe/Berlin');
    const id = await createLocal(wall, `Local later ${backend}`, 'later');
    later = { id, wall, due, atCreation: await planned(id) };
  });

  it('sends each wave at the wall-clock time in its zone: due now goes, later waits, long past is skipped', async () => {
    // Kolkata (+05:30) reaches this minute within the last minute (or in a few seconds); Sydney
    // was there hours ago (past the 60-minute grace); Europe and America are hours away.
    const wall = wallClock(Date.now() + 5_000, 'Asia/Kolkata');
    const subject = `Local now ${backend}`;
    const id = await createLocal(`${wall}:00+09:00`, subject, 'now'); // the offset is ignored
    const d = await waitUntil(
      () => digest(id),
      (x) => x.waves.length === 5 && x.waves[1].status === 'sent' && x.waves[0].status === 'skipped',
      30_000,
      'the Kolkata wave sent',
    );
    expect(d.delivery).toBe('local');
    expect(d.localTime).toBe(wall);
    expect(d.status).toBe('sending');
    expectWaves(d.waves, wall);

    const [sydney, kolkata, europe, newYork, chicago] = d.waves;
    expect(sydney).toMatchObject({ status: 'skipped', sent: 0, skipped: 2, recipients: 2 });
    expect(sydney.reason).toContain('past due');
    expect(kolkata).toMatchObject({ status: 'sent', sent: 3, skipped: 0, failed: 0, recipients: 3, reason: null });
    for (const w of [europe, newYork, chicago]) expect(w).toMatchObject({ status: 'waiting', sent: 0, skipped: 0 });
    expect(d).toMatchObject({ sent: 3, skipped: 2, pending: ALL - 5 });

    await stack.smtp.waitFor(() => mailsOf(subject).length >= 3, 15_000);
    // Waves still to come are not work the queue lost: the reconciler leaves them alone.
    const reconciled = await stack.apps.worker!.get(ReconcilerService).reconcile();
    expect(reconciled).toBeDefined();
    await new Promise((r) => setTimeout(r, 1_000));
    const [{ resumed }] = await query<{ resumed: Date | null }>(
      stack.db.url,
      `SELECT resumed_at AS resumed FROM digests WHERE id = $1`,
      [id],
    );
    expect(resumed).toBeNull();
    const after = await digest(id);
    expect(after.status).toBe('sending');
    expect(after.waves.map((w) => [w.status, w.sent])).toEqual([
      ['skipped', 0],
      ['sent', 3],
      ['waiting', 0],
      ['waiting', 0],
      ['waiting', 0],
    ]);

    // Only the Kolkata readers got it, once each.
    const got = mailsOf(subject).flatMap((m) => m.envelope.to);
    expect([...got].sort()).toEqual([...emails['lt-kol-']].sort());

    // The ledger: every reader once, in the wave of their zone; sent rows = mails received.
    const rows = await ledger(id);
    expect(rows).toHaveLength(ALL);
    expect(new Set(rows.map((r) => r.email)).size).toBe(ALL);
    for (const r of rows) {
      const wave = waveOf(r.email);
      expect({ email: r.email, wave: r.wave }).toEqual({ email: r.email, wave });
      expect({ email: r.email, status: r.status }).toEqual({
        email: r.email,
        status: wave === 0 ? 'skipped' : wave === 1 ? 'sent' : 'pending',
      });
      if (wave === 0) expect(r.detail).toContain('past due');
    }
    expect(rows.filter((r) => r.status === 'sent')).toHaveLength(got.length);
  });

  it('sends a wave still to come when its time comes, not before, once to each of its readers', async () => {
    const subject = `Local later ${backend}`;
    // Planned at once (Sydney's and Kolkata's times had passed): the Paris/Berlin wave waited.
    expect(later.atCreation.status).toBe('sending');
    expectWaves(later.atCreation.waves, later.wall);
    expect(later.atCreation.waves[2]).toMatchObject({ status: 'waiting', sent: 0, recipients: 5 });
    expect(new Date(later.atCreation.waves[2].sendAt).getTime()).toBe(later.due);

    const d = await waitUntil(
      () => digest(later.id),
      (x) => x.waves[2].status === 'sent',
      100_000,
      'the Paris/Berlin wave sent',
    );
    expect(d.waves.map((w) => [w.status, w.sent, w.skipped])).toEqual([
      ['skipped', 0, 2],
      ['skipped', 0, 3],
      ['sent', 5, 0],
      ['waiting', 0, 0],
      ['waiting', 0, 0],
    ]);
    expect(d.waves[1].reason).toContain('past due');
    await stack.smtp.waitFor(() => mailsOf(subject).length >= 5, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    const got = mailsOf(subject).flatMap((m) => m.envelope.to);
    expect([...got].sort()).toEqual([...emails['lt-par-'], ...emails['lt-ber-']].sort());

    const rows = await ledger(later.id);
    const sent = rows.filter((r) => r.status === 'sent');
    expect(sent.map((r) => r.email).sort()).toEqual([...got].sort());
    // Claimed for sending no earlier than the wave's time.
    for (const r of sent) expect(r.claimed_at!.getTime()).toBeGreaterThanOrEqual(later.due);
  }, 120_000);

  it('a cancel ends the waves still to come; a wave already sent stays sent', async () => {
    expect((await admin(base(), 'POST', `/v1/digests/${later.id}/cancel`)).status).toBe(200);
    const d = await digest(later.id);
    expect(d.status).toBe('cancelled');
    expect(d.waves.map((w) => [w.status, w.sent])).toEqual([
      ['skipped', 0],
      ['skipped', 0],
      ['sent', 5],
      ['cancelled', 0],
      ['cancelled', 0],
    ]);
  });

  it('refuses local delivery without a wall-clock time, a time past in every zone, and an unknown delivery', async () => {
    const post = (body: Record<string, unknown>) =>
      admin<{ message: string | string[] }>(base(), 'POST', '/v1/newsletters/spine-health/digests', body);
    const message = (r: { body: { message: string | string[] } }) => [r.body.message].flat().join(' ');

    const missing = await post({ delivery: 'local' });
    expect(missing.status).toBe(400);
    expect(message(missing)).toMatch(/sendAt/);
    const words = await post({ delivery: 'local', sendAt: 'tomorrow' });
    expect(words.status).toBe(400);
    expect(message(words)).toMatch(/sendAt/);
    const past = await post({ delivery: 'local', sendAt: wallClock(Date.now() - 3 * 86_400_000, 'UTC') });
    expect(past.status).toBe(400);
    expect(message(past)).toMatch(/past in every time zone/);
    const unknown = await post({ delivery: 'sometimes', sendAt: wallClock(Date.now() + 86_400_000, 'UTC') });
    expect(unknown.status).toBe(400);
    expect(message(unknown)).toMatch(/delivery must be "newsletter" or "local"/);

    // A time two days ahead: scheduled, its waves shown as the readers' zones make them now.
    const wall = wallClock(Date.now() + 2 * 86_400_000, 'UTC');
    const ok = await post({ delivery: 'local', sendAt: `${wall}:30.5Z` });
    expect(ok.status).toBe(201);
    const d = await digest((ok.body as unknown as { id: string }).id);
    expect(d).toMatchObject({ status: 'scheduled', delivery: 'local', localTime: wall });
    expectWaves(d.waves, wall);
    expect(d.waves.every((w) => w.status === 'waiting' && w.sent === 0)).toBe(true);
    expect((await admin(base(), 'POST', `/v1/digests/${d.id}/cancel`)).status).toBe(200);
  });

  it("sets a local schedule: the answer's next times are the newsletter-zone ones", async () => {
    const put = (body: Record<string, unknown>) =>
      admin<{ cron: string; timezone: string; delivery: string; next: string[] }>(
        base(),
        'PUT',
        '/v1/newsletters/spine-health/schedule',
        body,
      );
    const local = await put({ cron: CRON, timezone: NEWSLETTER_ZONE, delivery: 'local' });
    expect(local.status).toBe(200);
    expect(local.body).toMatchObject({ cron: CRON, timezone: NEWSLETTER_ZONE, delivery: 'local' });
    expect(local.body.next).toHaveLength(3);
    for (const n of local.body.next) {
      const at = DateTime.fromISO(n, { zone: NEWSLETTER_ZONE });
      expect([at.month, at.day, at.hour, at.minute]).toEqual([1, 1, 9, 0]);
    }
    const shown = await admin<{ schedule: { cron: string; timezone: string; delivery: string } }>(
      base(),
      'GET',
      '/v1/newsletters/spine-health',
    );
    expect(shown.body.schedule).toEqual({ cron: CRON, timezone: NEWSLETTER_ZONE, delivery: 'local' });
    const [{ delivery }] = await query<{ delivery: string }>(
      stack.db.url,
      `SELECT schedule_delivery AS delivery FROM newsletters WHERE slug = 'spine-health'`,
    );
    expect(delivery).toBe('local');

    const plain = await put({ cron: CRON, timezone: NEWSLETTER_ZONE });
    expect(plain.status).toBe(200);
    expect(plain.body.delivery).toBe('newsletter');
    const again = await admin<{ schedule: { delivery: string } }>(base(), 'GET', '/v1/newsletters/spine-health');
    expect(again.body.schedule.delivery).toBe('newsletter');
    expect((await put({ cron: CRON, timezone: NEWSLETTER_ZONE, delivery: 'sometimes' })).status).toBe(400);
    // The schedulers are synced (a sync job still running when the worker closes can hang its close).
    await waitUntil(
      () =>
        query<{ n: number }>(
          stack.db.url,
          `SELECT count(*)::int AS n FROM outbox WHERE type = 'schedule.changed' AND handled_at IS NULL`,
        ),
      ([{ n }]) => n === 0,
      15_000,
      'schedule changes handled',
    );
  });
});
