import 'reflect-metadata';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { admin, waitUntil } from './support/admin.js';
import { headerBlock } from './support/apps.js';
import { addAudience } from './support/audience.js';
import {
  axeSeriousFindings,
  DESKTOP,
  HAS_CHROMIUM,
  horizontalOverflow,
  launchBrowser,
  overflowingElements,
  PHONE,
  screenshot,
} from './support/browser.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';
import { decode } from './support/html.js';

const ADMIN = { email: 'stats-admin@example.com', password: 'correct horse battery staple' };
const NEWSLETTER = 'spine-health';

/** The issue, in the order the digests are composed with (each digest gets its own copies). */
const ARTICLES = [
  { slug: 'walking', title: 'Winter walking tips', topics: [] as string[] },
  { slug: 'neck', title: 'Neck stretches at your desk', topics: ['Neck Pain'] },
  { slug: 'sleep', title: 'Sleep posture & your back', topics: [] as string[] },
  { slug: 'desk', title: 'A desk that fits', topics: [] as string[] },
];
const url = (set: string, slug: string) => `https://www.spine-health.example/what-worked/${set}/${slug}`;

interface StatsBody {
  sent: number;
  failed: number;
  unsubscribed: number;
  clicks: { human: number; machine: number };
  uniqueClickers: number;
  clickRate: number;
  tracking: boolean;
  articles: { url: string; title: string; clicks: number; machineClicks: number; uniqueClickers: number }[];
  variants: { variant: number; topics: string[]; recipients: number; clicks: number }[];
}

/** The rows of a table: each row's `data-<key>` and its `data-stat` cells. */
function tableRows(html: string, tableId: string, key: string): { key: string; stats: Record<string, string> }[] {
  const start = html.indexOf(`<table id="${tableId}"`);
  if (start < 0) throw new Error(`No table #${tableId} in the page`);
  const table = html.slice(start, html.indexOf('</table>', start));
  return [...table.matchAll(new RegExp(`<tr data-${key}="([^"]*)">([\\s\\S]*?)</tr>`, 'g'))].map((m) => ({
    key: decode(m[1]),
    stats: Object.fromEntries([...m[2].matchAll(/data-stat="([a-z-]+)">([^<]*)</g)].map((s) => [s[1], decode(s[2])])),
  }));
}

/** The `data-stat` cells of the digest figures table. */
function figures(html: string): Record<string, string> {
  const start = html.indexOf('<table id="digest-stats"');
  if (start < 0) throw new Error('No figures table in the page');
  const table = html.slice(start, html.indexOf('</table>', start));
  return Object.fromEntries([...table.matchAll(/data-stat="([a-z-]+)">([^<]*)</g)].map((s) => [s[1], decode(s[2])]));
}

describe('what worked: digest figures, the console pages, and clicks in the export', () => {
  const stack = useStack({
    label: 'digest_stats',
    env: { SEND_RATE_PER_SECOND: '10000' },
    prepare: async () => {
      await addAudience(stack.db.url, { prefix: 'wwneck', count: 3, newsletter: NEWSLETTER });
      await addAudience(stack.db.url, { prefix: 'wwplain', count: 3, newsletter: NEWSLETTER });
      await addAudience(stack.db.url, { prefix: 'wwfail', count: 1, newsletter: NEWSLETTER });
      await query(
        stack.db.url,
        `UPDATE subscriptions s SET topics = '{"Neck Pain"}' FROM subscribers u
          WHERE u.id = s.subscriber_id AND u.email LIKE 'wwneck%'`,
      );
    },
  });
  const base = () => stack.apps.baseUrl;
  const stats = (id: string) => admin<StatsBody>(base(), 'GET', `/v1/digests/${id}/stats`);
  let staff: ConsoleBrowser;
  /** The digest sent with tracked links, and the one sent without. */
  let tracked: string;
  let untracked: string;

  const subscriberId = async (email: string): Promise<string> => {
    const [r] = await query<{ id: string }>(stack.db.url, `SELECT id::text FROM subscribers WHERE email = $1`, [email]);
    return r.id;
  };

  /** Sends the four articles (copies `set`) to every reader; resolves with the digest id once it is sent. */
  const send = async (set: string, subject: string): Promise<string> => {
    for (const [i, a] of ARTICLES.entries()) {
      const r = await admin(base(), 'POST', '/v1/articles', {
        url: url(set, a.slug),
        title: a.title,
        topics: a.topics,
        publishedAt: new Date(Date.now() - (i + 1) * 3_600_000).toISOString(),
        newsletters: [NEWSLETTER],
      });
      expect([200, 201]).toContain(r.status);
    }
    const created = await admin<{ id: string }>(base(), 'POST', `/v1/newsletters/${NEWSLETTER}/digests`, {
      articles: ARTICLES.map((a) => url(set, a.slug)),
      subject,
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    await waitUntil(
      () => admin<{ status: string }>(base(), 'GET', `/v1/digests/${id}`).then((r) => r.body),
      (d) => d.status === 'sent',
      60_000,
      `digest ${id}`,
    );
    return id;
  };

  beforeAll(async () => {
    // One reader's mail server refuses the message for good (a policy 5xx: failed, nobody suppressed).
    stack.smtp.rcptHook = (addr) =>
      addr === 'wwfail1@example.com' ? { code: 554, message: '5.7.1 Message rejected by policy' } : null;
    expect((await stack.apps.api.get(StaffUsersService).create({ ...ADMIN, role: 'admin' })).ok).toBe(true);
    staff = new ConsoleBrowser(base());
    expect((await staff.signIn(ADMIN.email, ADMIN.password)).status).toBe(303);
  });

  it('GET /v1/digests/:id/stats: ledger, unsubscribes after it, human and machine clicks, per article and per variant', async () => {
    tracked = await send('one', 'What worked, issue one');
    // The figures read the digest's own flag (set when it was planned); this one went out tracked.
    await query(stack.db.url, `UPDATE digests SET tracking = true WHERE id = $1`, [tracked]);
    await stack.smtp.waitFor(
      () => stack.smtp.messages.filter((m) => m.parsed.subject === 'What worked, issue one').length >= 6,
      30_000,
    );

    // Before anyone clicked: the ledger alone. Two variants: the issue as it is, and Neck Pain first.
    const before = await stats(tracked);
    expect(before.status).toBe(200);
    expect(before.body).toEqual({
      sent: 6,
      failed: 1,
      unsubscribed: 0,
      clicks: { human: 0, machine: 0 },
      uniqueClickers: 0,
      clickRate: 0,
      tracking: true,
      articles: ARTICLES.map((a) => ({
        url: url('one', a.slug),
        title: a.title,
        clicks: 0,
        machineClicks: 0,
        uniqueClickers: 0,
      })),
      variants: [
        { variant: 0, topics: [], recipients: 3, clicks: 0 },
        { variant: 1, topics: ['neck pain'], recipients: 3, clicks: 0 },
      ],
      bounces: { bounced: 0, complained: 0, policy: 0, failed: 0 },
    });

    // Clicks as the click recorder stores them (its verdicts are final).
    const articleIds = Object.fromEntries(
      (
        await query<{ url: string; id: string }>(stack.db.url, `SELECT url, id::text FROM articles WHERE url LIKE $1`, [
          url('one', '%'),
        ])
      ).map((r) => [r.url, r.id]),
    );
    const clicks: [string, string, 'human' | 'machine', string | null][] = [
      ['wwneck1', 'walking', 'human', null],
      ['wwneck1', 'neck', 'human', null],
      ['wwneck1', 'neck', 'human', null], // the same link twice: two clicks, one clicker
      ['wwneck2', 'walking', 'machine', 'scanner'],
      ['wwneck2', 'neck', 'machine', 'scanner'],
      ['wwplain1', 'walking', 'human', null],
      ['wwplain1', 'neck', 'machine', 'early'],
      ['wwplain2', 'sleep', 'machine', 'burst'],
      ['wwplain2', 'walking', 'machine', 'burst'],
    ];
    for (const [i, [reader, article, verdict, reason]] of clicks.entries()) {
      await query(
        stack.db.url,
        `INSERT INTO link_clicks (digest_id, article_id, subscriber_id, clicked_at, verdict, reason)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5, $6)`,
        [tracked, articleIds[url('one', article)], await subscriberId(`${reader}@example.com`), i, verdict, reason],
      );
    }

    // A reader leaves after the issue, through the one-click link in its own copy.
    const copy = stack.smtp.messages.find(
      (m) => m.parsed.subject === 'What worked, issue one' && m.envelope.to[0] === 'wwplain3@example.com',
    );
    expect(copy).toBeDefined();
    const unsubscribe = /^List-Unsubscribe: <([^>]+)>/m
      .exec(headerBlock(copy!.raw))![1]
      .replace('http://mailroom.test', base());
    const left = await fetch(unsubscribe, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(left.status).toBe(200);

    const after = await stats(tracked);
    expect(after.status).toBe(200);
    expect(after.body).toEqual({
      sent: 6,
      failed: 1,
      unsubscribed: 1,
      clicks: { human: 4, machine: 5 },
      uniqueClickers: 2,
      clickRate: 0.3333,
      tracking: true,
      articles: [
        { url: url('one', 'walking'), title: ARTICLES[0].title, clicks: 2, machineClicks: 2, uniqueClickers: 2 },
        { url: url('one', 'neck'), title: ARTICLES[1].title, clicks: 2, machineClicks: 2, uniqueClickers: 1 },
        { url: url('one', 'sleep'), title: ARTICLES[2].title, clicks: 0, machineClicks: 1, uniqueClickers: 0 },
        { url: url('one', 'desk'), title: ARTICLES[3].title, clicks: 0, machineClicks: 0, uniqueClickers: 0 },
      ],
      variants: [
        { variant: 0, topics: [], recipients: 3, clicks: 1 },
        { variant: 1, topics: ['neck pain'], recipients: 3, clicks: 3 },
      ],
      bounces: { bounced: 0, complained: 0, policy: 0, failed: 0 },
    });
    // Exactly the documented fields.
    expect(Object.keys(after.body).sort()).toEqual(
      [
        'sent',
        'failed',
        'unsubscribed',
        'clicks',
        'uniqueClickers',
        'articles',
        'tracking',
        'clickRate',
        'bounces',
        'variants',
      ].sort(),
    );
  });

  it('answers 400 for an id that cannot be one, 404 for an unknown digest, 401 without the key', async () => {
    for (const bad of ['abc', '0', '-1', '1.5', '12345678901234567890']) {
      const r = await admin<{ message: string[] }>(base(), 'GET', `/v1/digests/${bad}/stats`);
      expect([bad, r.status]).toEqual([bad, 400]);
      expect(r.text).toContain('id must be a digest id (a positive whole number)');
    }
    const unknown = await admin(base(), 'GET', '/v1/digests/987654321/stats');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('Digest 987654321 does not exist');
    const anonymous = await fetch(`${base()}/v1/digests/${tracked}/stats`);
    expect(anonymous.status).toBe(401);
    const wrongKey = await fetch(`${base()}/v1/digests/${tracked}/stats`, {
      headers: { authorization: 'Bearer not-the-key-0000000000' },
    });
    expect(wrongKey.status).toBe(401);
  });

  it("the console's digest page shows the figures in tables", async () => {
    const page = await staff.get(`/admin/digests/${tracked}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('<h2 id="stats-heading">What worked</h2>');
    expect(page.text).not.toContain('Links were not tracked');
    expect(figures(page.text)).toEqual({
      sent: '6',
      failed: '1',
      unsubscribed: '1',
      'human-clicks': '4',
      'machine-clicks': '5',
      'unique-clickers': '2',
      'click-rate': '33.3 %',
    });
    expect(tableRows(page.text, 'article-clicks', 'url')).toEqual([
      { key: url('one', 'walking'), stats: { clicks: '2', 'unique-clickers': '2', 'machine-clicks': '2' } },
      { key: url('one', 'neck'), stats: { clicks: '2', 'unique-clickers': '1', 'machine-clicks': '2' } },
      { key: url('one', 'sleep'), stats: { clicks: '0', 'unique-clickers': '0', 'machine-clicks': '1' } },
      { key: url('one', 'desk'), stats: { clicks: '0', 'unique-clickers': '0', 'machine-clicks': '0' } },
    ]);
    expect(page.text).toContain('<th scope="row">Sleep posture &amp; your back</th>');
    expect(tableRows(page.text, 'variant-clicks', 'variant')).toEqual([
      { key: '0', stats: { recipients: '3', clicks: '1' } },
      { key: '1', stats: { recipients: '3', clicks: '3' } },
    ]);
    expect(page.text).toMatch(/<tr data-variant="1"><th scope="row">1<\/th><td>neck pain<\/td>/);
    // Tables with headers and a caption each.
    for (const id of ['digest-stats', 'article-clicks', 'variant-clicks'])
      expect(page.text).toMatch(new RegExp(`<table id="${id}">\\s*<caption[^>]*>[^<]+</caption>\\s*<thead>`));
  });

  it("the newsletter form's two switches save (unchecked is off), and the page links the archive and the funnel", async () => {
    const form = async () => {
      const page = await staff.get(`/admin/newsletters/${NEWSLETTER}`);
      expect(page.status).toBe(200);
      return page;
    };
    const flags = async () =>
      (await admin<{ archive: boolean; tracking: boolean }>(base(), 'GET', `/v1/newsletters/${NEWSLETTER}`)).body;
    const save = (extra: Record<string, string>, csrf: string) =>
      staff.post(`/admin/newsletters/${NEWSLETTER}`, { _csrf: csrf, name: 'Spine-health', ...extra });

    let page = await form();
    expect(page.text).toMatch(
      /<label><input type="checkbox" id="nl-archive" name="archive" value="on" aria-describedby="nl-archive-hint" checked> Public archive and web version<\/label>/,
    );
    expect(page.text).toMatch(
      /<label><input type="checkbox" id="nl-tracking" name="tracking" value="on" aria-describedby="nl-tracking-hint" checked> Track clicks on article links<\/label>/,
    );
    expect(page.text).toContain(`<a href="/newsletters/${NEWSLETTER}/issues" id="archive-link">Public archive</a>`);
    expect(page.text).toContain(`<a href="/admin/newsletters/${NEWSLETTER}/funnel" id="funnel-link">`);
    const csrf = ConsoleBrowser.csrf(page.text);

    // Archive off, tracking off: both unchecked.
    let saved = await save({ switches: '1' }, csrf);
    expect([saved.status, saved.location]).toEqual([303, `/admin/newsletters/${NEWSLETTER}?notice=saved`]);
    expect(await flags()).toMatchObject({ archive: false, tracking: false });
    page = await form();
    expect(page.text).not.toContain('id="archive-link"');
    expect(page.text).toContain(`id="funnel-link"`);
    expect(page.text).toMatch(/id="nl-archive" name="archive" value="on" aria-describedby="nl-archive-hint">/);

    // Archive back on, tracking stays off.
    saved = await save({ switches: '1', archive: 'on' }, csrf);
    expect(saved.status).toBe(303);
    expect(await flags()).toMatchObject({ archive: true, tracking: false });
    // A post from a form without the switches (an older page) changes neither.
    saved = await save({}, csrf);
    expect(saved.status).toBe(303);
    expect(await flags()).toMatchObject({ archive: true, tracking: false });
    // A form with an error keeps what was ticked.
    const refused = await save({ switches: '1', tracking: 'on', fromEmail: 'not-an-address' }, csrf);
    expect(refused.status).toBe(400);
    expect(refused.text).toMatch(
      /id="nl-tracking" name="tracking" value="on" aria-describedby="nl-tracking-hint" checked>/,
    );
    expect(refused.text).toMatch(/id="nl-archive" name="archive" value="on" aria-describedby="nl-archive-hint">/);
    expect(await flags()).toMatchObject({ archive: true, tracking: false });
  });

  it('a digest sent without tracked links says so, in the API and on its page', async () => {
    untracked = await send('two', 'What worked, issue two');
    await query(stack.db.url, `UPDATE digests SET tracking = false WHERE id = $1`, [untracked]);
    const r = await stats(untracked);
    expect(r.status).toBe(200);
    // wwplain3 left after issue one: 5 recipients, the refused one failed again.
    expect(r.body).toMatchObject({
      sent: 5,
      failed: 1,
      unsubscribed: 0,
      clicks: { human: 0, machine: 0 },
      uniqueClickers: 0,
      clickRate: 0,
      tracking: false,
    });
    expect(r.body.articles.map((a) => [a.url, a.clicks])).toEqual(ARTICLES.map((a) => [url('two', a.slug), 0]));
    const page = await staff.get(`/admin/digests/${untracked}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Links were not tracked');
    expect(figures(page.text)).toEqual({ sent: '5', failed: '1', unsubscribed: '0' });
    expect(page.text).not.toContain('id="article-clicks"');
    // A scheduled digest has no figures yet.
    const later = await admin<{ id: string }>(base(), 'POST', `/v1/newsletters/${NEWSLETTER}/digests`, {
      sendAt: new Date(Date.now() + 86_400_000).toISOString(),
    });
    expect(later.status).toBe(201);
    const scheduled = await staff.get(`/admin/digests/${later.body.id}`);
    expect(scheduled.status).toBe(200);
    expect(scheduled.text).not.toContain('id="stats-panel"');
    expect((await admin(base(), 'POST', `/v1/digests/${later.body.id}/cancel`)).status).toBe(200);
    // Tracking back on for what follows.
    expect((await admin(base(), 'PATCH', `/v1/newsletters/${NEWSLETTER}`, { tracking: true })).status).toBe(200);
  });

  it("the newsletter page's trend: click rate and unsubscribes per sent issue, a chart and its table", async () => {
    const page = await staff.get(`/admin/newsletters/${NEWSLETTER}`);
    expect(page.status).toBe(200);
    expect(tableRows(page.text, 'trend-table', 'digest-id')).toEqual([
      { key: tracked, stats: { sent: '6', 'unique-clickers': '2', 'click-rate': '33.3 %', unsubscribed: '1' } },
      { key: untracked, stats: { sent: '5', 'unique-clickers': '—', 'click-rate': 'not tracked', unsubscribed: '0' } },
    ]);
    // Two charts (each drawn wide and narrow): accessible SVG with a title and a true description.
    for (const id of ['trend-clicks', 'trend-unsubscribes']) {
      expect(page.text).toContain(`<svg class="chart" id="chart-${id}"`);
      expect(page.text).toContain(`<svg class="chart-narrow" id="chart-${id}-narrow"`);
      expect(page.text).toMatch(
        new RegExp(`id="chart-${id}" [^>]*role="img" aria-labelledby="chart-${id}-title chart-${id}-desc"`),
      );
    }
    expect(page.text).toContain(
      `<desc id="chart-trend-clicks-desc">Click rate from 33.3 % to 33.3 % between issue #${tracked} and issue #${tracked} (1 tracked issue; highest 33.3 %).</desc>`,
    );
    expect(page.text).toContain(
      `<desc id="chart-trend-unsubscribes-desc">From 1 to 0 unsubscribes per issue between issue #${tracked} and issue #${untracked} (1 in all).</desc>`,
    );
    expect(page.text).not.toContain('active subscribers between');
    // The click chart has one point (the tracked issue), the unsubscribe chart two.
    const svg = (id: string) => {
      const start = page.text.indexOf(`<svg class="chart" id="chart-${id}"`);
      return page.text.slice(start, page.text.indexOf('</svg>', start));
    };
    expect(svg('trend-clicks').match(/<circle /g)).toHaveLength(1);
    expect(svg('trend-clicks')).toContain(`<title>#${tracked}: 33.3</title>`);
    expect(svg('trend-unsubscribes').match(/<circle /g)).toHaveLength(2);
  });

  (HAS_CHROMIUM ? describe : describe.skip)('in Chromium', () => {
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;

    beforeAll(async () => {
      browser = await launchBrowser({ 'mailroom.test': new URL(base()).host });
      // bypassCSP: axe is evaluated in pages whose CSP allows only their own scripts.
      context = await browser.newContext({ viewport: DESKTOP, locale: 'en-US', bypassCSP: true });
      page = await context.newPage();
      await page.goto(`${base()}/admin/login`);
      await page.getByLabel('Email').fill(ADMIN.email);
      await page.getByLabel('Password').fill(ADMIN.password);
      await Promise.all([page.waitForURL(`${base()}/admin`), page.getByRole('button', { name: 'Sign in' }).click()]);
    });
    afterAll(async () => {
      await context?.close();
      await browser?.close();
    });

    it('the digest pages and the newsletter page pass axe-core at 1280 and 375 px, nothing scrolls sideways', async () => {
      const problems: string[] = [];
      for (const path of [
        `/admin/digests/${tracked}`,
        `/admin/digests/${untracked}`,
        `/admin/newsletters/${NEWSLETTER}`,
      ])
        for (const size of [DESKTOP, PHONE]) {
          await page.setViewportSize(size);
          const res = await page.goto(`${base()}${path}`);
          expect(res?.status()).toBe(200);
          for (const f of await axeSeriousFindings(page))
            problems.push(`${path} @${size.width}: ${f.impact} ${f.id} (${f.help}) ${f.targets.join(' | ')}`);
          const overflow = await horizontalOverflow(page);
          if (overflow > 0)
            problems.push(
              `${path} @${size.width}: scrolls sideways by ${overflow}px: ${(await overflowingElements(page)).join(', ')}`,
            );
        }
      expect(problems).toEqual([]);
      // For a look by eye (artifacts/screenshots, not checked in).
      await page.goto(`${base()}/admin/digests/${tracked}`);
      await screenshot(page, 'digest-what-worked');
      await page.goto(`${base()}/admin/newsletters/${NEWSLETTER}`);
      await screenshot(page, 'newsletter-what-worked');

      // The switches are real checkboxes with names; unticking one and saving turns it off.
      await page.setViewportSize(DESKTOP);
      await page.goto(`${base()}/admin/newsletters/${NEWSLETTER}`);
      const trackingBox = page.getByRole('checkbox', { name: 'Track clicks on article links' });
      expect(await trackingBox.isChecked()).toBe(true);
      expect(await page.getByRole('checkbox', { name: 'Public archive and web version' }).isChecked()).toBe(true);
      await trackingBox.uncheck();
      await Promise.all([page.waitForURL(/notice=saved/), page.locator('#save-newsletter').click()]);
      const after = await admin<{ archive: boolean; tracking: boolean }>(
        base(),
        'GET',
        `/v1/newsletters/${NEWSLETTER}`,
      );
      expect(after.body).toMatchObject({ archive: true, tracking: false });
      // The chart is an image with a name.
      expect(await page.getByRole('img', { name: /click rate per issue/ }).count()).toBeGreaterThanOrEqual(1);
    });
  });

  it('the export of a reader holds their clicks; erasing the reader removes them (ON DELETE CASCADE)', async () => {
    const email = 'wwneck1@example.com';
    const id = await subscriberId(email);
    const exported = await admin<{
      clicks: { digestId: string; articleUrl: string; clickedAt: string; verdict: string; reason: string | null }[];
    }>(base(), 'GET', `/v1/subscribers/${encodeURIComponent(email)}/export`);
    expect(exported.status).toBe(200);
    expect(exported.body.clicks.map(({ clickedAt, ...c }) => ({ ...c, at: typeof clickedAt }))).toEqual([
      { digestId: tracked, articleUrl: url('one', 'walking'), verdict: 'human', reason: null, at: 'string' },
      { digestId: tracked, articleUrl: url('one', 'neck'), verdict: 'human', reason: null, at: 'string' },
      { digestId: tracked, articleUrl: url('one', 'neck'), verdict: 'human', reason: null, at: 'string' },
    ]);
    expect(Number.isNaN(Date.parse(exported.body.clicks[0].clickedAt))).toBe(false);
    // A reader's machine clicks are theirs too.
    const other = await admin<{ clicks: { verdict: string; reason: string | null }[] }>(
      base(),
      'GET',
      `/v1/subscribers/${encodeURIComponent('wwneck2@example.com')}/export`,
    );
    expect(other.body.clicks.map((c) => [c.verdict, c.reason])).toEqual([
      ['machine', 'scanner'],
      ['machine', 'scanner'],
    ]);

    const count = async (sql: string, params: unknown[] = []) =>
      (await query<{ n: number }>(stack.db.url, sql, params))[0].n;
    const all = await count(`SELECT count(*)::int AS n FROM link_clicks`);
    expect(await count(`SELECT count(*)::int AS n FROM link_clicks WHERE subscriber_id = $1`, [id])).toBe(3);
    const erased = await admin(base(), 'DELETE', `/v1/subscribers/${encodeURIComponent(email)}`);
    expect(erased.status).toBe(204);
    expect(await count(`SELECT count(*)::int AS n FROM link_clicks WHERE subscriber_id = $1`, [id])).toBe(0);
    expect(await count(`SELECT count(*)::int AS n FROM link_clicks`)).toBe(all - 3);
    // The digest's figures no longer count the erased reader.
    const r = await stats(tracked);
    expect(r.body).toMatchObject({ sent: 5, clicks: { human: 1, machine: 5 }, uniqueClickers: 1, clickRate: 0.2 });
  });
});
