import 'reflect-metadata';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { emailHash } from '#subscriptions/tokens.js';
import { addAudience } from '../support/audience.js';
import {
  describeInBrowser,
  horizontalOverflow,
  launchBrowser,
  PHONE,
  screenshot,
  unlabelledControls,
} from '../support/browser.js';
import { query } from '../support/db.js';
import { useStack } from '../support/stack.js';

const ADMIN = { email: 'ada@example.com', password: 'correct horse battery staple' };

describeInBrowser('staff console in Chromium: overview chart, subscribers, CSV import, suppressions', () => {
  const stack = useStack({ label: 'e2e_console_audience', worker: false });
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  /** Phone width: nothing scrolls sideways and every control has a name; then both screenshots. */
  async function check(name: string): Promise<void> {
    expect(await unlabelledControls(page)).toEqual([]);
    await page.setViewportSize(PHONE);
    const overflow = await horizontalOverflow(page);
    if (overflow > 0)
      console.log(
        name,
        await page.evaluate<string[]>(
          `[...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 8).map((el) => el.tagName + '.' + el.className + '#' + el.id + ' ' + Math.round(el.getBoundingClientRect().right))`,
        ),
      );
    await screenshot(page, name);
    expect(overflow).toBeLessThanOrEqual(0);
  }

  beforeAll(async () => {
    expect((await stack.apps.api.get(StaffUsersService).create({ ...ADMIN, role: 'admin' })).ok).toBe(true);
    await addAudience(stack.db.url, { prefix: 'reader', count: 12, newsletter: 'spine-health' });
    await addAudience(stack.db.url, {
      prefix: 'waiting',
      count: 3,
      newsletter: 'sports-health',
      subscription: 'pending',
    });
    // A growing audience: confirmations spread over the last seven weeks.
    await query(
      stack.db.url,
      `UPDATE subscriptions SET confirmed_at = now() - (((id % 7) * 7 + 1) * interval '1 day')
        WHERE status = 'active'`,
    );
    const bounced = await addAudience(stack.db.url, {
      prefix: 'bounced',
      count: 1,
      newsletter: 'spine-health',
      subscriber: 'bounced',
    });
    await query(stack.db.url, `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, 'bounced', $2)`, [
      emailHash(stack.apps.config.appSecret, bounced[0]),
      '550 5.1.1 mailbox unknown',
    ]);
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
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

  it('the overview draws one growth chart per newsletter', async () => {
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.goto(`${stack.apps.baseUrl}/admin`);
    await expect(page.locator('svg.chart').count()).resolves.toBe(3);
    await expect(page.locator('#chart-spine-health circle').count()).resolves.toBe(8);
    await expect(page.getByRole('img', { name: /Spine-health: active subscribers per week/ }).count()).resolves.toBe(1);
    await expect(page.locator('#newsletter-spine-health [data-figure="active"]').innerText()).resolves.toBe('13');
    await check('console-audience-01-overview');
  });

  it('searches subscribers and opens one', async () => {
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.goto(`${stack.apps.baseUrl}/admin/subscribers`);
    await page.getByLabel('Email starts with').fill('reader1');
    await page.getByLabel('Status').selectOption('active');
    await Promise.all([page.waitForURL(/q=reader1/), page.getByRole('button', { name: 'Search' }).click()]);
    // reader1, reader10, reader11, reader12
    await expect(page.locator('#subscribers-table tbody tr').count()).resolves.toBe(4);
    await check('console-audience-02-subscribers');
    await page.setViewportSize({ width: 1280, height: 860 });
    await Promise.all([
      page.waitForURL(/\/admin\/subscribers\/\d+$/),
      page.getByRole('link', { name: 'reader10@example.com' }).click(),
    ]);
    await expect(page.locator('#subscriber-email').innerText()).resolves.toBe('reader10@example.com');
    await check('console-audience-03-subscriber');
  });

  it('imports a CSV file with a progress bar and shows the report', async () => {
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.goto(`${stack.apps.baseUrl}/admin/subscribers/import`);
    await page.getByLabel('Newsletter').selectOption('arthritis-health');
    const rows = ['email,name,topics,timezone,consented_at,source'];
    for (let i = 1; i <= 500; i += 1)
      rows.push(`imported${i}@example.com,Reader ${i},Knee Pain,,2026-05-01T00:00:00Z,`);
    rows.push('broken-address,,,,2026-05-01,');
    await page.locator('#import-file').setInputFiles({
      name: 'readers.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(rows.join('\n')),
    });
    await page.getByRole('button', { name: 'Import' }).click();
    await page.locator('#import-report').waitFor({ state: 'visible' });
    await expect(page.locator('#import-progress').getAttribute('value')).resolves.toBe('100');
    await expect(page.locator('#report-created').innerText()).resolves.toBe('500');
    await expect(page.locator('#report-invalid').innerText()).resolves.toBe('1');
    await expect(page.locator('#report-invalid-list').innerText()).resolves.toContain('Line 502');
    await check('console-audience-04-import');
  });

  it('an admin lifts a suppression through its confirmation page', async () => {
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.goto(`${stack.apps.baseUrl}/admin/suppressions`);
    await expect(page.locator('#suppressions-table').innerText()).resolves.toContain('bounced1@example.com');
    await check('console-audience-05-suppressions');
    await page.setViewportSize({ width: 1280, height: 860 });
    await Promise.all([
      page.waitForURL(/\/lift$/),
      page.getByRole('link', { name: 'Lift the suppression of bounced1@example.com' }).click(),
    ]);
    await check('console-audience-06-lift');
    await page.setViewportSize({ width: 1280, height: 860 });
    await Promise.all([
      page.waitForURL(/notice=lifted/),
      page.getByRole('button', { name: 'Lift the suppression' }).click(),
    ]);
    await expect(page.locator('#suppressions-empty').count()).resolves.toBe(1);
  });
});
