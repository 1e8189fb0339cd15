import 'reflect-metadata';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DigestsService } from '#digests/digests.service.js';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { emailHash, signToken } from '#subscriptions/tokens.js';
import { linkFrom } from '../support/apps.js';
import { addAudience } from '../support/audience.js';
import {
  type AxeFinding,
  axeSeriousFindings,
  describeInBrowser,
  DESKTOP,
  horizontalOverflow,
  launchBrowser,
  overflowingElements,
  PHONE,
} from '../support/browser.js';
import { query } from '../support/db.js';
import { useStack } from '../support/stack.js';

const ADMIN = { email: 'ada.a11y@example.com', password: 'correct horse battery staple' };
const PUBLIC = 'http://mailroom.test';
const PRIVACY = 'https://www.veritashealth.example/privacy';
const WIDTHS = [DESKTOP, PHONE] as const;

interface PageReport {
  path: string;
  width: number;
  findings: AxeFinding[];
  overflow: number;
  overflowing: string[];
}

/**
 * axe-core on every console page and every reader page, at 1280 and 375 px: no serious or
 * critical finding, nothing scrolling sideways on a phone, and the chart's labels at least 11 px.
 */
describeInBrowser('accessibility in Chromium: axe-core on every console and reader page, at 1280 and 375 px', () => {
  const stack = useStack({ label: 'e2e_a11y', env: { PRIVACY_URL: PRIVACY } });
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  async function audit(url: string, label = url): Promise<PageReport[]> {
    const reports: PageReport[] = [];
    for (const size of WIDTHS) {
      await page.setViewportSize(size);
      const res = await page.goto(url);
      expect(res?.status()).toBeLessThan(500);
      reports.push({
        path: label,
        width: size.width,
        findings: await axeSeriousFindings(page),
        overflow: await horizontalOverflow(page),
        overflowing: await overflowingElements(page),
      });
    }
    await page.setViewportSize(DESKTOP);
    return reports;
  }

  function problems(reports: PageReport[]): string[] {
    return reports.flatMap((r) => [
      ...r.findings.map((f) => `${r.path} @${r.width}: ${f.impact} ${f.id} (${f.help}) ${f.targets.join(' | ')}`),
      ...(r.overflow > 0
        ? [`${r.path} @${r.width}: scrolls sideways by ${r.overflow}px: ${r.overflowing.join(', ')}`]
        : []),
    ]);
  }

  beforeAll(async () => {
    expect((await stack.apps.api.get(StaffUsersService).create({ ...ADMIN, role: 'admin' })).ok).toBe(true);
    await addAudience(stack.db.url, { prefix: 'a11y-reader', count: 12, newsletter: 'spine-health' });
    await query(
      stack.db.url,
      `UPDATE subscriptions SET confirmed_at = now() - (((id % 7) * 7 + 1) * interval '1 day') WHERE status = 'active'`,
    );
    // Activity in every week, so the overview's week table has rows to scroll.
    await addAudience(stack.db.url, {
      prefix: 'a11y-waiting',
      count: 3,
      newsletter: 'sports-health',
      subscription: 'pending',
    });
    const bounced = await addAudience(stack.db.url, {
      prefix: 'a11y-bounced',
      count: 1,
      newsletter: 'spine-health',
      subscriber: 'bounced',
    });
    await query(stack.db.url, `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, 'bounced', $2)`, [
      emailHash(stack.apps.config.appSecret, bounced[0]),
      '550 5.1.1 mailbox unknown',
    ]);
    // A scheduled digest (tomorrow) for the digest, send and cancel pages, and a finished one for the overview.
    const digests = stack.apps.api.get(DigestsService);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    await digests.create('spine-health', tomorrow);
    await query(
      stack.db.url,
      `INSERT INTO digests (newsletter_id, status, send_at, started_at, finished_at, trigger, recipients)
       SELECT id, 'sent', now() - interval '2 days', now() - interval '2 days', now() - interval '2 days', 'manual', 0
         FROM newsletters WHERE slug = 'spine-health'`,
    );
    browser = await launchBrowser({ 'mailroom.test': new URL(stack.apps.baseUrl).host });
    // bypassCSP: axe is evaluated in pages whose CSP allows only their own scripts.
    context = await browser.newContext({ viewport: DESKTOP, locale: 'en-US', bypassCSP: true });
    page = await context.newPage();
    await page.goto(`${stack.apps.baseUrl}/admin/login`);
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password').fill(ADMIN.password);
    await Promise.all([
      page.waitForURL(`${stack.apps.baseUrl}/admin`),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
  });

  // The browser closes first, before the apps it talks to.
  stack.onTeardown(async () => {
    await context?.close();
    await browser?.close();
  });

  it('console: every page, signed out and signed in as an admin', async () => {
    // The sign-in page in a context of its own (this one is signed in).
    const signedIn = page;
    const other = await browser.newContext({ viewport: DESKTOP, locale: 'en-US', bypassCSP: true });
    page = await other.newPage();
    const reports = await audit(`${stack.apps.baseUrl}/admin/login`);
    await other.close();
    page = signedIn;

    const [digest] = await query<{ id: string }>(
      stack.db.url,
      `SELECT id::text FROM digests WHERE status = 'scheduled'`,
    );
    const [reader] = await query<{ id: string }>(
      stack.db.url,
      `SELECT id::text FROM subscribers WHERE email = 'a11y-reader1@example.com'`,
    );
    const [suppression] = await query<{ id: string }>(stack.db.url, `SELECT id::text FROM suppressions LIMIT 1`);
    const [article] = await query<{ id: string }>(stack.db.url, `SELECT id::text FROM articles ORDER BY id LIMIT 1`);
    const [user] = await query<{ id: string }>(stack.db.url, `SELECT id::text FROM staff_users LIMIT 1`);
    // An outgoing webhook endpoint with a failed delivery (a host that never resolves: nothing is sent).
    const [hook] = await query<{ id: string }>(
      stack.db.url,
      `INSERT INTO webhook_endpoints (id, url, events, secret_sealed)
       VALUES (gen_random_uuid(), 'https://hooks.crm.invalid/mailroom', '{digest.sent}', 'v1:AA==:AA==:AA==') RETURNING id::text`,
    );
    await query(
      stack.db.url,
      `WITH d AS (INSERT INTO webhook_deliveries (id, endpoint_id, type, payload, status, attempts, last_error)
                  VALUES (gen_random_uuid(), $1, 'digest.sent', '{"type":"digest.sent","timestamp":"2026-01-01T00:00:00.000Z","data":{}}',
                          'failed', 1, 'could not resolve the endpoint host name') RETURNING id)
       INSERT INTO webhook_attempts (delivery_id, error, duration_ms) SELECT id, 'could not resolve the endpoint host name', 3 FROM d`,
      [hook.id],
    );
    const paths = [
      '/admin',
      '/admin/newsletters',
      '/admin/newsletters/spine-health',
      '/admin/articles',
      '/admin/articles/new',
      `/admin/articles/${article.id}`,
      '/admin/digests',
      '/admin/digests/new',
      '/admin/digests/new?newsletter=spine-health',
      `/admin/digests/${digest.id}`,
      `/admin/digests/${digest.id}/send`,
      `/admin/digests/${digest.id}/cancel`,
      '/admin/subscribers',
      `/admin/subscribers/${reader.id}`,
      `/admin/subscribers/${reader.id}/erase`,
      '/admin/subscribers/import',
      '/admin/suppressions',
      `/admin/suppressions/${suppression.id}/lift`,
      '/admin/webhooks',
      `/admin/webhooks/${hook.id}`,
      '/admin/users',
      `/admin/users/${user.id}`,
      '/admin/nowhere',
    ];
    for (const path of paths) reports.push(...(await audit(`${stack.apps.baseUrl}${path}`, path)));
    expect(problems(reports)).toEqual([]);
  });

  it("the overview's week table is reachable by keyboard and its charts keep their 12 px labels on a phone", async () => {
    await page.goto(`${stack.apps.baseUrl}/admin`);
    const region = page.locator('#activity .table-wrap');
    await expect(region.getAttribute('tabindex')).resolves.toBe('0');
    await expect(region.getAttribute('role')).resolves.toBe('region');
    for (const size of WIDTHS) {
      await page.setViewportSize(size);
      // The rendered size of the visible chart's axis labels: font size times the SVG's scale.
      const smallest = await page.evaluate<number>(`Math.min(...[...document.querySelectorAll('.chart-card svg')]
        .filter((svg) => svg.getClientRects().length > 0)
        .flatMap((svg) => [...svg.querySelectorAll('text')].map((t) =>
          parseFloat(t.getAttribute('font-size')) * svg.getScreenCTM().a)))`);
      expect({ width: size.width, atLeast11_5px: smallest >= 11.5, smallest }).toMatchObject({
        width: size.width,
        atLeast11_5px: true,
      });
    }
    await page.setViewportSize(DESKTOP);
  });

  it('reader pages: signup, embed, check inbox, confirm, confirmed, preferences, saved, unsubscribed, errors', async () => {
    const email = 'a11y.pat@example.com';
    const reports: PageReport[] = [];
    reports.push(...(await audit(`${PUBLIC}/subscribe?newsletter=spine-health`, '/subscribe')));
    await expect(page.locator('footer a#privacy-link').getAttribute('href')).resolves.toBe(PRIVACY);
    reports.push(...(await audit(`${PUBLIC}/subscribe/embed?newsletter=arthritis-health`, '/subscribe/embed')));
    reports.push(...(await audit(`${PUBLIC}/subscribe?newsletter=nope`, '/subscribe?newsletter=nope (404)')));

    await page.goto(`${PUBLIC}/subscribe?newsletter=spine-health`);
    await page.getByLabel('Email address').fill(email);
    await Promise.all([
      page.waitForURL(/\/subscribe\/check-inbox/),
      page.getByRole('button', { name: 'Subscribe' }).click(),
    ]);
    reports.push(...(await audit(page.url(), '/subscribe/check-inbox')));

    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    const confirmLink = linkFrom(stack.smtp.to(email)[0].parsed.text ?? '', `${PUBLIC}/confirm/`);
    reports.push(...(await audit(confirmLink, '/confirm/:token')));
    await page.getByRole('button', { name: 'Yes, subscribe me' }).click();
    await page.waitForLoadState();
    for (const size of WIDTHS) {
      await page.setViewportSize(size);
      reports.push({
        path: 'confirmed',
        width: size.width,
        findings: await axeSeriousFindings(page),
        overflow: await horizontalOverflow(page),
        overflowing: await overflowingElements(page),
      });
    }
    await page.setViewportSize(DESKTOP);

    const [sub] = await query<{ id: string }>(
      stack.db.url,
      `SELECT s.id::text FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email = $1`,
      [email],
    );
    const prefs = `${PUBLIC}/unsubscribe/${signToken(stack.apps.config.appSecret, 'unsubscribe', sub.id)}`;
    reports.push(...(await audit(prefs, '/unsubscribe/:token')));
    reports.push(...(await audit(`${prefs}?action=unsubscribe`, '/unsubscribe/:token?action=unsubscribe')));
    await page.getByLabel('Sciatica').check();
    await page.getByRole('button', { name: 'Save topics' }).click();
    await page.waitForLoadState();
    reports.push({
      path: 'saved',
      width: 1280,
      findings: await axeSeriousFindings(page),
      overflow: 0,
      overflowing: [],
    });
    await page.goto(prefs);
    await page.getByRole('button', { name: 'Unsubscribe from Spine-health' }).click();
    await page.waitForLoadState();
    reports.push({
      path: 'unsubscribed',
      width: 1280,
      findings: await axeSeriousFindings(page),
      overflow: 0,
      overflowing: [],
    });
    reports.push(...(await audit(`${PUBLIC}/confirm/${'x'.repeat(43)}`, '/confirm/bad (404)')));
    expect(problems(reports)).toEqual([]);
  });
});
