import 'reflect-metadata';
import { addAudience } from './support/audience.js';
import { ADMIN_KEY, type Backend, linkFrom } from './support/apps.js';
import { admin, waitUntil } from './support/admin.js';
import { query } from './support/db.js';
import { postJson, sleep } from './support/http.js';
import { useStack } from './support/stack.js';

const PUBLIC = 'http://mailroom.test';
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
/** Longer than the metrics cache (5 s). */
const CACHE_EXPIRY_MS = 5_300;

interface Digest {
  id: string;
  status: string;
  recipients: number;
  sent: number;
  failed: number;
  skipped: number;
}

type Series = Map<string, number>;

/** `name{a="x",b="y"}` with the labels sorted, so lookups do not depend on label order. */
function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

/** Parses the Prometheus text format (0.0.4) into series → value. */
function parse(text: string): Series {
  const out: Series = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`Not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.set(seriesKey(m[1], labels), Number(m[3]));
  }
  return out;
}

describe.each<Backend>(['postgres', 'redis'])('GET /metrics on the %s queue backend', (backend) => {
  const stack = useStack({
    label: `metrics_${backend}`,
    queue: backend,
    env: { METRICS_TOKEN, SEND_RATE_PER_SECOND: '100000', DIGEST_BATCH_SIZE: '10' },
    prepare: () => mailboxes(),
  });
  const addresses = new Set<string>();
  const local = (link: string) => link.replace(PUBLIC, stack.apps.baseUrl);

  async function scrape(): Promise<{ text: string; series: Series }> {
    const res = await fetch(`${stack.apps.baseUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    // Never personal data: no address at all, and none of the ones this test used.
    expect(text).not.toMatch(/[\w.+-]+@[\w-]+\.[\w.-]+/);
    for (const a of addresses) expect(text).not.toContain(a);
    return { text, series: parse(text) };
  }
  const value = (s: Series, name: string, labels: Record<string, string> = {}) => s.get(seriesKey(name, labels));
  const sent = (kind: string) => ['mailroom_mails_sent_total', { kind, newsletter: 'spine-health' }] as const;

  /** Subscribes `email` to spine-health and waits for its confirmation mail. */
  async function subscribe(email: string): Promise<string> {
    addresses.add(email);
    expect((await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email, name: 'Pat Reader' })).status).toBe(202);
    await stack.smtp.waitFor((m) => m.some((x) => x.envelope.to.includes(email)));
    return linkFrom(stack.smtp.to(email)[0].parsed.text ?? '', `${PUBLIC}/confirm/`);
  }

  /** Some addresses the SMTP server refuses; an audience with two suppressed readers. */
  const mailboxes = async () => {
    stack.smtp.rcptHook = (addr) => {
      if (addr === 'list3@example.com' || addr === 'nobody@example.com')
        return { code: 550, message: '5.1.1 Recipient address rejected: User unknown' };
      if (addr === 'list4@example.com') return { code: 554, message: '5.7.1 Message rejected by policy' };
      return null;
    };
    for (const a of await addAudience(stack.db.url, { prefix: 'list', count: 20, newsletter: 'spine-health' }))
      addresses.add(a);
    for (const a of await addAudience(stack.db.url, {
      prefix: 'blocked',
      count: 2,
      newsletter: 'spine-health',
      suppressWithSecret: stack.config.appSecret,
    }))
      addresses.add(a);
  };

  it('answers 401 without METRICS_TOKEN or an admin API key, and Prometheus text with either', async () => {
    const url = `${stack.apps.baseUrl}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: 'Bearer wrong-token-0123456789abcdef' } })).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Basic ${METRICS_TOKEN}` } })).status).toBe(401);
    const body = await (await fetch(url)).text();
    expect(body).not.toContain('mailroom_');

    for (const token of [METRICS_TOKEN, ADMIN_KEY]) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      const text = await res.text();
      expect(text).toContain('# TYPE mailroom_mails_sent_total counter');
      expect(text).toContain('# TYPE mailroom_digest_duration_seconds histogram');
      expect(text).toContain('# TYPE mailroom_queue_jobs gauge');
      // prom-client's default process metrics.
      expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
      expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    }
  });

  it('counts signups, confirmations, every kind of mail, queues and digests from the database', async () => {
    // A reader subscribes and confirms: one confirmation mail, one guide mail.
    const confirmLink = await subscribe('reader@example.com');
    const confirmed = await fetch(local(confirmLink), { method: 'POST', headers: { accept: 'application/json' } });
    expect(confirmed.status).toBe(200);
    await stack.smtp.waitFor((m) => m.filter((x) => x.envelope.to.includes('reader@example.com')).length === 2);

    // A confirmation bounces (550 5.1.1).
    addresses.add('nobody@example.com');
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'nobody@example.com' });
    await waitUntil(
      () => query(stack.db.url, `SELECT 1 FROM mail_log WHERE kind = 'confirmation' AND status = 'failed'`),
      (r) => r.length === 1,
      15_000,
      'the bounced confirmation',
    );

    // A digest to 21 confirmed readers (one bounces, one is refused by policy) and 2 suppressed ones.
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    expect(created.status).toBe(201);
    const digest = await waitUntil(
      () => admin<Digest>(stack.apps.baseUrl, 'GET', `/v1/digests/${created.body.id}`).then((r) => r.body),
      (d) => !['scheduled', 'sending'].includes(d.status),
      60_000,
      'the digest',
    );
    expect(digest).toMatchObject({ status: 'sent', recipients: 23, sent: 19, failed: 2, skipped: 2 });

    const { series: s } = await waitUntil(
      () => scrape(),
      (r) => value(r.series, ...sent('digest')) === 19,
      15_000,
      'the digest in /metrics',
    );
    expect(value(s, ...sent('confirmation'))).toBe(1);
    expect(value(s, ...sent('guide'))).toBe(1);
    expect(value(s, ...sent('digest-test'))).toBe(0);
    expect(value(s, ...sent('digest'))).toBe(19);
    expect(value(s, 'mailroom_mails_sent_total', { kind: 'digest', newsletter: 'sports-health' })).toBe(0);
    const failed = (kind: string, reason: string) =>
      value(s, 'mailroom_mails_failed_total', { kind, reason, newsletter: 'spine-health' });
    expect(failed('confirmation', 'hard_bounce')).toBe(1);
    expect(failed('digest', 'hard_bounce')).toBe(1);
    expect(failed('digest', 'policy')).toBe(1);
    expect(
      value(s, 'mailroom_mails_skipped_total', { kind: 'digest', reason: 'suppressed', newsletter: 'spine-health' }),
    ).toBe(2);

    expect(value(s, 'mailroom_signups_total', { newsletter: 'spine-health' })).toBe(2);
    expect(value(s, 'mailroom_signups_total', { newsletter: 'arthritis-health' })).toBe(0);
    expect(value(s, 'mailroom_confirmations_total', { newsletter: 'spine-health' })).toBe(1);
    expect(value(s, 'mailroom_subscriptions', { newsletter: 'spine-health', status: 'active' })).toBe(23);
    expect(value(s, 'mailroom_subscriptions', { newsletter: 'spine-health', status: 'pending' })).toBe(1);
    expect(value(s, 'mailroom_subscriptions', { newsletter: 'sports-health', status: 'active' })).toBe(0);
    expect(value(s, 'mailroom_suppressions', { reason: 'manual' })).toBe(2);
    expect(value(s, 'mailroom_suppressions', { reason: 'bounced' })).toBe(2);

    expect(value(s, 'mailroom_digests', { newsletter: 'spine-health', status: 'sent' })).toBe(1);
    expect(value(s, 'mailroom_digest_duration_seconds_count', { newsletter: 'spine-health' })).toBe(1);
    expect(value(s, 'mailroom_digest_duration_seconds_bucket', { newsletter: 'spine-health', le: '+Inf' })).toBe(1);
    const lastSent = value(s, 'mailroom_digest_last_sent_timestamp_seconds', { newsletter: 'spine-health' })!;
    expect(Math.abs(lastSent - Date.now() / 1000)).toBeLessThan(120);

    for (const queue of ['mail', 'digest']) {
      expect(value(s, 'mailroom_queue_up', { queue })).toBe(1);
      for (const state of ['waiting', 'active', 'delayed', 'failed'])
        expect(value(s, 'mailroom_queue_jobs', { queue, state })).toEqual(expect.any(Number));
    }
    // The bounced confirmation's job failed for good.
    expect(value(s, 'mailroom_queue_jobs', { queue: 'mail', state: 'failed' })).toBe(1);
    expect(value(s, 'mailroom_outbox_pending_events')).toEqual(expect.any(Number));
    expect(value(s, 'mailroom_outbox_oldest_pending_age_seconds')).toEqual(expect.any(Number));
    expect(value(s, 'mailroom_database_up')).toBe(1);
  });

  it('serves one snapshot for 5 s, keeps totals exact once rows settle, and monotonic across an erasure', async () => {
    const before = (await scrape()).series;
    const totals = (s: Series) => ({
      confirmation: value(s, ...sent('confirmation')),
      guide: value(s, ...sent('guide')),
      digest: value(s, ...sent('digest')),
      failed: value(s, 'mailroom_mails_failed_total', {
        kind: 'digest',
        reason: 'hard_bounce',
        newsletter: 'spine-health',
      }),
      signups: value(s, 'mailroom_signups_total', { newsletter: 'spine-health' }),
      confirmations: value(s, 'mailroom_confirmations_total', { newsletter: 'spine-health' }),
    });
    const expected = { confirmation: 1, guide: 1, digest: 19, failed: 1, signups: 2, confirmations: 1 };
    expect(totals(before)).toEqual(expected);

    // Everything so far becomes old enough to settle: the tallies move their watermarks past it.
    await query(stack.db.url, `UPDATE mail_log SET created_at = created_at - interval '1 hour'`);
    await query(stack.db.url, `UPDATE consent_records SET created_at = created_at - interval '1 hour'`);
    await query(
      stack.db.url,
      `UPDATE digests SET started_at = started_at - interval '1 hour', finished_at = finished_at - interval '1 hour'`,
    );
    for (let i = 0; i < 2; i += 1) {
      await sleep(CACHE_EXPIRY_MS);
      expect(totals((await scrape()).series)).toEqual(expected);
    }

    // A signup right after a scrape is not seen until the cached snapshot expires.
    await sleep(CACHE_EXPIRY_MS);
    await scrape();
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'late@example.com' });
    addresses.add('late@example.com');
    expect(totals((await scrape()).series).signups).toBe(2);

    // Erasing the reader deletes its mail log, consent records and deliveries: the totals stay.
    expect((await admin(stack.apps.baseUrl, 'DELETE', '/v1/subscribers/reader@example.com')).status).toBe(204);
    await stack.smtp.waitFor((m) => m.some((x) => x.envelope.to.includes('late@example.com')));
    const after = await waitUntil(
      () => scrape().then((r) => totals(r.series)),
      (t) => t.signups === 3 && t.confirmation === 2,
      15_000,
      'the late signup in /metrics',
    );
    expect(after).toEqual({ ...expected, signups: 3, confirmation: 2 });
  });
});
