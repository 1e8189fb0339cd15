import 'reflect-metadata';
import { nextRuns } from '#digests/digests.service.js';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { admin, waitUntil } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser, type Page } from './support/console.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

const MARKETER = { email: 'marketer@example.com', password: 'marketing-password-1' };
const RECIPIENTS = 30;

interface Progress {
  status: string;
  recipients: number;
  sent: number;
  failed: number;
  remaining: number;
  percent: number;
  rate: number;
  etaSeconds: number | null;
}

/** HTML entity-decoding for the few entities Handlebars writes into attributes. */
function decode(s: string): string {
  return s
    .replace(/&#x2F;/g, '/')
    .replace(/&#x3D;/g, '=')
    .replace(/&amp;/g, '&')
    .replace(/&#x27;/g, "'")
    .replace(/&quot;/g, '"');
}

/** The fields a form (by id) would post: its inputs' names and values, in order (hidden inputs only). */
function hiddenFields(html: string, formId: string): [string, string][] {
  const form = new RegExp(`<form[^>]*id="${formId}"[\\s\\S]*?</form>`).exec(html)?.[0] ?? '';
  return [...form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [
    decode(m[1]),
    decode(m[2]),
  ]);
}

/** The ids the compose page offers, in its order. */
function offered(page: Page): string[] {
  return [...page.text.matchAll(/name="offered" value="(\d+)"/g)].map((m) => m[1]);
}

describe('console: newsletters, articles and digests', () => {
  const stack = useStack({
    label: 'console_content',
    queue: 'redis',
    env: { SEND_RATE_PER_SECOND: '20', FEED_ALLOW_PRIVATE: 'true', FEED_ALLOWED_PORTS: '*' },
    prepare: () => addAudience(stack.db.url, { prefix: 'reader', count: RECIPIENTS, newsletter: 'spine-health' }),
  });
  let m: ConsoleBrowser;
  let csrf: string;

  const article = (slug: string, title: string, hoursAgo: number) =>
    admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
      url: `https://www.spine-health.example/console/${slug}`,
      title,
      publishedAt: new Date(Date.now() - hoursAgo * 3_600_000).toISOString(),
      newsletters: ['spine-health'],
    });
  const progress = async (id: string): Promise<Progress> => {
    const res = await m.get(`/admin/digests/${id}/progress`, { accept: 'application/json' });
    expect(res.status).toBe(200);
    return JSON.parse(res.text) as Progress;
  };

  beforeAll(async () => {
    const created = await stack.apps.api.get(StaffUsersService).create({ ...MARKETER, role: 'marketer' });
    expect(created.ok).toBe(true);
    m = new ConsoleBrowser(stack.apps.baseUrl);
    expect((await m.signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
    csrf = await m.csrfToken();
  });

  describe('access', () => {
    it('sends a visitor who is not signed in to the sign-in page (302), and a JSON client a 401', async () => {
      const anon = new ConsoleBrowser(stack.apps.baseUrl);
      for (const path of ['/admin/newsletters', '/admin/articles', '/admin/digests', '/admin/digests/new']) {
        const res = await anon.get(path);
        expect([path, res.status, res.location]).toEqual([path, 302, `/admin/login?next=${encodeURIComponent(path)}`]);
      }
      expect((await anon.get('/admin/digests/1/progress', { accept: 'application/json' })).status).toBe(401);
      const post = await anon.post('/admin/newsletters/spine-health/schedule', {
        day: '2',
        time: '09:00',
        timezone: 'UTC',
      });
      expect(post.status).toBe(303);
      expect(post.location).toBe('/admin/login');
    });

    it('refuses state-changing forms without the session CSRF token (403) and changes nothing', async () => {
      const schedule = await m.post('/admin/newsletters/spine-health/schedule', {
        day: '2',
        time: '09:00',
        timezone: 'UTC',
      });
      expect(schedule.status).toBe(403);
      const compose = await m.post('/admin/digests', { newsletter: 'spine-health', action: 'send' });
      expect(compose.status).toBe(403);
      const art = await m.post('/admin/articles', {
        _csrf: 'x'.repeat(43),
        url: 'https://www.spine-health.example/csrf',
        title: 'No',
        publishedAt: '2026-01-01T00:00',
      });
      expect(art.status).toBe(403);
      const [{ n }] = await query<{ n: number }>(
        stack.db.url,
        `SELECT (SELECT count(*) FROM digests)::int + (SELECT count(*) FROM articles WHERE url LIKE '%/csrf')::int
           + (SELECT count(*) FROM newsletters WHERE schedule_cron IS NOT NULL AND slug = 'spine-health')::int AS n`,
      );
      expect(n).toBe(0);
    });
  });

  describe('newsletters', () => {
    it('lists the newsletters and edits details with the API rules, errors next to the field', async () => {
      const list = await m.get('/admin/newsletters');
      expect(list.status).toBe(200);
      expect(list.text).toContain('<tr data-newsletter="spine-health">');
      expect(list.text).toContain('aria-current="page">Newsletters<');

      const bad = await m.post('/admin/newsletters/spine-health', {
        _csrf: csrf,
        name: 'Spine-health',
        fromEmail: 'not-an-address',
        feedUrl: 'ftp://example.com/feed',
      });
      expect(bad.status).toBe(400);
      expect(bad.text).toMatch(/id="nl-from-email"[^>]*aria-invalid="true"/);
      expect(bad.text).toContain(
        '<p class="field-error" id="nl-from-email-error">fromEmail must be an email address</p>',
      );
      expect(bad.text).toContain('<p class="field-error" id="nl-feed-url-error">feedUrl must be an http(s) URL</p>');
      expect(bad.text).toContain('value="not-an-address"');

      const ok = await m.post('/admin/newsletters/spine-health', {
        _csrf: csrf,
        name: 'Spine-health Weekly',
        description: 'Back and neck news',
        fromName: 'Spine-health',
        fromEmail: 'news@spine-health.example',
        guide: 'natural-back-pain-relief',
        feedUrl: '',
      });
      expect([ok.status, ok.location]).toEqual([303, '/admin/newsletters/spine-health?notice=saved']);
      const got = await admin<{ name: string; fromEmail: string; guide: string; feedUrl: string | null }>(
        stack.apps.baseUrl,
        'GET',
        '/v1/newsletters/spine-health',
      );
      expect(got.body).toMatchObject({
        name: 'Spine-health Weekly',
        fromEmail: 'news@spine-health.example',
        guide: 'natural-back-pain-relief',
        feedUrl: null,
      });
    });

    it('sets the weekly schedule with day, time and zone: writes the cron, says it in words, shows the next 3 sends', async () => {
      const page = await m.get('/admin/newsletters/spine-health');
      expect(page.status).toBe(200);
      expect(page.text).toContain('<option value="America/Chicago">America/Chicago</option>');
      expect(page.text).toMatch(
        /<select id="schedule-day" name="day">[\s\S]*<option value="daily">Every day<\/option>/,
      );

      const res = await m.post('/admin/newsletters/spine-health/schedule', {
        _csrf: csrf,
        day: '2',
        time: '09:00',
        timezone: 'America/Chicago',
      });
      expect([res.status, res.location]).toEqual([303, '/admin/newsletters/spine-health?notice=scheduled']);
      const [row] = await query<{ schedule_cron: string; schedule_timezone: string }>(
        stack.db.url,
        `SELECT schedule_cron, schedule_timezone FROM newsletters WHERE slug = 'spine-health'`,
      );
      expect(row).toEqual({ schedule_cron: '0 9 * * 2', schedule_timezone: 'America/Chicago' });
      // The same path as PUT /v1/newsletters/:slug/schedule: an outbox event for the worker's schedule sync.
      const events = await query(stack.db.url, `SELECT 1 FROM outbox WHERE type = 'schedule.changed'`);
      expect(events.length).toBeGreaterThanOrEqual(1);

      const shown = await m.get('/admin/newsletters/spine-health?notice=scheduled');
      expect(shown.text).toContain('Sends <strong>every Tuesday at 09:00, America/Chicago</strong>');
      const times = [...shown.text.matchAll(/<li><time datetime="([^"]+)">([^<]+)<\/time><\/li>/g)];
      expect(times.map((t) => t[1])).toEqual(nextRuns('0 9 * * 2', 'America/Chicago', 3));
      // In the schedule's zone, named (as every digest time in the console).
      for (const t of times) expect(decode(t[2])).toMatch(/^\d{4}-\d{2}-\d{2} 09:00 America\/Chicago$/);
      for (const t of times) expect(new Date(t[1]).getUTCDay()).toBe(2);
      // The control shows the schedule it wrote.
      expect(shown.text).toContain('<option value="2" selected>Tuesday</option>');
      expect(shown.text).toContain('id="schedule-time" name="time" value="09:00"');
      expect(shown.text).toContain('<option value="America/Chicago" selected>America/Chicago</option>');
      const list = await m.get('/admin/newsletters');
      expect(list.text).toMatch(/data-newsletter="spine-health">[\s\S]*?every Tuesday at 09:00, America\/Chicago/);

      const daily = await m.post('/admin/newsletters/arthritis-health/schedule', {
        _csrf: csrf,
        day: 'daily',
        time: '18:30',
        timezone: 'Europe/Berlin',
      });
      expect(daily.status).toBe(303);
      expect((await m.get('/admin/newsletters/arthritis-health')).text).toContain('every day at 18:30, Europe/Berlin');
      expect((await m.get('/admin/newsletters/arthritis-health')).text).not.toContain('id="schedule-local"');

      // In each reader's own zone: the box sets delivery "local", and the page says so.
      const local = await m.post('/admin/newsletters/sports-health/schedule', {
        _csrf: csrf,
        day: '1',
        time: '07:00',
        timezone: 'Europe/Berlin',
        delivery: 'local',
      });
      expect(local.status).toBe(303);
      const [l] = await query<{ schedule_delivery: string }>(
        stack.db.url,
        `SELECT schedule_delivery FROM newsletters WHERE slug = 'sports-health'`,
      );
      expect(l.schedule_delivery).toBe('local');
      const localPage = (await m.get('/admin/newsletters/sports-health')).text;
      expect(localPage).toContain("at that time in each reader's own time zone");
      expect(localPage).toMatch(/id="schedule-delivery" name="delivery" value="local" checked/);
    });

    it('refuses a bad time or zone with a message next to the field', async () => {
      const res = await m.post('/admin/newsletters/spine-health/schedule', {
        _csrf: csrf,
        day: '2',
        time: '9am',
        timezone: 'Mars/Olympus',
      });
      expect(res.status).toBe(400);
      expect(res.text).toContain('<p class="field-error" id="schedule-time-error">Time must be HH:MM');
      expect(res.text).toContain('<p class="field-error" id="schedule-timezone-error">Choose a time zone');
      const [row] = await query<{ schedule_cron: string }>(
        stack.db.url,
        `SELECT schedule_cron FROM newsletters WHERE slug = 'spine-health'`,
      );
      expect(row.schedule_cron).toBe('0 9 * * 2');
    });

    it('removes the schedule after a confirmation page', async () => {
      const confirm = await m.get('/admin/newsletters/arthritis-health/schedule/remove');
      expect(confirm.status).toBe(200);
      expect(confirm.text).toContain('id="confirm-remove-schedule"');
      expect(confirm.text).toContain('every day at 18:30, Europe/Berlin');
      const res = await m.post('/admin/newsletters/arthritis-health/schedule/remove', { _csrf: csrf });
      expect([res.status, res.location]).toEqual([303, '/admin/newsletters/arthritis-health?notice=unscheduled']);
      const [row] = await query<{ schedule_cron: string | null }>(
        stack.db.url,
        `SELECT schedule_cron FROM newsletters WHERE slug = 'arthritis-health'`,
      );
      expect(row.schedule_cron).toBeNull();
    });
  });

  describe('articles', () => {
    it('adds an article through the upsert, with errors next to the fields, and edits it', async () => {
      const bad = await m.post('/admin/articles', {
        _csrf: csrf,
        url: 'not a url',
        title: '',
        publishedAt: 'yesterday',
        newsletters: 'spine-health',
      });
      expect(bad.status).toBe(400);
      expect(bad.text).toContain('<p class="field-error" id="article-url-error">url must be an http(s) URL</p>');
      expect(bad.text).toContain('<p class="field-error" id="article-title-error">title must not be empty</p>');
      expect(bad.text).toContain('id="article-published-error">publishedAt must be an ISO 8601 date-time</p>');

      const form = {
        _csrf: csrf,
        url: 'https://www.spine-health.example/console/100%-posture',
        title: 'Posture: 100% of the basics',
        summary: 'Sit up.',
        imageUrl: 'https://www.spine-health.example/img/posture.jpg',
        topics: 'Posture, Neck Pain',
        publishedAt: '2026-11-20T08:30',
      };
      const created = await m.request(
        'POST',
        '/admin/articles',
        `${new URLSearchParams(form).toString()}&newsletters=spine-health&newsletters=sports-health`,
        { 'content-type': 'application/x-www-form-urlencoded' },
      );
      expect(created.status).toBe(303);
      expect(created.location).toMatch(/^\/admin\/articles\/\d+\?notice=created$/);
      const listed = await admin<{ url: string; topics: string[]; newsletters: string[]; publishedAt: string }[]>(
        stack.apps.baseUrl,
        'GET',
        '/v1/articles?newsletter=sports-health',
      );
      expect(listed.body.find((a) => a.url === form.url)).toMatchObject({
        topics: ['Posture', 'Neck Pain'],
        newsletters: ['spine-health', 'sports-health'],
        publishedAt: '2026-11-20T08:30:00.000Z',
      });

      const editPath = created.location!.replace(/\?.*/, '');
      const edit = await m.get(editPath);
      expect(edit.status).toBe(200);
      expect(edit.text).toContain('value="Posture: 100% of the basics"');
      expect(edit.text).toMatch(/id="article-nl-sports-health" checked/);
      const saved = await m.post(editPath, { ...form, url: 'https://evil.example/moved', title: 'Posture basics' });
      expect([saved.status, saved.location]).toEqual([303, `${editPath}?notice=saved`]);
      const [row] = await query<{ title: string; n: number }>(
        stack.db.url,
        `SELECT title, (SELECT count(*) FROM article_newsletters an WHERE an.article_id = a.id)::int AS n
         FROM articles a WHERE url = $1`,
        [form.url],
      );
      // The URL is the article's key: it stays; no newsletter ticked now means none.
      expect(row).toEqual({ title: 'Posture basics', n: 0 });
      expect(await query(stack.db.url, `SELECT 1 FROM articles WHERE url = 'https://evil.example/moved'`)).toHaveLength(
        0,
      );
    });

    it('searches title and URL (a literal %, parameterised), filters by newsletter, pages latest first', async () => {
      await query(
        stack.db.url,
        `WITH a AS (
           INSERT INTO articles (url, title, topics, published_at, source)
           SELECT 'https://www.arthritis-health.example/bulk/' || g, 'Bulk knee article ' || g, '{}', now() - make_interval(days => 400 + g), 'api'
           FROM generate_series(1, 30) g RETURNING id)
         INSERT INTO article_newsletters (article_id, newsletter_id) SELECT id, (SELECT id FROM newsletters WHERE slug = 'arthritis-health') FROM a`,
      );
      const percent = await m.get(`/admin/articles?q=${encodeURIComponent('100%')}`);
      expect(percent.status).toBe(200);
      expect(percent.text).toContain('data-total="1"');
      expect(percent.text).toContain('data-url="https://www.spine-health.example/console/100%-posture"');
      const injection = await m.get(`/admin/articles?q=${encodeURIComponent("' OR 1=1 --")}`);
      expect(injection.status).toBe(200);
      expect(injection.text).toContain('data-total="0"');
      expect(injection.text).toContain('id="articles-empty"');

      const bulk = await m.get('/admin/articles?q=KNEE&newsletter=arthritis-health');
      expect(bulk.text).toContain('data-total="30"');
      const first = [...bulk.text.matchAll(/data-url="https:\/\/www\.arthritis-health\.example\/bulk\/(\d+)"/g)].map(
        (x) => Number(x[1]),
      );
      expect(first).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      expect(bulk.text).toContain('Page 1 of 2');
      const nextHref = /href="([^"]+)" id="articles-next"/.exec(bulk.text);
      expect(nextHref?.[1]).toBeDefined();
      const page2 = await m.get(decode(nextHref![1]));
      expect(page2.text).toContain('Page 2 of 2');
      expect([
        ...page2.text.matchAll(/data-url="https:\/\/www\.arthritis-health\.example\/bulk\/(\d+)"/g),
      ]).toHaveLength(5);
      const other = await m.get('/admin/articles?q=knee&newsletter=sports-health');
      expect(other.text).toContain('data-total="0"');
    });

    it('shows each feed with its last poll and last error, and polls one now', async () => {
      await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/sports-health', {
        feedUrl: 'http://127.0.0.1:1/feed.xml',
      });
      const before = await m.get('/admin/articles');
      expect(before.text).toMatch(
        /<tr data-feed="sports-health">[\s\S]*?http:\/\/127\.0\.0\.1:1\/feed\.xml[\s\S]*?Never/,
      );
      expect(before.text).toContain('id="poll-sports-health">Poll now</button>');
      const res = await m.post('/admin/articles/feeds/sports-health/poll', { _csrf: csrf });
      expect(res.status).toBe(303);
      expect(res.location).toBe('/admin/articles?feed=sports-health&polled=error#feeds');
      const after = await m.get(res.location!.replace(/#.*/, ''));
      expect(after.text).toMatch(/id="feed-error-sports-health" data-feed-error>Last error: [^<]+/);
      expect(after.text).toMatch(/<tr data-feed="sports-health">[\s\S]*?data-polled-at>/);
      expect(after.text).toContain('id="feed-result-sports-health">The poll failed');
    });
  });

  describe('digests', () => {
    let sentId: string;

    it('composes with articles dropped and reordered, previews them, and the sent digest carries exactly those, in that order', async () => {
      await article('one', 'Console one', 1);
      await article('two', 'Console two', 2);
      await article('three', 'Console three', 3);
      const page = await m.get('/admin/digests/new?newsletter=spine-health');
      expect(page.status).toBe(200);
      const ids = offered(page);
      expect(ids.length).toBeGreaterThanOrEqual(4);
      const titles = await query<{ id: string; title: string }>(
        stack.db.url,
        `SELECT id::text, title FROM articles WHERE id = ANY($1::bigint[])`,
        [ids],
      );
      const titleOf = (id: string) => titles.find((t) => t.id === id)!.title;
      // The planner's own candidates, newest first.
      expect(ids.slice(0, 3).map(titleOf)).toEqual(['Console one', 'Console two', 'Console three']);

      // Keep three, drop the rest, and order them three, one, then the oldest candidate.
      const keep = [ids[2], ids[0], ids[ids.length - 1]];
      const dropped = ids.filter((id) => !keep.includes(id));
      const body = new URLSearchParams({ _csrf: csrf, newsletter: 'spine-health' });
      for (const id of ids) body.append('offered', id);
      for (const id of keep) body.append('article', id);
      ids.forEach((id) => body.append(`position-${id}`, String(keep.includes(id) ? keep.indexOf(id) + 1 : 50)));
      const post = (action: string) =>
        m.request('POST', '/admin/digests', `${body.toString()}&action=${action}`, {
          'content-type': 'application/x-www-form-urlencoded',
        });

      const preview = await post('preview');
      expect(preview.status).toBe(200);
      expect(offered(preview).slice(0, 3)).toEqual(keep);
      expect(preview.text).toContain('id="chosen-count" style="font-weight:400;font-size:15px">(3 chosen)');
      const src = /<iframe src="([^"]+)" title="Preview at desktop width"/.exec(preview.text)?.[1];
      expect(src).toBeDefined();
      expect(preview.text).toMatch(/<iframe src="[^"]+" title="Preview at mobile width"[^>]*width="375"/);
      const frame = await m.get(decode(src!));
      expect(frame.status).toBe(200);
      expect(frame.headers.get('content-security-policy')).toMatch(/default-src 'none'.*sandbox/);
      expect(frame.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      const at = keep.map((id) => frame.text.indexOf(titleOf(id)));
      expect(at.every((i) => i > 0)).toBe(true);
      expect([...at].sort((a, b) => a - b)).toEqual(at);
      for (const id of dropped) expect(frame.text).not.toContain(`>${titleOf(id)}<`);

      // "Send now…" creates nothing: it asks first, naming the issue, the readers and the newsletter.
      const digestsBefore = (await query(stack.db.url, `SELECT 1 FROM digests`)).length;
      const ask = await post('send');
      expect(ask.status).toBe(200);
      const [{ name }] = await query<{ name: string }>(
        stack.db.url,
        `SELECT name FROM newsletters WHERE slug = 'spine-health'`,
      );
      expect(ask.text).toContain(`Send this digest (3 articles) to ${RECIPIENTS} readers of ${name} now?`);
      expect(ask.text).toContain(`id="confirm-send">Send to ${RECIPIENTS} readers now</button>`);
      expect((await query(stack.db.url, `SELECT 1 FROM digests`)).length).toBe(digestsBefore);
      // Its button posts the same choice and order back.
      const confirmBody = new URLSearchParams(hiddenFields(ask.text, 'send-confirm-form'));
      confirmBody.append('action', 'send-confirmed');
      const sent = await m.request('POST', '/admin/digests', confirmBody.toString(), {
        'content-type': 'application/x-www-form-urlencoded',
      });
      expect(sent.status).toBe(303);
      expect(sent.location).toMatch(/^\/admin\/digests\/\d+\?notice=sending$/);
      sentId = /\/admin\/digests\/(\d+)/.exec(sent.location!)![1];

      const digestPage = await m.get(sent.location!);
      expect(digestPage.status).toBe(200);
      expect(digestPage.text).toMatch(/<progress id="digest-progress" max="100" value="\d+"[^>]*aria-valuenow="\d+"/);
      expect(digestPage.text).toContain(`data-src="/admin/digests/${sentId}/progress"`);

      const seen: Progress[] = [];
      const done = await waitUntil(
        async () => {
          const p = await progress(sentId);
          seen.push(p);
          return p;
        },
        (p) => p.status === 'sent',
        60_000,
        'digest sent',
      );
      expect(done).toMatchObject({ recipients: RECIPIENTS, sent: RECIPIENTS, failed: 0, remaining: 0, percent: 100 });
      expect(done.rate).toBeGreaterThan(0);
      // While it sent, the figures moved forward and never past the total.
      const sending = seen.filter((p) => p.status === 'sending' && p.recipients > 0);
      for (const p of sending) {
        expect(p.sent + p.failed + p.remaining).toBeLessThanOrEqual(RECIPIENTS);
        expect(p.percent).toBeLessThanOrEqual(100);
      }

      const mails = await stack.smtp.waitFor(
        (all) => all.filter((x) => x.envelope.to[0]?.startsWith('reader')).length >= RECIPIENTS,
      );
      const one = mails.find((x) => x.envelope.to[0] === 'reader1@example.com')!;
      const html = String(one.parsed.html);
      const positions = keep.map((id) => html.indexOf(titleOf(id)));
      expect(positions.every((i) => i > 0)).toBe(true);
      expect([...positions].sort((a, b) => a - b)).toEqual(positions);
      for (const id of dropped) expect(html).not.toContain(`>${titleOf(id)}<`);
      const attached = await query<{ article_id: string }>(
        stack.db.url,
        `SELECT article_id::text FROM digest_articles WHERE digest_id = $1 ORDER BY position`,
        [sentId],
      );
      expect(attached.map((a) => a.article_id)).toEqual(keep);

      const final = await m.get(`/admin/digests/${sentId}`);
      expect(final.text).toMatch(/id="digest-progress" max="100" value="100"/);
      expect(final.text).toContain(`data-sent="${RECIPIENTS}"`);
      expect(final.text).toContain('data-live="false"');
      const list = await m.get('/admin/digests');
      expect(list.text).toMatch(
        new RegExp(
          `data-digest-id="${sentId}" data-newsletter="spine-health" data-status="sent">[\\s\\S]*?data-sent>${RECIPIENTS}<`,
        ),
      );
    });

    it('refuses a compose with no article, with the message next to the list', async () => {
      const res = await m.post('/admin/digests', { _csrf: csrf, newsletter: 'spine-health', action: 'send' });
      expect(res.status).toBe(400);
      expect(res.text).toContain('Choose at least one article');
    });

    it('schedules a composed digest, sends a test copy over SMTP, then cancels it after a confirmation', async () => {
      await article('four', 'Console four', 0);
      const [four] = await query<{ id: string }>(
        stack.db.url,
        `SELECT id::text FROM articles WHERE url = 'https://www.spine-health.example/console/four'`,
      );
      const page = await m.get('/admin/digests/new?newsletter=spine-health');
      // Newest first; articles the editor left out of the last digest are offered again (not yet carried).
      const ids = offered(page);
      expect(ids[0]).toBe(four.id);
      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      const past = await m.request(
        'POST',
        '/admin/digests',
        new URLSearchParams({
          _csrf: csrf,
          newsletter: 'spine-health',
          offered: ids[0],
          article: ids[0],
          [`position-${ids[0]}`]: '1',
          when: 'later',
          sendAt: '2020-01-01T09:00',
          timezone: 'America/Chicago',
          action: 'schedule',
        }).toString(),
        { 'content-type': 'application/x-www-form-urlencoded' },
      );
      expect(past.status).toBe(400);
      expect(past.text).toContain('<p class="field-error" id="send-at-error">Choose a time in the future');

      const res = await m.post('/admin/digests', {
        _csrf: csrf,
        newsletter: 'spine-health',
        offered: ids[0],
        article: ids[0],
        [`position-${ids[0]}`]: '1',
        when: 'later',
        sendAt: `${tomorrow}T09:00`,
        timezone: 'America/Chicago',
        action: 'schedule',
      });
      expect(res.status).toBe(303);
      const id = /\/admin\/digests\/(\d+)\?notice=scheduled/.exec(res.location ?? '')![1];
      const [row] = await query<{ status: string; send_at: Date }>(
        stack.db.url,
        `SELECT status, send_at FROM digests WHERE id = $1`,
        [id],
      );
      expect(row.status).toBe('scheduled');
      const chicago = new Intl.DateTimeFormat('en-US', {
        timeZone: 'America/Chicago',
        hour: '2-digit',
        minute: '2-digit',
        hourCycle: 'h23',
      }).format(row.send_at);
      expect(chicago).toBe('09:00');

      const badTest = await m.post(`/admin/digests/${id}/test`, { _csrf: csrf, to: 'nope' });
      expect(badTest.status).toBe(400);
      expect(badTest.text).toMatch(/<p class="field-error" id="test-to-error">to /);
      const test = await m.post(`/admin/digests/${id}/test`, { _csrf: csrf, to: 'qa@example.com' });
      expect([test.status, test.location]).toEqual([303, `/admin/digests/${id}?notice=test-sent`]);
      const [mail] = await stack.smtp.waitFor((all) => all.some((x) => x.envelope.to.includes('qa@example.com')));
      void mail;
      const copy = stack.smtp.to('qa@example.com')[0];
      expect(copy.parsed.subject).toMatch(/^\[Test\] /);
      expect(String(copy.parsed.html)).toContain('Console four');

      const confirm = await m.get(`/admin/digests/${id}/cancel`);
      expect(confirm.status).toBe(200);
      expect(confirm.text).toContain('id="confirm-cancel">Cancel digest</button>');
      expect(
        (await query(stack.db.url, `SELECT 1 FROM digests WHERE id = $1 AND status = 'scheduled'`, [id])).length,
      ).toBe(1);
      const cancelled = await m.post(`/admin/digests/${id}/cancel`, { _csrf: csrf });
      expect([cancelled.status, cancelled.location]).toEqual([303, `/admin/digests/${id}?notice=cancelled`]);
      expect((await progress(id)).status).toBe('cancelled');
      const again = await m.post(`/admin/digests/${id}/cancel`, { _csrf: csrf });
      expect(again.status).toBe(409);
    });

    it('sends a scheduled digest now from its page', async () => {
      await article('five', 'Console five', 0);
      const page = await m.get('/admin/digests/new?newsletter=spine-health');
      const ids = offered(page);
      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      const res = await m.post('/admin/digests', {
        _csrf: csrf,
        newsletter: 'spine-health',
        offered: ids[0],
        article: ids[0],
        [`position-${ids[0]}`]: '1',
        sendAt: `${tomorrow}T09:00`,
        timezone: 'UTC',
        action: 'schedule',
      });
      const id = /\/admin\/digests\/(\d+)/.exec(res.location ?? '')![1];
      const shown = await m.get(`/admin/digests/${id}`);
      // "Send now…" opens a confirmation page with the count; only its button sends.
      expect(shown.text).toContain(`href="/admin/digests/${id}/send" id="send-now">Send now…</a>`);
      const ask = await m.get(`/admin/digests/${id}/send`);
      expect(ask.status).toBe(200);
      // A scheduled digest already names the subject it will carry.
      expect(ask.text).toMatch(
        new RegExp(
          `Send digest #${id} “Spine-health[^”]*: [^”]+” to ${RECIPIENTS} readers of Spine-health[^<]* now\\?`,
        ),
      );
      expect(ask.text).toContain(`<form method="post" action="/admin/digests/${id}/send" id="send-confirm-form">`);
      expect((await progress(id)).status).toBe('scheduled');
      const now = await m.post(`/admin/digests/${id}/send`, { _csrf: csrf });
      expect([now.status, now.location]).toEqual([303, `/admin/digests/${id}?notice=send-now`]);
      const done = await waitUntil(
        () => progress(id),
        (p) => p.status === 'sent',
        60_000,
        'digest sent now',
      );
      expect(done).toMatchObject({ sent: RECIPIENTS, recipients: RECIPIENTS, percent: 100 });
    });

    it('POST /v1/newsletters/:slug/digests takes an optional ordered list of article URLs', async () => {
      await article('six', 'Console six', 0);
      await article('seven', 'Console seven', 0);
      const urls = [
        'https://www.spine-health.example/console/six',
        'https://www.spine-health.example/console/one',
        'https://www.spine-health.example/console/seven',
      ];
      const sendAt = new Date(Date.now() + 86_400_000).toISOString();
      const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {
        sendAt,
        articles: urls,
      });
      expect(created.status).toBe(201);
      const got = await admin<{ articles: { url: string }[] }>(
        stack.apps.baseUrl,
        'GET',
        `/v1/digests/${created.body.id}`,
      );
      expect(got.body.articles.map((a) => a.url)).toEqual(urls);
      const unknown = await admin<{ message: string[] }>(
        stack.apps.baseUrl,
        'POST',
        '/v1/newsletters/spine-health/digests',
        {
          articles: ['https://www.spine-health.example/console/nope'],
        },
      );
      expect(unknown.status).toBe(400);
      expect(unknown.body.message.join()).toMatch(/unknown article/);
      const dup = await admin(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {
        articles: [urls[0], urls[0]],
      });
      expect(dup.status).toBe(400);
      const empty = await admin(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', { articles: [] });
      expect(empty.status).toBe(400);
      await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${created.body.id}/cancel`);
    });
  });

  describe('a safety net for sending', () => {
    it('the compose page pre-selects no "Now" and leads with scheduling; "Send now…" comes second', async () => {
      await article('safety', 'Console safety', 0);
      const page = await m.get('/admin/digests/new?newsletter=spine-health');
      expect(page.status).toBe(200);
      expect(page.text).toMatch(/<input type="radio" name="when" value="now" id="when-now">/);
      expect(page.text).not.toMatch(/id="when-now" checked/);
      expect(page.text.indexOf('id="schedule-digest"')).toBeLessThan(page.text.indexOf('id="send-digest-now"'));
      expect(page.text).toContain('id="send-digest-now">Send now…</button>');
    });

    it('a digest that reaches 0 recipients is skipped with the reason, never "sent" or "100 %"', async () => {
      // Arthritis-health has no subscriber in this database.
      await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
        url: 'https://www.arthritis-health.example/console/nobody',
        title: 'Nobody reads this',
        publishedAt: new Date().toISOString(),
        newsletters: ['arthritis-health'],
      });
      const ask = await m.get('/admin/digests/new?newsletter=arthritis-health');
      const ids = offered(ask);
      const body = new URLSearchParams({ _csrf: csrf, newsletter: 'arthritis-health', action: 'send' });
      for (const id of ids) {
        body.append('offered', id);
        body.append('article', id);
      }
      const confirm = await m.request('POST', '/admin/digests', body.toString(), {
        'content-type': 'application/x-www-form-urlencoded',
      });
      expect(confirm.status).toBe(200);
      expect(confirm.text).toContain('to 0 readers of Arthritis-health now?');
      expect(confirm.text).toContain('recorded as <strong>skipped</strong>: no active subscribers');

      const created = await admin<{ id: string }>(
        stack.apps.baseUrl,
        'POST',
        '/v1/newsletters/arthritis-health/digests',
        {},
      );
      expect(created.status).toBe(201);
      const id = created.body.id;
      const done = await waitUntil(
        () => admin<{ status: string; recipients: number }>(stack.apps.baseUrl, 'GET', `/v1/digests/${id}`),
        (r) => r.body.status !== 'scheduled' && r.body.status !== 'sending',
        30_000,
        'digest finished',
      );
      expect(done.body).toMatchObject({ status: 'skipped', recipients: 0 });
      const [row] = await query<{ status: string; reason: string }>(
        stack.db.url,
        `SELECT status, reason FROM digests WHERE id = $1`,
        [id],
      );
      expect(row).toEqual({ status: 'skipped', reason: 'no active subscribers' });
      const shown = await m.get(`/admin/digests/${id}`);
      expect(shown.text).toContain('data-status="skipped"');
      expect(shown.text).toContain('id="digest-reason">no active subscribers</p>');
      expect(shown.text).toContain(
        'id="progress-text" aria-live="polite" style="margin:8px 0 0">No recipients: nobody was sent this digest</p>',
      );
      expect(shown.text).not.toContain('100 %');
    });

    it("shows digest times in the newsletter's schedule zone, with the zone named", async () => {
      await admin(stack.apps.baseUrl, 'PUT', '/v1/newsletters/sports-health/schedule', {
        cron: '0 9 1 1 *',
        timezone: 'Asia/Tokyo',
      });
      // 2031-03-04 00:30 UTC is 09:30 in Tokyo.
      const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/sports-health/digests', {
        sendAt: '2031-03-04T00:30:00Z',
      });
      expect(created.status).toBe(201);
      const shown = await m.get(`/admin/digests/${created.body.id}`);
      expect(shown.text).toContain('id="digest-send-at">2031-03-04 09:30 Asia/Tokyo</time>');
      const list = await m.get('/admin/digests?newsletter=sports-health');
      expect(list.text).toContain('<time datetime="2031-03-04T00:30:00.000Z">2031-03-04 09:30 Asia/Tokyo</time>');
      const settings = await m.get('/admin/newsletters/sports-health');
      expect(settings.text).toMatch(
        /<ol id="next-sends">\s*<li><time datetime="[^"]+">\d{4}-01-01 09:00 Asia\/Tokyo<\/time>/,
      );
      await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${created.body.id}/cancel`);
      await admin(stack.apps.baseUrl, 'DELETE', '/v1/newsletters/sports-health/schedule');
    });
  });
});
