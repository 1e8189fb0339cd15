import 'reflect-metadata';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { slotCapacity, SLOTS_PER_SECOND } from '#mail/send-rate-limiter.service.js';
import { admin, waitUntil } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { type Backend, headerBlock, linkFrom } from './support/apps.js';
import { query } from './support/db.js';
import { ConsoleBrowser } from './support/console.js';
import { useStack } from './support/stack.js';
import { type CapturedMail, TestSmtp } from './support/smtp.js';

const PUBLIC = 'http://mailroom.test';
/** The rate of the `arthritis` route (mails per second), under the global SEND_RATE_PER_SECOND. */
const ARTHRITIS_RATE = 20;
const AUDIENCE = 25;

interface NewsletterBody {
  slug: string;
  smtpRoute: string | null;
  message?: string[] | string;
}

interface DigestBody {
  id: string;
  status: string;
  recipients: number;
  sent: number;
  failed: number;
  reason: string | null;
}

/**
 * SMTP routes per brand, against real PostgreSQL, the queue backend and four in-process SMTP
 * servers: SMTP_URL (the stack's) and one per route. The postgres run sends bulk mail from the
 * worker's main thread (SMTP_THREADS=0, `SmtpPool`), the redis run from sending threads (`SmtpThreads`).
 */
describe.each<[Backend, string]>([
  ['postgres', '0'],
  ['redis', '2'],
])('SMTP routes per brand on the %s queue backend (SMTP_THREADS=%s)', (backend, threads) => {
  const servers = {
    spine: new TestSmtp(),
    arthritis: new TestSmtp(),
    sports: new TestSmtp(),
  };
  type Route = keyof typeof servers;
  /** Each newsletter's route, and knee-health on none (SMTP_URL). */
  const ROUTE_OF: Record<string, Route | null> = {
    'spine-health': 'spine',
    'arthritis-health': 'arthritis',
    'sports-health': 'sports',
    'knee-health': null,
  };
  const audiences: Record<string, string[]> = {};

  beforeAll(async () => {
    await Promise.all(Object.values(servers).map((s) => s.start()));
  });
  afterAll(async () => {
    await Promise.all(Object.values(servers).map((s) => s.stop()));
  });

  const stack = useStack({
    label: `smtp_routes_${backend}`,
    queue: backend,
    env: () => ({
      SMTP_ROUTES: JSON.stringify({
        spine: servers.spine.url,
        arthritis: { url: servers.arthritis.url, rate: ARTHRITIS_RATE, maxConnections: 2 },
        sports: servers.sports.url,
      }),
      SEND_RATE_PER_SECOND: '1000',
      SMTP_THREADS: threads,
      SMTP_POOL_SIZE: '3',
      DIGEST_BATCH_SIZE: '10',
      DIGEST_POLICY_FAILURE_LIMIT: '3',
    }),
    prepare: async () => {
      for (const slug of ['spine-health', 'arthritis-health', 'sports-health'])
        audiences[slug] = await addAudience(stack.db.url, {
          prefix: `${slug}-${backend}-`,
          count: AUDIENCE,
          newsletter: slug,
        });
    },
  });
  const base = () => stack.apps.baseUrl;
  /** The server a newsletter's mail must reach: its route's, or SMTP_URL's. */
  const serverOf = (slug: string): TestSmtp => {
    const route = ROUTE_OF[slug];
    return route === null ? stack.smtp : servers[route];
  };
  const allServers = () => [stack.smtp, ...Object.values(servers)];
  const digest = (id: string) => admin<DigestBody>(base(), 'GET', `/v1/digests/${id}`).then((r) => r.body);
  const finished = (id: string) =>
    waitUntil(
      () => digest(id),
      (d) => !['scheduled', 'sending'].includes(d.status),
      60_000,
      `digest ${id}`,
    );
  /** Messages to `address` on every server but `except`. */
  const elsewhere = (address: string, except: TestSmtp): CapturedMail[] =>
    allServers()
      .filter((s) => s !== except)
      .flatMap((s) => s.to(address));

  it('smtpRoute on POST, PATCH and GET /v1/newsletters: a route name, null clears it, anything else is a 400', async () => {
    const unknown = await admin<NewsletterBody>(base(), 'POST', '/v1/newsletters', {
      slug: 'knee-health',
      name: 'Knee-health',
      smtpRoute: 'nowhere',
    });
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.body)).toContain(
      'smtpRoute must be one of the SMTP_ROUTES: spine, arthritis, sports',
    );
    expect(unknown.text).not.toMatch(/at .*\.ts:\d+/);
    // Nothing half-written.
    expect((await admin(base(), 'GET', '/v1/newsletters/knee-health')).status).toBe(404);

    const created = await admin<NewsletterBody>(base(), 'POST', '/v1/newsletters', {
      slug: 'knee-health',
      name: 'Knee-health',
      fromEmail: 'newsletter@knee-health.example',
      guide: 'natural-back-pain-relief',
      smtpRoute: 'sports',
    });
    expect(created.status).toBe(201);
    expect(created.body.smtpRoute).toBe('sports');
    const cleared = await admin<NewsletterBody>(base(), 'PATCH', '/v1/newsletters/knee-health', { smtpRoute: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.smtpRoute).toBeNull();

    for (const [slug, route] of Object.entries(ROUTE_OF)) {
      if (route === null) continue;
      const r = await admin<NewsletterBody>(base(), 'PATCH', `/v1/newsletters/${slug}`, {
        smtpRoute: route,
        guide: 'natural-back-pain-relief',
      });
      expect([slug, r.status, r.body.smtpRoute]).toEqual([slug, 200, route]);
    }
    const list = await admin<NewsletterBody[]>(base(), 'GET', '/v1/newsletters');
    expect(Object.fromEntries(list.body.map((n) => [n.slug, n.smtpRoute]))).toEqual(ROUTE_OF);
    expect((await admin<NewsletterBody>(base(), 'GET', '/v1/newsletters/spine-health')).body.smtpRoute).toBe('spine');
    // Each newsletter's route as a metric, to join the per-newsletter mail counters on.
    const metrics = await admin<string>(base(), 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    for (const [slug, route] of Object.entries(ROUTE_OF))
      expect(metrics.text).toContain(
        `mailroom_newsletter_smtp_route{newsletter="${slug}",route="${route ?? 'default'}"} 1`,
      );

    for (const bad of [42, '', 'Spine', 'sports\r\nBcc: x@example.com', 'x'.repeat(64), ['spine'], { name: 'spine' }]) {
      const r = await admin<NewsletterBody>(base(), 'PATCH', '/v1/newsletters/sports-health', { smtpRoute: bad });
      expect([bad, r.status]).toEqual([bad, 400]);
      expect(JSON.stringify(r.body.message)).toContain('smtpRoute');
    }
    expect((await admin<NewsletterBody>(base(), 'GET', '/v1/newsletters/sports-health')).body.smtpRoute).toBe('sports');
  });

  it("each newsletter's confirmation and guide leave through its route; no route: SMTP_URL", async () => {
    for (const slug of Object.keys(ROUTE_OF)) {
      const email = `reader-${slug}-${backend}@example.com`;
      const res = await fetch(`${base()}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, newsletters: [slug] }),
      });
      expect(res.status).toBe(202);
      const server = serverOf(slug);
      await server.waitFor(() => server.to(email).length === 1);
      const confirmLink = linkFrom(server.to(email)[0].parsed.text ?? '', `${PUBLIC}/confirm/`);
      const confirmed = await fetch(confirmLink.replace(PUBLIC, base()), {
        method: 'POST',
        headers: { accept: 'application/json' },
      });
      expect(confirmed.status).toBe(200);
      await server.waitFor(() => server.to(email).length === 2);
      const [confirmation, guide] = server.to(email);
      expect(confirmation.parsed.subject).toMatch(/confirm/i);
      expect(guide.parsed.subject).toMatch(/^Your free guide/);
      expect(headerBlock(guide.raw)).toMatch(/^List-Unsubscribe: <http:\/\/mailroom\.test\/unsubscribe\//m);
      expect(guide.parsed.text).toContain('/guides/natural-back-pain-relief/');
      expect([slug, elsewhere(email, server)]).toEqual([slug, []]);
    }
  });

  it("each route's digest reaches its own server only, everyone once; the rate-limited route keeps its own rate", async () => {
    const slugs = ['spine-health', 'arthritis-health', 'sports-health'];
    const ids: string[] = [];
    for (const slug of slugs) {
      const created = await admin<{ id: string }>(base(), 'POST', `/v1/newsletters/${slug}/digests`, {});
      expect(created.status).toBe(201);
      ids.push(created.body.id);
    }
    for (const [i, slug] of slugs.entries()) {
      const d = await finished(ids[i]);
      // The audience and the reader who confirmed in the last test.
      expect([slug, d]).toMatchObject([
        slug,
        { status: 'sent', recipients: AUDIENCE + 1, sent: AUDIENCE + 1, failed: 0 },
      ]);
      const server = serverOf(slug);
      for (const email of audiences[slug]) {
        expect([email, server.to(email).length]).toEqual([email, 1]);
        expect([email, elsewhere(email, server)]).toEqual([email, []]);
      }
      // The reader of the last test: confirmation, guide, and now the digest.
      const reader = `reader-${slug}-${backend}@example.com`;
      expect([reader, server.to(reader).length]).toEqual([reader, 3]);
      expect([reader, elsewhere(reader, server)]).toEqual([reader, []]);
    }
    // Mail from the SMTP_URL server: only knee-health's reader (its confirmation and guide).
    expect(new Set(stack.smtp.messages.flatMap((m) => m.envelope.to))).toEqual(
      new Set([`reader-knee-health-${backend}@example.com`]),
    );

    // The arthritis route's permits, counted per 50 ms slot in PostgreSQL: no slot over its share of
    // the route's rate, no second (20 slots) over 1.05 × the rate, and one permit at least per mail.
    const slots = await query<{ slot: string; n: number }>(
      stack.db.url,
      `SELECT slot::text AS slot, n FROM send_rate_route WHERE route = 'arthritis' ORDER BY slot`,
    );
    for (const s of slots)
      expect([s.slot, s.n]).toEqual([s.slot, Math.min(s.n, slotCapacity(ARTHRITIS_RATE, Number(s.slot)))]);
    const bySlot = new Map(slots.map((s) => [Number(s.slot), s.n]));
    for (const s of slots) {
      let window = 0;
      for (let k = 0; k < SLOTS_PER_SECOND; k += 1) window += bySlot.get(Number(s.slot) + k) ?? 0;
      expect(window).toBeLessThanOrEqual(Math.ceil(ARTHRITIS_RATE * 1.05));
    }
    const counted = slots.reduce((t, s) => t + s.n, 0);
    // The digest (26) and the lifecycle mail of the last test (2).
    expect(counted).toBeGreaterThanOrEqual(AUDIENCE + 1 + 2);
    // Routes without a rate of their own count nothing there (the global limit alone holds them).
    const others = await query<{ route: string }>(stack.db.url, `SELECT DISTINCT route FROM send_rate_route`);
    expect(others.map((r) => r.route)).toEqual(['arthritis']);

    // Test copies of each digest leave through the same route.
    for (const [i, slug] of slugs.entries()) {
      const to = `marketer-${slug}-${backend}@example.com`;
      const r = await admin(base(), 'POST', `/v1/digests/${ids[i]}/test`, { to });
      expect(r.status).toBe(202);
      const server = serverOf(slug);
      await server.waitFor(() => server.to(to).length === 1);
      expect(server.to(to)[0].parsed.subject).toMatch(/^\[Test\] /);
      expect([slug, elsewhere(to, server)]).toEqual([slug, []]);
    }
  });

  it('a route that answers 5.7.1 to everything pauses its digest, naming the route; the other routes send on', async () => {
    servers.sports.rcptHook = () => ({ code: 554, message: '5.7.1 Service unavailable; client host blocked' });
    const now = new Date().toISOString();
    for (const slug of ['spine-health', 'sports-health']) {
      const a = await admin(base(), 'POST', '/v1/articles', {
        url: `https://www.${slug}.example/news/route-test-${backend}`,
        title: `Route news for ${slug}`,
        publishedAt: now,
        newsletters: [slug],
      });
      expect(a.status).toBe(201);
    }
    // Two digests caught sending (no batches of their own run): knee-health's, moved onto the
    // blocked route, must pause with it; arthritis-health's, on another route, must not.
    expect((await admin(base(), 'PATCH', '/v1/newsletters/knee-health', { smtpRoute: 'sports' })).status).toBe(200);
    const sendingOf = async (slug: string) =>
      (
        await query<{ id: string }>(
          stack.db.url,
          `INSERT INTO digests (newsletter_id, status, trigger, send_at, started_at)
           SELECT id, 'sending', 'manual', now(), now() FROM newsletters WHERE slug = $1 RETURNING id::text AS id`,
          [slug],
        )
      )[0].id;
    const sameRoute = await sendingOf('knee-health');
    const otherRoute = await sendingOf('arthritis-health');
    const spineBefore = servers.spine.messages.length;
    const sportsBefore = servers.sports.messages.length;
    const blocked = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/sports-health/digests', {});
    const open = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/spine-health/digests', {});
    const [b, o] = await Promise.all([finished(blocked.body.id), finished(open.body.id)]);

    expect(b.status).toBe('failed');
    expect(b.reason).toMatch(
      /^paused: \d+ messages were rejected by the receiving servers' policy \(5\.7\.x\) through SMTP route "sports", last: /,
    );
    expect(b.reason).toContain('5.7.1');
    expect(b.failed).toBeGreaterThanOrEqual(3);
    expect(b.sent).toBe(0);
    // The blocked server accepted nothing; nobody was suppressed for a policy rejection.
    expect(servers.sports.messages.length).toBe(sportsBefore);
    const [suppressed] = await query<{ n: number }>(
      stack.db.url,
      `SELECT count(*)::int AS n FROM subscribers WHERE email LIKE 'sports-health-%' AND status <> 'ok'`,
    );
    expect(suppressed.n).toBe(0);

    expect(o).toMatchObject({ status: 'sent', recipients: AUDIENCE + 1, sent: AUDIENCE + 1, failed: 0 });
    const fresh = servers.spine.messages.slice(spineBefore);
    const perReader = new Map<string, number>();
    for (const m of fresh) for (const t of m.envelope.to) perReader.set(t, (perReader.get(t) ?? 0) + 1);
    const readers = [...audiences['spine-health'], `reader-spine-health-${backend}@example.com`];
    expect(perReader.size).toBe(readers.length);
    for (const email of readers) expect([email, perReader.get(email)]).toEqual([email, 1]);
    const status = (id: string) =>
      query<{ status: string; reason: string | null }>(
        stack.db.url,
        `SELECT status, reason FROM digests WHERE id = $1`,
        [id],
      ).then((r) => r[0]);
    const paused = await status(sameRoute);
    expect(paused.status).toBe('failed');
    expect(paused.reason).toMatch(
      new RegExp(`^paused: digest ${blocked.body.id} through SMTP route "sports" met \\d+ policy rejections`),
    );
    expect(await status(otherRoute)).toEqual({ status: 'sending', reason: null });

    await query(stack.db.url, `UPDATE digests SET status = 'cancelled' WHERE id = $1`, [otherRoute]);
    servers.sports.rcptHook = () => null;
  });
  it("the console's newsletter form offers the routes, saves one, refuses another name and keeps the route when the form does not show it", async () => {
    const staff = { email: `admin-${backend}@example.com`, password: 'route-admin-password-1' };
    expect((await stack.apps.api.get(StaffUsersService).create({ ...staff, role: 'admin' })).ok).toBe(true);
    const m = new ConsoleBrowser(base());
    expect((await m.signIn(staff.email, staff.password)).status).toBe(303);
    const csrf = await m.csrfToken();
    const page = await m.get('/admin/newsletters/sports-health');
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<select id="nl-smtp-route" name="smtpRoute"/);
    expect(page.text).toContain('<option value="sports" selected>sports</option>');
    expect(page.text).toContain('<option value="arthritis">arthritis</option>');
    const route = async () =>
      (await admin<NewsletterBody>(base(), 'GET', '/v1/newsletters/sports-health')).body.smtpRoute;
    const form = { _csrf: csrf, name: 'Sports-health', routeShown: '1' };

    const saved = await m.post('/admin/newsletters/sports-health', { ...form, smtpRoute: 'arthritis' });
    expect([saved.status, saved.location]).toEqual([303, '/admin/newsletters/sports-health?notice=saved']);
    expect(await route()).toBe('arthritis');

    const bad = await m.post('/admin/newsletters/sports-health', { ...form, smtpRoute: 'nowhere' });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain(
      '<p class="field-error" id="nl-smtp-route-error">smtpRoute must be one of the SMTP_ROUTES: spine, arthritis, sports</p>',
    );
    expect(await route()).toBe('arthritis');

    // A post of the form without the route's choice (an older page) leaves the route alone.
    const { routeShown: _shown, ...older } = form;
    expect((await m.post('/admin/newsletters/sports-health', older)).status).toBe(303);
    expect(await route()).toBe('arthritis');

    // The empty choice: back to SMTP_URL; then back to its own route.
    expect((await m.post('/admin/newsletters/sports-health', { ...form, smtpRoute: '' })).status).toBe(303);
    expect(await route()).toBeNull();
    expect((await m.post('/admin/newsletters/sports-health', { ...form, smtpRoute: 'sports' })).status).toBe(303);
    expect(await route()).toBe('sports');
  });
});
