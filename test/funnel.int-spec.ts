import 'reflect-metadata';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { StaffUsersService } from '#staff/staff-users.service.js';
import type { FunnelRow } from '#subscriptions/funnel.repository.js';
import { CHART_SOURCES, funnelChartSvg } from '../apps/api/src/console/console-funnel.controller.js';
import { admin } from './support/admin.js';
import { headerBlock, linkFrom } from './support/apps.js';
import {
  axeSeriousFindings,
  DESKTOP,
  HAS_CHROMIUM,
  horizontalOverflow,
  launchBrowser,
  overflowingElements,
  PHONE,
} from './support/browser.js';
import { ConsoleBrowser } from './support/console.js';
import type { CapturedMail } from './support/smtp.js';
import { query } from './support/db.js';
import { postJson } from './support/http.js';
import { useStack } from './support/stack.js';
import { decode } from './support/html.js';

const PUBLIC = 'http://mailroom.test';
const GUIDE_PREFIX = `${PUBLIC}/guides/natural-back-pain-relief/`;
const STAFF = { email: 'funnel.viewer@example.com', password: 'correct horse battery staple' };

// Three article pages the signup box sat on (C is on another brand's site, for the spine-health list).
const A = 'https://www.spine-health.example/conditions/neck-pain';
const B = 'https://www.spine-health.example/treatment/back-pain-exercises';
const C = 'https://www.arthritis-health.example/types/osteoarthritis';

/** The table rows of the console page: source (as shown) and its `data-figure` values. */
function tableRows(html: string): { source: string; figures: Record<string, string> }[] {
  return [...html.matchAll(/<tr data-source="([^"]*)">([\s\S]*?)<\/tr>/g)].map((m) => {
    const figures: Record<string, string> = {};
    for (const f of m[2].matchAll(/data-figure="([a-z-]+)">([^<]*)</g)) figures[f[1]] = f[2];
    return { source: decode(m[1]), figures };
  });
}

describe('signup funnel per source: GET /v1/newsletters/:slug/funnel and the console page', () => {
  const stack = useStack({ label: 'funnel', env: { PUBLIC_POSTS_PER_IP_PER_MINUTE: '1000' } });
  const local = (link: string) => link.replace(PUBLIC, stack.apps.baseUrl);
  const funnel = (slug: string, qs = '') =>
    admin<FunnelRow[] | { message: unknown }>(stack.apps.baseUrl, 'GET', `/v1/newsletters/${slug}/funnel${qs}`);

  const mailsTo = async (email: string, n: number): Promise<CapturedMail[]> => {
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= n, 20_000);
    return stack.smtp.to(email);
  };
  const guideMail = async (email: string): Promise<CapturedMail> => {
    await stack.smtp.waitFor(() => stack.smtp.to(email).some((m) => /free guide/.test(m.parsed.subject ?? '')), 20_000);
    return stack.smtp.to(email).find((m) => /free guide/.test(m.parsed.subject ?? ''))!;
  };
  const downloadedAt = async (email: string): Promise<{ slug: string; at: Date | null }[]> =>
    query<{ slug: string; at: Date | null }>(
      stack.db.url,
      `SELECT n.slug, s.guide_downloaded_at AS at FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
        JOIN newsletters n ON n.id = s.newsletter_id WHERE u.email = $1 ORDER BY n.slug`,
      [email],
    );
  const backdate = (email: string, days: number) =>
    query(
      stack.db.url,
      `UPDATE subscriptions SET created_at = now() - make_interval(days => $2)
        WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = $1)`,
      [email, days],
    );

  /** A reader's way through the real api and mail: subscribe, then as far as `steps` says. */
  async function reader(
    email: string,
    source: string | undefined,
    steps: { confirm?: boolean; download?: number; unsubscribe?: boolean; newsletters?: string[] } = {},
  ): Promise<void> {
    const res = await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, {
      email,
      newsletters: steps.newsletters ?? ['spine-health'],
      ...(source ? { source } : {}),
    });
    expect(res.status).toBe(202);
    const [confirmation] = await mailsTo(email, 1);
    if (!steps.confirm) return;
    const confirmLink = linkFrom(confirmation.parsed.text ?? '', `${PUBLIC}/confirm/`);
    const confirmed = await fetch(local(confirmLink), { method: 'POST', headers: { accept: 'application/json' } });
    expect(confirmed.status).toBe(200);
    const guide = await guideMail(email);
    const guideLink = linkFrom(guide.parsed.text ?? '', GUIDE_PREFIX);
    for (let i = 0; i < (steps.download ?? 0); i += 1) {
      const download = await fetch(local(guideLink));
      expect(download.status).toBe(200);
      expect(download.headers.get('content-disposition')).toContain('attachment');
      expect(await download.text()).toContain('Natural Back Pain Relief');
    }
    if (steps.unsubscribe) {
      const listUnsub = /^List-Unsubscribe: <([^>]+)>$/m.exec(headerBlock(guide.raw))?.[1];
      expect(listUnsub).toBeDefined();
      const one = await fetch(local(listUnsub!), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
        redirect: 'manual',
      });
      expect(one.status).toBe(200);
    }
  }

  beforeAll(async () => {
    // arthritis-health offers the same guide: a download counts for the reader's subscriptions to both.
    const patched = await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/arthritis-health', {
      guide: 'natural-back-pain-relief',
    });
    expect(patched.status).toBe(200);
    await Promise.all([
      // A: four sign-ups, three confirm, two download (a1 twice), a3 unsubscribes.
      reader('a1@example.com', A, { confirm: true, download: 2 }),
      reader('a2@example.com', A, { confirm: true, download: 1 }),
      reader('a3@example.com', A, { confirm: true, unsubscribe: true }),
      reader('a4@example.com', A),
      // B: b1 confirms, downloads, then leaves; b2 never confirms.
      reader('b1@example.com', B, { confirm: true, download: 1, unsubscribe: true }),
      reader('b2@example.com', B),
      // C: c1 subscribes to spine-health and arthritis-health at once; c2 confirms only.
      reader('c1@example.com', C, { confirm: true, download: 1, newsletters: ['spine-health', 'arthritis-health'] }),
      reader('c2@example.com', C, { confirm: true }),
      // Another newsletter's sign-up from page A, and one from 40 days ago.
      reader('x1@example.com', A, { newsletters: ['sports-health'] }),
      reader('old1@example.com', A),
    ]);
    await backdate('old1@example.com', 40);
    await backdate('c2@example.com', 10);
  }, 120_000);

  it('records the first guide download only, for every subscription of the reader to that guide', async () => {
    const a1 = await downloadedAt('a1@example.com');
    expect(a1).toHaveLength(1);
    expect(a1[0].at).toBeInstanceOf(Date);
    // A later download changes nothing.
    const again = await fetch(local(linkFrom((await guideMail('a1@example.com')).parsed.text ?? '', GUIDE_PREFIX)));
    expect(again.status).toBe(200);
    expect(await downloadedAt('a1@example.com')).toEqual(a1);
    // c1 downloaded once: both subscriptions (same guide) are marked, at the same moment.
    const c1 = await downloadedAt('c1@example.com');
    expect(c1.map((r) => r.slug)).toEqual(['arthritis-health', 'spine-health']);
    expect(c1[0].at).toBeInstanceOf(Date);
    expect(c1[1].at).toEqual(c1[0].at);
    // Never downloaded: nothing recorded. A HEAD, a prefetch or a link scanner gets the file and counts nothing.
    const c2link = local(linkFrom((await guideMail('c2@example.com')).parsed.text ?? '', GUIDE_PREFIX));
    for (const init of [
      { method: 'HEAD' },
      { headers: { 'sec-purpose': 'prefetch' } },
      { headers: { 'user-agent': 'Mozilla/5.0 (compatible; Barracuda Sentinel (EE))' } },
    ] as RequestInit[])
      expect((await fetch(c2link, init)).status).toBe(200);
    expect(await downloadedAt('c2@example.com')).toEqual([{ slug: 'spine-health', at: null }]);
    expect(await downloadedAt('a3@example.com')).toEqual([{ slug: 'spine-health', at: null }]);
  });

  it('a failure to record the download never fails the download', async () => {
    await query(
      stack.db.url,
      `CREATE FUNCTION refuse_guide_download() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.guide_downloaded_at IS DISTINCT FROM OLD.guide_downloaded_at THEN RAISE EXCEPTION 'refused by the test'; END IF;
         RETURN NEW;
       END $$;
       CREATE TRIGGER refuse_guide_download BEFORE UPDATE ON subscriptions
         FOR EACH ROW EXECUTE FUNCTION refuse_guide_download();`,
    );
    try {
      // n1 signs up with no source.
      await reader('n1@example.com', undefined, { confirm: true, download: 1 });
      expect(await downloadedAt('n1@example.com')).toEqual([{ slug: 'spine-health', at: null }]);
    } finally {
      await query(
        stack.db.url,
        `DROP TRIGGER refuse_guide_download ON subscriptions; DROP FUNCTION refuse_guide_download();`,
      );
    }
    const link = linkFrom((await guideMail('n1@example.com')).parsed.text ?? '', GUIDE_PREFIX);
    expect((await fetch(local(link))).status).toBe(200);
    expect((await downloadedAt('n1@example.com'))[0].at).toBeInstanceOf(Date);
  });

  it('answers the exact figures per source, most sign-ups first, then by source, no source last', async () => {
    const res = await funnel('spine-health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual([
      { source: A, signups: 4, confirmed: 3, guideDownloads: 2, activeNow: 2 },
      { source: C, signups: 2, confirmed: 2, guideDownloads: 1, activeNow: 2 },
      { source: B, signups: 2, confirmed: 1, guideDownloads: 1, activeNow: 0 },
      { source: null, signups: 1, confirmed: 1, guideDownloads: 1, activeNow: 1 },
    ]);
    expect((await funnel('arthritis-health')).body).toEqual([
      { source: C, signups: 1, confirmed: 1, guideDownloads: 1, activeNow: 1 },
    ]);
    expect((await funnel('sports-health')).body).toEqual([
      { source: A, signups: 1, confirmed: 0, guideDownloads: 0, activeNow: 0 },
    ]);
  });

  it('filters by since (at or after), with a date alone meaning midnight UTC', async () => {
    const ago = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();
    // 60 days back: old1 (40 days ago, never confirmed) joins A.
    expect((await funnel('spine-health', `?since=${ago(60)}`)).body).toEqual([
      { source: A, signups: 5, confirmed: 3, guideDownloads: 2, activeNow: 2 },
      { source: C, signups: 2, confirmed: 2, guideDownloads: 1, activeNow: 2 },
      { source: B, signups: 2, confirmed: 1, guideDownloads: 1, activeNow: 0 },
      { source: null, signups: 1, confirmed: 1, guideDownloads: 1, activeNow: 1 },
    ]);
    // 5 days back: c2 (10 days ago) is out; C and the sign-up with no source tie at 1: no source last.
    expect((await funnel('spine-health', `?since=${encodeURIComponent(ago(5))}`)).body).toEqual([
      { source: A, signups: 4, confirmed: 3, guideDownloads: 2, activeNow: 2 },
      { source: B, signups: 2, confirmed: 1, guideDownloads: 1, activeNow: 0 },
      { source: C, signups: 1, confirmed: 1, guideDownloads: 1, activeNow: 1 },
      { source: null, signups: 1, confirmed: 1, guideDownloads: 1, activeNow: 1 },
    ]);
    // "At or after": the exact creation time of old1 includes it.
    const [old] = await query<{ created: string }>(
      stack.db.url,
      `SELECT to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created
         FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email = 'old1@example.com'`,
    );
    const fromOld = (await funnel('spine-health', `?since=${old.created}`)).body as FunnelRow[];
    expect(fromOld.find((r) => r.source === A)?.signups).toBe(5);
    // An offset, and a date alone.
    const plus = encodeURIComponent(new Date(Date.now() - 60 * 86_400_000).toISOString().slice(0, 19) + '+00:00');
    expect(((await funnel('spine-health', `?since=${plus}`)).body as FunnelRow[])[0].signups).toBe(5);
    const dateOnly = ago(60).slice(0, 10);
    expect(((await funnel('spine-health', `?since=${dateOnly}`)).body as FunnelRow[])[0].signups).toBe(5);
    // Nothing yet in the future; a newsletter with sign-ups, none in the period: an empty list.
    expect((await funnel('spine-health', `?since=${new Date(Date.now() + 60_000).toISOString()}`)).body).toEqual([]);
    expect((await funnel('sports-health', `?since=${new Date(Date.now() + 60_000).toISOString()}`)).body).toEqual([]);
  });

  it('refuses a bad since with 400 and a clear message, an unknown newsletter with 404, no key with 401', async () => {
    // A time needs Z or an offset: a server's zone must not decide what it means.
    for (const bad of ['yesterday', '2026-02-30', '2026-01-01T10:00:00', '1700000000', '2026-13-01']) {
      const res = await funnel('spine-health', `?since=${encodeURIComponent(bad)}`);
      expect(res.status).toBe(400);
      expect(res.text).toContain('since must be an ISO 8601 date or date-time');
      expect(res.text).not.toMatch(/stack|at \//);
    }
    const twice = await funnel('spine-health', '?since=2026-01-01&since=2026-02-01');
    expect(twice.status).toBe(400);
    expect(twice.text).toContain('since must be an ISO 8601');
    expect((await funnel('spine-health', '?since=')).status).toBe(200);

    const unknown = await funnel('no-such-newsletter');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('no-such-newsletter');
    expect((await funnel('no-such-newsletter', '?since=bad')).status).toBe(400);

    const anonymous = await fetch(`${stack.apps.baseUrl}/v1/newsletters/spine-health/funnel`);
    expect(anonymous.status).toBe(401);
    const wrong = await fetch(`${stack.apps.baseUrl}/v1/newsletters/spine-health/funnel`, {
      headers: { authorization: 'Bearer not-the-key-0123456789' },
    });
    expect(wrong.status).toBe(401);
  });

  it('draws at most 10 sources in the chart, every text escaped', () => {
    const hostile = 'https://x.example/"><script>alert(1)</script>';
    const many: FunnelRow[] = Array.from({ length: 12 }, (_, i) => ({
      source: i === 0 ? hostile : `https://x.example/${i}`,
      signups: 20 - i,
      confirmed: 1,
      guideDownloads: 1,
      activeNow: 1,
    }));
    const svg = funnelChartSvg('Title <b>', many);
    expect(svg.match(/<g>/g)).toHaveLength(CHART_SOURCES);
    expect(svg).not.toContain('<script>');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('&lt;script&gt;');
    expect(svg).toContain(`The ${CHART_SOURCES} of 12 sources with the most sign-ups`);
  });

  describe('console page', () => {
    let staff: ConsoleBrowser;

    beforeAll(async () => {
      expect((await stack.apps.api.get(StaffUsersService).create({ ...STAFF, role: 'marketer' })).ok).toBe(true);
      staff = new ConsoleBrowser(stack.apps.baseUrl);
      expect((await staff.signIn(STAFF.email, STAFF.password)).status).toBe(303);
    });

    it('needs a signed-in staff member', async () => {
      const res = await new ConsoleBrowser(stack.apps.baseUrl).get('/admin/newsletters/spine-health/funnel');
      expect(res.status).toBe(302);
      expect(res.location).toContain('/admin/login');
    });

    it('shows the chart and the table with the figures, for the last 30 days by default', async () => {
      const page = await staff.get('/admin/newsletters/spine-health/funnel');
      expect(page.status).toBe(200);
      expect(page.text).toContain('Sign-ups by source');
      expect(page.text).toMatch(/id="period-30"[^>]*aria-current="page"/);
      expect(page.text).toMatch(/id="total-signups">9</);
      expect(page.text).toMatch(/id="total-confirmed">7</);
      expect(page.text).toMatch(/id="total-guide-downloads">5</);
      expect(page.text).toMatch(/id="total-active-now">5</);
      expect(tableRows(page.text)).toEqual([
        { source: A, figures: { signups: '4', confirmed: '3', 'guide-downloads': '2', 'active-now': '2' } },
        { source: C, figures: { signups: '2', confirmed: '2', 'guide-downloads': '1', 'active-now': '2' } },
        { source: B, figures: { signups: '2', confirmed: '1', 'guide-downloads': '1', 'active-now': '0' } },
        {
          source: 'No source recorded',
          figures: { signups: '1', confirmed: '1', 'guide-downloads': '1', 'active-now': '1' },
        },
      ]);
      // The chart: an image with a name and a description that carries the figures.
      expect(page.text).toMatch(/<svg class="chart" id="funnel-chart"[^>]*role="img"/);
      expect(page.text).toContain('<title id="funnel-chart-title">Spine-health: sign-ups and readers still active');
      expect(decode(page.text)).toContain('spine-health.example/conditions/neck-pain, 4 sign-ups and 2 still active');
      expect(page.text).toContain('>4 sign-ups</text>');
    });

    it('offers the last 7 and 90 days, and ignores any other period', async () => {
      const week = await staff.get('/admin/newsletters/spine-health/funnel?days=7');
      expect(week.text).toMatch(/id="period-7"[^>]*aria-current="page"/);
      expect(tableRows(week.text).find((r) => r.source === C)?.figures.signups).toBe('1');
      const quarter = await staff.get('/admin/newsletters/spine-health/funnel?days=90');
      expect(tableRows(quarter.text).find((r) => r.source === A)?.figures.signups).toBe('5');
      const odd = await staff.get('/admin/newsletters/spine-health/funnel?days=12');
      expect(odd.status).toBe(200);
      expect(odd.text).toMatch(/id="period-30"[^>]*aria-current="page"/);
    });

    it('shows an empty state, and 404 for an unknown newsletter', async () => {
      await query(stack.db.url, `INSERT INTO newsletters (slug, name) VALUES ('quiet', 'Quiet')`);
      const none = await staff.get('/admin/newsletters/quiet/funnel');
      expect(none.status).toBe(200);
      expect(none.text).toContain('id="funnel-empty"');
      expect((await staff.get('/admin/newsletters/no-such/funnel')).status).toBe(404);
    });

    (HAS_CHROMIUM ? describe : describe.skip)('in Chromium', () => {
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;

      beforeAll(async () => {
        browser = await launchBrowser();
        // bypassCSP: axe is evaluated in a page whose CSP allows only its own scripts.
        context = await browser.newContext({ viewport: DESKTOP, locale: 'en-US', bypassCSP: true });
        page = await context.newPage();
        await page.goto(`${stack.apps.baseUrl}/admin/login`);
        await page.getByLabel('Email').fill(STAFF.email);
        await page.getByLabel('Password').fill(STAFF.password);
        await Promise.all([
          page.waitForURL(`${stack.apps.baseUrl}/admin`),
          page.getByRole('button', { name: 'Sign in' }).click(),
        ]);
      });

      afterAll(async () => {
        await context?.close();
        await browser?.close();
      });

      it('passes axe-core and never scrolls sideways, at 1280 and 375 px, with figures and when empty', async () => {
        const problems: string[] = [];
        for (const path of ['/admin/newsletters/spine-health/funnel', '/admin/newsletters/quiet/funnel?days=7']) {
          for (const size of [DESKTOP, PHONE]) {
            await page.setViewportSize(size);
            const res = await page.goto(`${stack.apps.baseUrl}${path}`);
            expect(res?.status()).toBe(200);
            for (const f of await axeSeriousFindings(page)) {
              problems.push(`${path} @${size.width}: ${f.impact} ${f.id} (${f.help}) ${f.targets.join(' | ')}`);
            }
            const overflow = await horizontalOverflow(page);
            if (overflow > 0) {
              problems.push(
                `${path} @${size.width}: scrolls ${overflow}px: ${(await overflowingElements(page)).join(', ')}`,
              );
            }
          }
        }
        expect(problems).toEqual([]);
        // The chart is drawn at each width, its labels at least 11 px as shown.
        await page.setViewportSize(PHONE);
        await page.goto(`${stack.apps.baseUrl}/admin/newsletters/spine-health/funnel`);
        const smallest = await page.evaluate<number>(
          `Math.min(...[...document.querySelectorAll('.funnel-chart svg')].filter((s) => s.getClientRects().length > 0)
            .flatMap((s) => [...s.querySelectorAll('text')].map((t) => t.getBoundingClientRect().height)))`,
        );
        expect(smallest).toBeGreaterThanOrEqual(11);
        await page.setViewportSize(DESKTOP);
      });
    });
  });
});
