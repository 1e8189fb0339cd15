import 'reflect-metadata';
import pg from 'pg';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { WebhookSender } from '#subscriptions/webhooks-out/webhook-sender.service.js';
import { Webhook } from 'standardwebhooks';
import { admin, waitUntil } from './support/admin.js';
import { ADMIN_KEY, headerBlock, linkFrom } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { decode } from './support/html.js';
import { query } from './support/db.js';
import { postJson } from './support/http.js';
import { useStack } from './support/stack.js';
import { HOLD, type ReceivedWebhook, WebhookReceiver } from './support/webhook-receiver.js';
import { WorkerProcess, buildOnce } from './support/worker-process.js';

const PUBLIC = 'http://mailroom.test';
const ALL_EVENTS = ['subscription.confirmed', 'subscription.unsubscribed', 'subscriber.suppressed', 'digest.sent'];

interface Endpoint {
  id: string;
  secret: string;
  url: string;
  events: string[];
  enabled: boolean;
}
interface Delivery {
  id: string;
  type: string;
  status: string;
  attemptCount: number;
  attempts: { statusCode: number | null; error: string | null; durationMs: number }[];
}
interface Event {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

describe('outgoing webhooks (Standard Webhooks)', () => {
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await new WebhookReceiver().start();
  });
  const stack = useStack({
    label: 'webhooks_out',
    env: {
      FEED_ALLOW_PRIVATE: 'true',
      WEBHOOK_POLL_MS: '50',
      WEBHOOK_RETRY_BASE_MS: '100',
      // Long enough that a held POST is still open when the hanging-endpoint test looks.
      WEBHOOK_TIMEOUT_MS: '30000',
      PUBLIC_POSTS_PER_IP_PER_MINUTE: '10000',
      SEND_RATE_PER_SECOND: '10000',
    },
  });
  afterAll(async () => {
    await receiver?.stop();
  });
  const base = () => stack.apps.baseUrl;

  async function register(path: string, events = ALL_EVENTS): Promise<Endpoint> {
    const res = await admin<Endpoint>(base(), 'POST', '/v1/webhook-endpoints', {
      url: `${receiver.url}${path}`,
      events,
    });
    expect(res.status).toBe(201);
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32,}={0,2}$/);
    return res.body;
  }

  /** Verifies a request with the reference library; returns its event. */
  function verified(secret: string, r: ReceivedWebhook): Event {
    expect(r.headers['content-type']).toBe('application/json');
    return new Webhook(secret).verify(r.body, r.headers) as Event;
  }

  const eventsAt = (path: string, secret: string, type?: string) =>
    receiver
      .at(path)
      .filter((r) => r.answered < 300)
      .map((r) => ({ id: r.headers['webhook-id'], event: verified(secret, r) }))
      .filter((e) => !type || e.event.type === type);

  const waitForEvent = (path: string, secret: string, type: string, match: (e: Event) => boolean) =>
    waitUntil(
      async () => eventsAt(path, secret, type).find((e) => match(e.event)),
      (e) => e !== undefined,
      30_000,
      `${type} at ${path}`,
    ).then((e) => e!);

  const deliveries = (id: string) =>
    admin<{ items: Delivery[]; next: string | null }>(base(), 'GET', `/v1/webhook-endpoints/${id}/deliveries`).then(
      (r) => r.body.items,
    );

  async function confirmedReader(email: string): Promise<void> {
    await postJson(`${base()}/v1/subscriptions`, { email, newsletters: ['spine-health'] });
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    const link = linkFrom(stack.smtp.to(email).at(-1)!.parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(link.replace(PUBLIC, base()), { method: 'POST' })).status).toBe(200);
  }

  it('refuses requests without the API key and bad bodies with a message', async () => {
    expect((await fetch(`${base()}/v1/webhook-endpoints`)).status).toBe(401);
    expect(
      (await postJson(`${base()}/v1/webhook-endpoints`, { url: `${receiver.url}/x`, events: ALL_EVENTS })).status,
    ).toBe(401);
    expect((await fetch(`${base()}/v1/webhook-endpoints/00000000-0000-0000-0000-000000000000/deliveries`)).status).toBe(
      401,
    );

    const bad = async (body: unknown) => {
      const res = await admin<{ message: string | string[] }>(base(), 'POST', '/v1/webhook-endpoints', body);
      expect(res.status).toBe(400);
      expect(res.text).not.toMatch(/at .*\.(ts|js):\d+/);
      return JSON.stringify(res.body.message);
    };
    expect(await bad({ url: `${receiver.url}/x`, events: ['subscription.confirmed', 'subscription.bogus'] })).toContain(
      'subscription.bogus',
    );
    expect(await bad({ url: `${receiver.url}/x`, events: [] })).toContain('at least one event');
    expect(await bad({ url: `${receiver.url}/x`, events: 'digest.sent' })).toContain('events must be an array');
    expect(await bad({ events: ['digest.sent'] })).toContain('url');
    expect(await bad({ url: 42, events: ['digest.sent'] })).toContain('url must be a string');
    expect(await bad({ url: 'ftp://example.com/hook', events: ['digest.sent'] })).toContain('http');
    expect(await bad({ url: `${receiver.url}/x\r\nX-Evil: 1`, events: ['digest.sent'] })).toContain('line breaks');
    expect(await bad({ url: 'http://169.254.169.254/latest/meta-data', events: ['digest.sent'] })).toContain(
      'metadata',
    );
    expect(await bad('not json')).toBeTruthy();

    expect((await admin(base(), 'GET', '/v1/webhook-endpoints/nope')).status).toBe(404);
    expect((await admin(base(), 'DELETE', '/v1/webhook-endpoints/00000000-0000-0000-0000-000000000000')).status).toBe(
      404,
    );
    const ep = await register('/validation');
    const patch = await admin(base(), 'PATCH', `/v1/webhook-endpoints/${ep.id}`, { events: ['digest.nope'] });
    expect(patch.status).toBe(400);
    expect(patch.text).toContain('digest.nope');
    expect((await admin(base(), 'PATCH', `/v1/webhook-endpoints/${ep.id}`, { enabled: 'yes' })).status).toBe(400);
    expect((await admin(base(), 'GET', `/v1/webhook-endpoints/${ep.id}/deliveries?limit=0`)).status).toBe(400);
    expect(
      (
        await admin(
          base(),
          'POST',
          `/v1/webhook-endpoints/${ep.id}/deliveries/00000000-0000-0000-0000-000000000000/replay`,
        )
      ).status,
    ).toBe(404);
    expect((await admin(base(), 'DELETE', `/v1/webhook-endpoints/${ep.id}`)).status).toBe(204);
    expect((await admin(base(), 'GET', `/v1/webhook-endpoints/${ep.id}`)).status).toBe(404);
  });

  it('refuses loopback and private endpoints without FEED_ALLOW_PRIVATE, at registration and at delivery', async () => {
    const strict = await stack.startApps({ worker: false });
    const res = await admin<{ message: string[] }>(strict.baseUrl, 'POST', '/v1/webhook-endpoints', {
      url: `${receiver.url}/private`,
      events: ALL_EVENTS,
    });
    expect(res.status).toBe(400);
    expect(res.text).toContain('not allowed');
    // A host name that resolves inside is refused like the address itself.
    const named = await admin(strict.baseUrl, 'POST', '/v1/webhook-endpoints', {
      url: receiver.url.replace('127.0.0.1', 'localhost'),
      events: ALL_EVENTS,
    });
    expect(named.status).toBe(400);
    expect(named.text).toContain('not allowed');
    // Changing a registered endpoint's URL to an internal one is refused the same way.
    const existing = await register('/public-later', ['digest.sent']);
    const moved = await admin(strict.baseUrl, 'PATCH', `/v1/webhook-endpoints/${existing.id}`, {
      url: 'http://10.0.0.7/hook',
    });
    expect(moved.status).toBe(400);
    expect(moved.text).toContain('not allowed');
    expect((await admin(base(), 'DELETE', `/v1/webhook-endpoints/${existing.id}`)).status).toBe(204);

    // Registered while allowed, then delivered by a worker that does not allow it: checked again, nothing sent.
    const ep = await register('/rebound', ['subscriber.suppressed']);
    await stack.apps.stopWorker();
    await stack.apps.startWorker({ ...stack.config, feeds: { ...stack.config.feeds, allowPrivate: false } });
    await addAudience(stack.db.url, { prefix: 'rebound', count: 1, newsletter: 'spine-health' });
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'rebound1@example.com', type: 'hard' });
    const [refused] = await waitUntil(
      () => deliveries(ep.id),
      (d) => d.length === 1 && d[0].attempts.length >= 1,
      30_000,
      'a refused attempt',
    );
    expect(refused.status).toBe('pending');
    expect(refused.attempts[0]).toMatchObject({ statusCode: null, error: expect.stringContaining('not allowed') });
    expect(receiver.at('/rebound')).toHaveLength(0);

    // Back to the normal worker: the delivery goes out on its next retry.
    await stack.apps.stopWorker();
    await stack.apps.startWorker();
    await waitForEvent('/rebound', ep.secret, 'subscriber.suppressed', (e) => e.data.email === 'rebound1@example.com');
    expect((await admin(base(), 'DELETE', `/v1/webhook-endpoints/${ep.id}`)).status).toBe(204);
  });

  it('sends each of the four events from real flows, signed, with the data and no tokens', async () => {
    const ep = await register('/crm');
    const email = 'flow@example.com';

    // Subscribe and confirm through the api and SMTP.
    await confirmedReader(email);
    const confirmed = await waitForEvent('/crm', ep.secret, 'subscription.confirmed', (e) => e.data.email === email);
    expect(confirmed.event.data).toMatchObject({ email, newsletter: 'spine-health', status: 'active' });
    expect(Date.parse(confirmed.event.timestamp)).not.toBeNaN();

    // One-click unsubscribe from the guide mail's List-Unsubscribe header.
    await stack.smtp.waitFor(() => stack.smtp.to(email).some((m) => /^List-Unsubscribe:/m.test(headerBlock(m.raw))));
    const guide = stack.smtp.to(email).find((m) => /^List-Unsubscribe:/m.test(headerBlock(m.raw)))!;
    const unsub = /^List-Unsubscribe: <([^>]+)>/m.exec(headerBlock(guide.raw))![1].replace(PUBLIC, base());
    const res = await fetch(unsub, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(res.status).toBe(200);
    const left = await waitForEvent('/crm', ep.secret, 'subscription.unsubscribed', (e) => e.data.email === email);
    expect(left.event.data).toMatchObject({ email, newsletter: 'spine-health', status: 'unsubscribed' });

    // A hard bounce through the generic bounce webhook.
    await confirmedReader('bounce@example.com');
    expect(
      (await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'bounce@example.com', type: 'hard' })).status,
    ).toBe(200);
    const suppressed = await waitForEvent(
      '/crm',
      ep.secret,
      'subscriber.suppressed',
      (e) => e.data.email === 'bounce@example.com',
    );
    expect(suppressed.event.data).toMatchObject({ reason: 'bounced', newsletters: ['spine-health'] });

    // A small digest, sent.
    await addAudience(stack.db.url, { prefix: 'digest', count: 3, newsletter: 'spine-health' });
    const article = await admin(base(), 'POST', '/v1/articles', {
      url: 'https://www.spine-health.example/webhooks/1',
      title: 'Webhooks and your back',
      publishedAt: new Date(Date.now() - 3_600_000).toISOString(),
      newsletters: ['spine-health'],
    });
    expect(article.status).toBe(201);
    const [{ n: audience }] = await query<{ n: number }>(
      stack.db.url,
      `SELECT count(*)::int AS n FROM subscriptions x JOIN subscribers s ON s.id = x.subscriber_id
        WHERE x.status = 'active' AND s.status = 'ok' AND x.newsletter_id = (SELECT id FROM newsletters WHERE slug = 'spine-health')`,
    );
    const created = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/spine-health/digests', {
      articles: ['https://www.spine-health.example/webhooks/1'],
    });
    expect(created.status).toBe(201);
    const sent = await waitForEvent(
      '/crm',
      ep.secret,
      'digest.sent',
      (e) => e.data.digestId === String(created.body.id),
    );
    expect(sent.event.data).toMatchObject({ newsletter: 'spine-health', sent: audience, failed: 0 });
    expect(audience).toBeGreaterThan(0);

    // Every request verified (above); none carries a token or a link with one.
    for (const r of receiver.at('/crm')) {
      expect(r.body).not.toMatch(/token|\/unsubscribe\/|\/confirm\//i);
    }
    // Each event once: webhook-ids are distinct and each was answered 2xx once.
    const ids = receiver.at('/crm').map((r) => r.headers['webhook-id']);
    expect(new Set(ids).size).toBe(ids.length);
    const listed = await deliveries(ep.id);
    expect(listed.every((d) => d.status === 'delivered')).toBe(true);
    expect(listed.map((d) => d.id).sort()).toEqual([...ids].sort());
  });

  it('covers the other paths: admin unsubscribe, manual suppression, and erasure takes the reader’s events', async () => {
    const ep = await register('/paths', ['subscription.unsubscribed', 'subscriber.suppressed']);
    await confirmedReader('patch-out@example.com');
    const patch = await admin(base(), 'PATCH', '/v1/subscribers/patch-out@example.com', {
      newsletters: { 'spine-health': 'unsubscribed' },
    });
    expect(patch.status).toBe(200);
    await waitForEvent(
      '/paths',
      ep.secret,
      'subscription.unsubscribed',
      (e) => e.data.email === 'patch-out@example.com',
    );

    await confirmedReader('by-hand@example.com');
    expect(
      (await admin(base(), 'POST', '/v1/suppressions', { email: 'by-hand@example.com', reason: 'asked' })).status,
    ).toBe(201);
    const s = await waitForEvent(
      '/paths',
      ep.secret,
      'subscriber.suppressed',
      (e) => e.data.email === 'by-hand@example.com',
    );
    expect(s.event.data.reason).toBe('suppressed');

    expect((await admin(base(), 'DELETE', '/v1/subscribers/by-hand@example.com')).status).toBe(204);
    const left = await query(
      stack.db.url,
      `SELECT payload FROM webhook_deliveries WHERE payload::text LIKE '%by-hand%'`,
    );
    expect(left).toHaveLength(0);
    expect((await admin(base(), 'DELETE', `/v1/webhook-endpoints/${ep.id}`)).status).toBe(204);
  });

  it('covers the preference centre, an SMTP 5.1.1 refusal and a CSV import', async () => {
    const ep = await register('/more');
    // Preference centre: the form's unsubscribe, from the link in the guide mail.
    const email = 'prefs@example.com';
    await confirmedReader(email);
    await stack.smtp.waitFor(() => stack.smtp.to(email).some((m) => /^List-Unsubscribe:/m.test(headerBlock(m.raw))));
    const guide = stack.smtp.to(email).find((m) => /^List-Unsubscribe:/m.test(headerBlock(m.raw)))!;
    const link = /^List-Unsubscribe: <([^>]+)>/m.exec(headerBlock(guide.raw))![1].replace(PUBLIC, base());
    const form = await fetch(link, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'action=unsubscribe',
      redirect: 'manual',
    });
    expect(form.status).toBeLessThan(400);
    await waitForEvent('/more', ep.secret, 'subscription.unsubscribed', (e) => e.data.email === email);

    // The SMTP server refuses the confirmation mail with 5.1.1: suppressed by the worker.
    stack.smtp.rcptHook = (addr) =>
      addr === 'unknown-user@example.com'
        ? { code: 550, message: '5.1.1 Recipient address rejected: User unknown' }
        : null;
    try {
      await postJson(`${base()}/v1/subscriptions`, { email: 'unknown-user@example.com' });
      const s = await waitForEvent(
        '/more',
        ep.secret,
        'subscriber.suppressed',
        (e) => e.data.email === 'unknown-user@example.com',
      );
      expect(s.event.data).toMatchObject({ reason: 'bounced', newsletters: [] });
    } finally {
      stack.smtp.rcptHook = () => null;
    }

    // An import of readers who consented elsewhere: each subscription is confirmed.
    const res = await fetch(`${base()}/v1/newsletters/sports-health/subscribers/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'text/csv' },
      body: 'email,name,topics,timezone,consented_at,source\nimported@example.com,Imp,,,2025-05-01,\n',
    });
    expect(res.status).toBe(200);
    const imported = await waitForEvent(
      '/more',
      ep.secret,
      'subscription.confirmed',
      (e) => e.data.email === 'imported@example.com',
    );
    expect(imported.event.data).toMatchObject({ newsletter: 'sports-health', status: 'active' });
    expect((await admin(base(), 'DELETE', `/v1/webhook-endpoints/${ep.id}`)).status).toBe(204);
  });

  it('writes the event in the transaction of the change: a change rolled back leaves no event', async () => {
    const ep = await register('/tx', ['subscriber.suppressed']);
    await addAudience(stack.db.url, { prefix: 'txreader', count: 2, newsletter: 'spine-health' });
    const client = new pg.Client({ connectionString: stack.db.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query(`UPDATE subscribers SET status = 'bounced' WHERE email = 'txreader1@example.com'`);
      const inside = await client.query(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = $1`, [
        ep.id,
      ]);
      expect(inside.rows[0].n).toBe(1);
      await client.query('ROLLBACK');
    } finally {
      await client.end();
    }
    // A bad request changes nothing and writes nothing either.
    expect(
      (await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'txreader2@example.com', type: 'weird' })).status,
    ).toBe(400);
    expect(await query(stack.db.url, `SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1`, [ep.id])).toHaveLength(
      0,
    );
    // The same change committed: one event, delivered.
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'txreader2@example.com', type: 'hard' });
    await waitForEvent('/tx', ep.secret, 'subscriber.suppressed', (e) => e.data.email === 'txreader2@example.com');
    expect(eventsAt('/tx', ep.secret)).toHaveLength(1);
    expect((await admin(base(), 'DELETE', `/v1/webhook-endpoints/${ep.id}`)).status).toBe(204);
  });

  it('retries a 500 with backoff until a 2xx; a failing endpoint does not hold up another', async () => {
    const flaky = await register('/flaky', ['subscriber.suppressed']);
    const down = await register('/down', ['subscriber.suppressed']);
    const fine = await register('/fine', ['subscriber.suppressed']);
    receiver.answer('/flaky', [500, 500], 200);
    receiver.answer('/down', [], 503);
    await addAudience(stack.db.url, { prefix: 'retry', count: 1, newsletter: 'spine-health' });
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'retry1@example.com', type: 'complaint' });

    const ok = await waitForEvent('/flaky', flaky.secret, 'subscriber.suppressed', () => true);
    expect(ok.event.data).toMatchObject({ email: 'retry1@example.com', reason: 'complained' });
    // Three requests, one webhook-id, each signed.
    const tries = receiver.at('/flaky');
    expect(tries.map((r) => r.answered)).toEqual([500, 500, 200]);
    expect(new Set(tries.map((r) => r.headers['webhook-id'])).size).toBe(1);
    for (const r of tries) verified(flaky.secret, r);
    const [d] = await deliveries(flaky.id);
    expect(d).toMatchObject({ status: 'delivered', attemptCount: 3 });
    expect(d.attempts.map((a) => a.statusCode)).toEqual([200, 500, 500]);

    // The healthy endpoint got its copy while the other keeps failing (still pending, retried).
    await waitForEvent('/fine', fine.secret, 'subscriber.suppressed', () => true);
    const [stuck] = await waitUntil(
      () => deliveries(down.id),
      (x) => x[0]?.attemptCount >= 2,
      30_000,
      'retries of the endpoint that is down',
    );
    expect(stuck.status).toBe('pending');
    expect(stuck.attempts.every((a) => a.statusCode === 503)).toBe(true);
    for (const e of [flaky, down, fine]) await admin(base(), 'DELETE', `/v1/webhook-endpoints/${e.id}`);
  });

  it('an endpoint that hangs holds at most 4 POSTs: the others are delivered meanwhile', async () => {
    const hangs = await register('/hangs', ['subscriber.suppressed']);
    receiver.answer('/hangs', Array<number>(20).fill(HOLD), 200);
    await addAudience(stack.db.url, { prefix: 'hangfirst', count: 20, newsletter: 'spine-health' });
    await query(stack.db.url, `UPDATE subscribers SET status = 'bounced' WHERE email LIKE 'hangfirst%'`);
    await waitUntil(
      async () => receiver.at('/hangs').length,
      (n) => n === 4,
      30_000,
      'four held POSTs',
    );
    // Written after the twenty: they would wait behind them if the hanging endpoint took every slot.
    const fine = await register('/meanwhile', ['subscriber.suppressed']);
    await addAudience(stack.db.url, { prefix: 'hanglater', count: 10, newsletter: 'spine-health' });
    await query(stack.db.url, `UPDATE subscribers SET status = 'bounced' WHERE email LIKE 'hanglater%'`);
    await waitUntil(
      async () => eventsAt('/meanwhile', fine.secret).length,
      (n) => n === 10,
      30_000,
      'the other endpoint’s deliveries',
    );
    // The four POSTs still hang, unanswered and unrecorded; no fifth was started.
    expect(receiver.at('/hangs')).toHaveLength(4);
    const recorded = await query<{ n: number }>(
      stack.db.url,
      `SELECT count(*)::int AS n FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1`,
      [hangs.id],
    );
    expect(recorded[0].n).toBe(0);
    // Deleted first, so none of its other sixteen deliveries starts a POST once the four are answered.
    expect((await admin(base(), 'DELETE', `/v1/webhook-endpoints/${hangs.id}`)).status).toBe(204);
    receiver.answer('/hangs', [], 200);
    receiver.release(200);
    expect((await admin(base(), 'DELETE', `/v1/webhook-endpoints/${fine.id}`)).status).toBe(204);
  });

  it('survives a worker restart mid-retry and delivers once', async () => {
    const ep = await register('/restart', ['subscriber.suppressed']);
    receiver.answer('/restart', [500], 200);
    await addAudience(stack.db.url, { prefix: 'restart', count: 2, newsletter: 'spine-health' });
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'restart1@example.com', type: 'hard' });
    await waitUntil(
      () => deliveries(ep.id),
      (d) => d[0]?.attempts.length >= 1,
      30_000,
      'the first (failed) attempt',
    );
    await stack.apps.stopWorker();
    // Written while no worker runs: waits in PostgreSQL.
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'restart2@example.com', type: 'hard' });
    const waiting = await deliveries(ep.id);
    expect(waiting).toHaveLength(2);
    expect(waiting.every((d) => d.status === 'pending')).toBe(true);
    await stack.apps.startWorker();
    await waitUntil(
      () => deliveries(ep.id),
      (d) => d.length === 2 && d.every((x) => x.status === 'delivered'),
      30_000,
      'both delivered',
    );
    const ok = receiver.at('/restart').filter((r) => r.answered === 200);
    expect(ok).toHaveLength(2);
    expect(new Set(ok.map((r) => r.headers['webhook-id'])).size).toBe(2);
    expect(
      eventsAt('/restart', ep.secret)
        .map((e) => e.event.data.email)
        .sort(),
    ).toEqual(['restart1@example.com', 'restart2@example.com']);
    await admin(base(), 'DELETE', `/v1/webhook-endpoints/${ep.id}`);
  });

  it('replays a delivery with the same webhook-id, rotates the secret, pages deliveries, pauses endpoints', async () => {
    const ep = await register('/replay', ['subscriber.suppressed']);
    await addAudience(stack.db.url, { prefix: 'replay', count: 3, newsletter: 'spine-health' });
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'replay1@example.com', type: 'hard' });
    const first = await waitForEvent('/replay', ep.secret, 'subscriber.suppressed', () => true);

    const rotated = await admin<{ id: string; secret: string }>(
      base(),
      'POST',
      `/v1/webhook-endpoints/${ep.id}/rotate-secret`,
    );
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(ep.secret);
    const replay = await admin(base(), 'POST', `/v1/webhook-endpoints/${ep.id}/deliveries/${first.id}/replay`);
    expect(replay.status).toBe(202);
    await waitUntil(
      async () => receiver.at('/replay').length,
      (n) => n === 2,
      30_000,
      'the replay',
    );
    const again = receiver.at('/replay')[1];
    expect(again.headers['webhook-id']).toBe(first.id);
    expect(verified(rotated.body.secret, again).data.email).toBe('replay1@example.com');
    expect(() => verified(ep.secret, again)).toThrow();

    // Paused: events wait; enabled again: they go out.
    expect((await admin(base(), 'PATCH', `/v1/webhook-endpoints/${ep.id}`, { enabled: false })).status).toBe(200);
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'replay2@example.com', type: 'hard' });
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'replay3@example.com', type: 'hard' });
    const listed = await admin<{ items: { id: string; enabled: boolean; pendingDeliveries: number }[] }>(
      base(),
      'GET',
      '/v1/webhook-endpoints',
    );
    expect(listed.body.items.find((e) => e.id === ep.id)).toMatchObject({ enabled: false, pendingDeliveries: 2 });
    expect((await admin(base(), 'PATCH', `/v1/webhook-endpoints/${ep.id}`, { enabled: true })).status).toBe(200);
    await waitUntil(
      async () => receiver.at('/replay').length,
      (n) => n === 4,
      30_000,
      'the paused deliveries',
    );

    // Newest first, one per page, following `next`.
    const p1 = await admin<{ items: Delivery[]; next: string }>(
      base(),
      'GET',
      `/v1/webhook-endpoints/${ep.id}/deliveries?limit=1`,
    );
    expect(p1.body.items).toHaveLength(1);
    const p2 = await admin<{ items: Delivery[]; next: string }>(
      base(),
      'GET',
      `/v1/webhook-endpoints/${ep.id}/deliveries?limit=2&before=${p1.body.next}`,
    );
    expect(p2.body.items).toHaveLength(2);
    expect(p2.body.next).toBeNull();
    expect(p2.body.items.at(-1)!.id).toBe(first.id);
    expect(p2.body.items.at(-1)!.attemptCount).toBe(2);

    // Finished deliveries older than WEBHOOK_KEEP_DAYS (30) go, with their attempts; pending ones stay.
    await query(
      stack.db.url,
      `UPDATE webhook_deliveries SET created_at = now() - interval '31 days' WHERE endpoint_id = $1`,
      [ep.id],
    );
    await query(
      stack.db.url,
      `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now() + interval '1 hour' WHERE id = $1`,
      [first.id],
    );
    expect(await stack.apps.worker!.get(WebhookSender).prune()).toBe(2);
    expect((await deliveries(ep.id)).map((d) => d.id)).toEqual([first.id]);
  });

  it('console: admins list and add endpoints (secret shown once), see deliveries and replay; others cannot', async () => {
    const users = stack.apps.api.get(StaffUsersService);
    const ADMIN = { email: 'ada.hooks@example.com', password: 'correct horse battery staple' };
    const MARKETER = { email: 'mark.hooks@example.com', password: 'marketing-password-1' };
    expect((await users.create({ ...ADMIN, role: 'admin' })).ok).toBe(true);
    expect((await users.create({ ...MARKETER, role: 'marketer' })).ok).toBe(true);
    const a = new ConsoleBrowser(base());
    expect((await a.signIn(ADMIN.email, ADMIN.password)).status).toBe(303);
    const m = new ConsoleBrowser(base());
    expect((await m.signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
    expect((await m.get('/admin/webhooks')).status).toBe(403);
    expect((await m.get('/admin')).text).not.toContain('id="nav-webhooks"');

    const list = await a.get('/admin/webhooks');
    expect(list.status).toBe(200);
    expect(list.text).toContain('id="nav-webhooks"');
    const csrf = ConsoleBrowser.csrf(list.text);

    const refused = await a.request(
      'POST',
      '/admin/webhooks',
      new URLSearchParams([
        ['_csrf', csrf],
        ['url', 'http://169.254.169.254/'],
        ['events', 'digest.sent'],
      ]).toString(),
      { 'content-type': 'application/x-www-form-urlencoded' },
    );
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('id="webhook-url-error"');

    const created = await a.request(
      'POST',
      '/admin/webhooks',
      new URLSearchParams([
        ['_csrf', csrf],
        ['url', `${receiver.url}/console`],
        ['events', 'subscriber.suppressed'],
      ]).toString(),
      { 'content-type': 'application/x-www-form-urlencoded' },
    );
    expect(created.status).toBe(201);
    const secret = decode(/id="secret-value"[^>]*>([^<]+)</.exec(created.text)![1]);
    expect(secret).toMatch(/^whsec_/);
    const id = /href="\/admin\/webhooks\/([0-9a-f-]{36})"/.exec(created.text)![1];
    // Shown once: the list and the endpoint page never carry it again.
    expect(decode((await a.get('/admin/webhooks')).text)).not.toContain(secret);

    await addAudience(stack.db.url, { prefix: 'console', count: 1, newsletter: 'spine-health' });
    await admin(base(), 'POST', '/v1/webhooks/generic', { email: 'console1@example.com', type: 'hard' });
    const sent = await waitForEvent('/console', secret, 'subscriber.suppressed', () => true);
    const page = await a.get(`/admin/webhooks/${id}`);
    expect(page.status).toBe(200);
    expect(decode(page.text)).not.toContain(secret);
    expect(page.text).toContain(`data-delivery-id="${sent.id}" data-status="delivered"`);
    expect(page.text).toContain('HTTP 200');

    const replay = await a.post(`/admin/webhooks/${id}/deliveries/${sent.id}/replay`, { _csrf: csrf });
    expect(replay.status).toBe(303);
    await waitUntil(
      async () => receiver.at('/console').length,
      (n) => n === 2,
      30_000,
      'the replay from the console',
    );
    expect(receiver.at('/console')[1].headers['webhook-id']).toBe(sent.id);
    expect((await m.post(`/admin/webhooks/${id}/deliveries/${sent.id}/replay`, { _csrf: csrf })).status).toBe(403);
  });
});

describe('outgoing webhooks: a worker killed mid-POST', () => {
  let receiver: WebhookReceiver;
  // Before the stack: the worker processes run the build.
  beforeAll(async () => {
    buildOnce();
    receiver = await new WebhookReceiver().start();
  });
  const stack = useStack({
    label: 'webhooks_crash',
    worker: false,
    env: { FEED_ALLOW_PRIVATE: 'true', WEBHOOK_POLL_MS: '50', WEBHOOK_TIMEOUT_MS: '5000', LOG_LEVEL: 'warn' },
    prepare: () => addAudience(stack.db.url, { prefix: 'killed', count: 1, newsletter: 'spine-health' }),
  });
  const workers: WorkerProcess[] = [];
  afterAll(async () => {
    for (const w of workers) await w.stop('SIGKILL');
    await receiver?.stop();
  });

  it('sends the delivery again once the dead worker’s claim runs out; one 2xx, same webhook-id', async () => {
    const base = stack.apps.baseUrl;
    const ep = await admin<Endpoint>(base, 'POST', '/v1/webhook-endpoints', {
      url: `${receiver.url}/hang`,
      events: ['subscriber.suppressed'],
    });
    expect(ep.status).toBe(201);
    receiver.answer('/hang', [HOLD], 200);
    const first = new WorkerProcess(stack.processEnv()).start();
    workers.push(first);
    await admin(base, 'POST', '/v1/webhooks/generic', { email: 'killed1@example.com', type: 'hard' });
    await waitUntil(
      async () => receiver.at('/hang').length,
      (n) => n === 1,
      60_000,
      'the first POST',
    );
    await first.stop('SIGKILL');
    const [mid] = await query<{ status: string; attempts: number; n: number }>(
      stack.db.url,
      `SELECT status, attempts, (SELECT count(*)::int FROM webhook_attempts a WHERE a.delivery_id = d.id) AS n
         FROM webhook_deliveries d WHERE endpoint_id = $1`,
      [ep.body.id],
    );
    expect(mid).toEqual({ status: 'pending', attempts: 1, n: 0 });

    const second = new WorkerProcess(stack.processEnv()).start();
    workers.push(second);
    const [done] = await waitUntil(
      () =>
        admin<{ items: Delivery[] }>(base, 'GET', `/v1/webhook-endpoints/${ep.body.id}/deliveries`).then(
          (r) => r.body.items,
        ),
      (d) => d[0]?.status === 'delivered',
      60_000,
      'the delivery after the crash',
    );
    expect(done.attemptCount).toBe(2);
    const got = receiver.at('/hang');
    expect(got.map((r) => r.answered)).toEqual([HOLD, 200]);
    expect(got[1].headers['webhook-id']).toBe(got[0].headers['webhook-id']);
    expect(new Webhook(ep.body.secret).verify(got[1].body, got[1].headers)).toMatchObject({
      type: 'subscriber.suppressed',
      data: { email: 'killed1@example.com' },
    });
  });
});
