import 'reflect-metadata';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { addAudience } from '../support/audience.js';
import {
  describeInBrowser,
  horizontalOverflow,
  launchBrowser,
  PHONE,
  SCREENSHOTS,
  screenshot,
} from '../support/browser.js';
import { query } from '../support/db.js';
import { useStack } from '../support/stack.js';

const MARKETER = { email: 'mia.marketer@example.com', password: 'marketing-password-1' };
const RECIPIENTS = 40;

describeInBrowser('marketer in Chromium: schedule, compose, preview, test, send, progress to 100 %', () => {
  let audience: string[];
  const stack = useStack({
    label: 'e2e_marketer',
    env: { SEND_RATE_PER_SECOND: '20' },
    prepare: async () => {
      audience = await addAudience(stack.db.url, { prefix: 'weekly', count: RECIPIENTS, newsletter: 'spine-health' });
    },
  });
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  /**
   * Screenshots of a page opened on its own: after a full-page capture, Chromium's hit testing on a
   * page with sandboxed preview frames can miss, so the page under test is never captured mid-flow.
   * Full-page captures leave those frames blank, so each frame is captured on its own too.
   */
  async function snap(path: string, name: string): Promise<void> {
    const other = await context.newPage();
    try {
      await other.goto(`${stack.apps.baseUrl}${path}`);
      await screenshot(other, name);
      for (const width of ['desktop', 'mobile'] as const) {
        const frame = other.locator(`#preview-${width}`);
        if ((await frame.count()) === 0) continue;
        await frame.scrollIntoViewIfNeeded();
        await other.waitForTimeout(300);
        await frame.screenshot({ path: `${SCREENSHOTS}/${name}-frame-${width}.png` });
      }
    } finally {
      await other.close();
    }
  }

  beforeAll(async () => {
    expect((await stack.apps.api.get(StaffUsersService).create({ ...MARKETER, role: 'marketer' })).ok).toBe(true);
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
    page = await context.newPage();
  });

  // The browser closes first, before the apps it talks to.
  stack.onTeardown(async () => {
    await context?.close();
    await browser?.close();
  });

  it('a marketer signs in, sets the weekly schedule, composes and previews a digest, tests it and sends it', async () => {
    // Sign in.
    await page.goto(`${stack.apps.baseUrl}/admin`);
    await page.getByLabel('Email').fill(MARKETER.email);
    await page.getByLabel('Password').fill(MARKETER.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${stack.apps.baseUrl}/admin`);
    await screenshot(page, 'marketer-01-overview');

    // The weekly schedule, set with day, time and zone; the page says it in words with the next sends.
    await page.goto(`${stack.apps.baseUrl}/admin/newsletters/spine-health`);
    await page.locator('#schedule-day').selectOption({ label: 'Tuesday' });
    await page.locator('#schedule-time').fill('09:00');
    await page.locator('#schedule-timezone').selectOption('America/Chicago');
    await page.locator('#save-schedule').click();
    await page.waitForLoadState();
    await expect(page.locator('#schedule-words').getAttribute('data-cron')).resolves.toBe('0 9 * * 2');
    await expect(page.locator('#schedule-words').getAttribute('data-timezone')).resolves.toBe('America/Chicago');
    await expect(page.locator('#schedule-words').innerText()).resolves.toMatch(/Tuesday.*09:00.*America\/Chicago/);
    expect(await page.locator('#next-sends li').count()).toBe(3);
    const [schedule] = await query<{ schedule_cron: string; schedule_timezone: string }>(
      stack.db.url,
      `SELECT schedule_cron, schedule_timezone FROM newsletters WHERE slug = 'spine-health'`,
    );
    expect(schedule).toEqual({ schedule_cron: '0 9 * * 2', schedule_timezone: 'America/Chicago' });
    await screenshot(page, 'marketer-02-schedule');

    // Compose: drop the last candidate, move the second one up, preview.
    await page.locator('#compose-digest-link').click();
    await page.waitForLoadState();
    const items = page.locator('#compose-articles .compose-item');
    const count = await items.count();
    expect(count).toBeGreaterThanOrEqual(3);
    const titles = (await items.locator('label[for^="article-"]').allInnerTexts()).map((t) => t.split('\n')[0].trim());
    await items
      .nth(count - 1)
      .locator('input[type=checkbox]')
      .uncheck();
    await items.nth(1).getByRole('button', { name: /up$/ }).click();
    await page.locator('#update-preview').click();
    await page.waitForLoadState();
    const expected = [titles[1], titles[0], ...titles.slice(2, count - 1)];
    await expect(page.locator('#chosen-count').innerText()).resolves.toBe(`(${count - 1} chosen)`);
    const frame = page.frameLocator('#preview-desktop iframe');
    const previewText = await frame.locator('body').innerText();
    const positions = expected.map((t) => previewText.indexOf(t));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(previewText).not.toContain(titles[count - 1]);
    // Schedule it for later (the form's default time: the next full hour after an hour from now), then test it.
    await page.locator('#schedule-digest').click();
    await page.waitForURL(/\/admin\/digests\/\d+\?notice=scheduled$/);
    const id = /\/admin\/digests\/(\d+)/.exec(page.url())![1];
    await expect(page.locator('#digest-status').getAttribute('data-status')).resolves.toBe('scheduled');
    await page.locator('#test-to').fill('qa@example.com');
    await page.locator('#send-test').click();
    await page.waitForURL(/notice=test-sent$/);
    await stack.smtp.waitFor(() => stack.smtp.to('qa@example.com').length > 0);
    const test = stack.smtp.to('qa@example.com')[0];
    expect(test.parsed.subject).toMatch(/^\[Test\] Spine-health: /);
    for (const t of expected)
      expect(String(test.parsed.html)).toContain(t.replace(/'/g, '&#x27;').replace(/&(?!#)/g, '&amp;'));
    expect(audience.some((a) => stack.smtp.to(a).length > 0)).toBe(false);
    await snap(`/admin/digests/new?newsletter=spine-health`, 'marketer-03-compose');
    await snap(`/admin/digests/${id}`, 'marketer-04-digest-scheduled');

    // "Send now…" asks first, with the count of readers; then watch the progress bar reach 100 %.
    await page.locator('#send-now').click();
    await page.waitForURL(/\/admin\/digests\/\d+\/send$/);
    // A scheduled digest already names the subject it will carry.
    await expect(page.locator('#send-question').innerText()).resolves.toMatch(
      new RegExp(`^Send digest #${id} “Spine-health: [^”]+” to ${RECIPIENTS} readers of Spine-health now\\?$`),
    );
    await screenshot(page, 'marketer-05a-send-confirm');
    await page.locator('#confirm-send').click();
    await page.waitForURL(/notice=send-now$/);
    await page.waitForSelector('#digest-progress[data-percent="100"]', { timeout: 50_000 });
    await page.waitForSelector('#digest-status[data-status="sent"]', { timeout: 10_000 });
    await expect(page.locator('#progress-text').innerText()).resolves.toBe(
      `100 %: ${RECIPIENTS} of ${RECIPIENTS} done (${RECIPIENTS} sent, 0 failed, 0 remaining)`,
    );
    await screenshot(page, 'marketer-05-digest-sent');
    await page.setViewportSize(PHONE);
    expect(await horizontalOverflow(page)).toBeLessThanOrEqual(0);
    const [row] = await query<{ status: string }>(stack.db.url, `SELECT status FROM digests WHERE id = $1`, [id]);
    expect(row.status).toBe('sent');
    expect(audience.every((a) => stack.smtp.to(a).length === 1)).toBe(true);
  });
});
