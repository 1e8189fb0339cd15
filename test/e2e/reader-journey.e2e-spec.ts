import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { headerBlock, linkFrom } from '../support/apps.js';
import {
  describeInBrowser,
  horizontalOverflow,
  launchBrowser,
  newContext,
  PHONE,
  screenshot,
  unlabelledControls,
} from '../support/browser.js';
import { query } from '../support/db.js';
import { useStack } from '../support/stack.js';

const PUBLIC = 'http://mailroom.test';
const GUIDE = 'Natural Back Pain Relief: 16 Choices for Lasting Comfort';
const ARTICLE = 'https://www.spine-health.example/conditions/upper-back-pain/all-about-upper-back-pain';

/** The page's brand (header) and its main heading. */
async function brandAndHeading(page: Page): Promise<{ brand: string; h1: string }> {
  return {
    brand: (await page.locator('header .brand-name').innerText()).trim(),
    h1: (await page.locator('main h1').first().innerText()).trim(),
  };
}

/** Landmarks, labels and no sideways scrolling on a phone: the checks every reader page passes. */
async function expectAccessibleAndResponsive(page: Page): Promise<void> {
  expect(await page.locator('header').count()).toBe(1);
  expect(await page.locator('main#main').count()).toBe(1);
  expect(await page.locator('footer').count()).toBe(1);
  expect(await page.locator('h1').count()).toBe(1);
  expect(await page.getAttribute('html', 'lang')).toBe('en');
  expect(await unlabelledControls(page)).toEqual([]);
  // No external asset: every stylesheet and script is inline, no remote image.
  expect(await page.locator('link[rel=stylesheet], script[src], img[src^="http"]').count()).toBe(0);
  await page.setViewportSize(PHONE);
  expect(await horizontalOverflow(page)).toBeLessThanOrEqual(0);
  await page.setViewportSize({ width: 1280, height: 860 });
}

describeInBrowser('reader journey in Chromium: signup page → mail → confirm → guide → preference centre', () => {
  const stack = useStack({ label: 'e2e_reader' });
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Browser console errors (a CSP violation shows up here): none is expected. */
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    browser = await launchBrowser({ 'mailroom.test': new URL(stack.apps.baseUrl).host });
    context = await newContext(browser);
    page = await context.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
  });

  // The browser closes first, before the apps it talks to.
  stack.onTeardown(async () => {
    await context?.close();
    await browser?.close();
  });

  it('a reader subscribes on the signup page, confirms from the mail, downloads the guide and leaves', async () => {
    const email = 'pat.reader@example.com';

    // 1. The signup page, as linked from an article.
    const signup = await page.goto(`${PUBLIC}/subscribe?newsletter=spine-health&source=${encodeURIComponent(ARTICLE)}`);
    expect(signup?.status()).toBe(200);
    // Nothing but inline styles, forms posting back and the time-zone script (by its hash): nothing from elsewhere.
    const script = (await page.locator('main form script').textContent()) ?? '';
    const hash = createHash('sha256').update(script, 'utf8').digest('base64');
    expect(signup?.headers()['content-security-policy']).toBe(
      `default-src 'none'; script-src 'sha256-${hash}'; style-src 'unsafe-inline'; img-src data:; form-action 'self' ${PUBLIC}; base-uri 'none'; frame-ancestors *`,
    );
    // The script ran: the hidden field carries the browser's zone and is sent with the form.
    const zone = await page.evaluate<string>('Intl.DateTimeFormat().resolvedOptions().timeZone');
    expect(zone).toMatch(/^[A-Za-z]/);
    expect(await page.locator('main form input[name=timezone]').isDisabled()).toBe(false);
    expect(await page.locator('main form input[name=timezone]').inputValue()).toBe(zone);
    expect(await brandAndHeading(page)).toEqual({ brand: 'Spine-health', h1: 'Subscribe to our weekly newsletter' });
    await expect(page.locator('.offer .title').innerText()).resolves.toBe(GUIDE);
    await expect(page.getByText('We respect your privacy. Unsubscribe at any time.')).toBeTruthy();
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '01-signup');

    // Keyboard: the first Tab shows the skip link; the focused field has a visible outline.
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string>('document.activeElement.textContent')).toBe('Skip to main content');
    expect((await page.locator('.skip').boundingBox())!.y).toBeGreaterThanOrEqual(0);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string>('document.activeElement.id')).toBe('email');
    expect(await page.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle')).toBe('solid');
    await page.getByLabel('Email address').fill(email);
    await page.getByLabel('First name').fill('Pat');
    await page.getByLabel('Arthritis-health').check();
    await page.locator('summary', { hasText: 'Topics that interest you' }).click();
    await page.getByLabel('Neck Pain').check();
    await screenshot(page, '02-signup-filled');
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${PUBLIC}/v1/subscriptions`),
      page.getByRole('button', { name: 'Subscribe' }).click(),
    ]);
    // Post/redirect/get: the form's answer is a 303 to the "check your inbox" page (a reload posts nothing).
    expect(answer.status()).toBe(303);
    await page.waitForURL(`${PUBLIC}/subscribe/check-inbox?newsletter=spine-health&newsletter=arthritis-health`);
    await page.waitForLoadState();

    // 2. Check your inbox: two newsletters, so the publisher's name heads the page.
    expect(await brandAndHeading(page)).toEqual({ brand: 'Veritas Health', h1: 'Check your inbox' });
    await page.reload();
    expect(await brandAndHeading(page)).toEqual({ brand: 'Veritas Health', h1: 'Check your inbox' });
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '03-check-inbox');
    const stored = await query<{ slug: string; status: string; topics: string[]; source: string }>(
      stack.db.url,
      `SELECT n.slug, s.status, s.topics, s.source FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id
       JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email = $1 ORDER BY n.slug`,
      [email],
    );
    expect(stored).toEqual([
      { slug: 'arthritis-health', status: 'pending', topics: ['Neck Pain'], source: ARTICLE },
      { slug: 'spine-health', status: 'pending', topics: ['Neck Pain'], source: ARTICLE },
    ]);
    expect(
      await query<{ timezone: string | null }>(stack.db.url, `SELECT timezone FROM subscribers WHERE email = $1`, [
        email,
      ]),
    ).toEqual([{ timezone: zone }]);

    // 3. The confirmation mail's link opens a page with a button; opening it confirms nothing.
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    const confirmation = stack.smtp.to(email)[0];
    const confirmLink = linkFrom(confirmation.parsed.text ?? '', `${PUBLIC}/confirm/`);
    const confirmPage = await page.goto(confirmLink);
    // A page behind a token may not be framed (no overlaid "Yes, subscribe me").
    expect(confirmPage?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(confirmPage?.headers()['x-frame-options']).toBe('DENY');
    expect(await brandAndHeading(page)).toEqual({ brand: 'Veritas Health', h1: 'Confirm your subscription' });
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '04-confirm');
    expect(
      (await query<{ status: string }>(stack.db.url, `SELECT DISTINCT status FROM subscriptions`)).map((r) => r.status),
    ).toEqual(['pending']);

    await page.getByRole('button', { name: 'Yes, subscribe me' }).click();
    await page.waitForLoadState();
    expect(await brandAndHeading(page)).toEqual({ brand: 'Veritas Health', h1: "You're subscribed!" });
    await expect(page.locator('.lead').innerText()).resolves.toContain('Arthritis-health and Spine-health');
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '05-confirmed');
    expect(
      (await query<{ status: string }>(stack.db.url, `SELECT DISTINCT status FROM subscriptions`)).map((r) => r.status),
    ).toEqual(['active']);

    // 4. The guide: a download link on the success page, answering with the guide itself.
    const guideLink = page.getByRole('link', { name: 'Download the guide' });
    const href = (await guideLink.getAttribute('href')) ?? '';
    expect(href).toMatch(new RegExp(`^${PUBLIC}/guides/natural-back-pain-relief/[0-9]+\\.[0-9]+\\.[A-Za-z0-9_-]{22}$`));
    const [download] = await Promise.all([page.waitForEvent('download'), guideLink.click()]);
    expect(download.suggestedFilename()).toBe('natural-back-pain-relief.html');
    expect(await readFile(await download.path(), 'utf8')).toContain('<h1>Natural Back Pain Relief');
    // The same request again, to see the answer's status and headers (the page's CSP allows no fetch).
    const res = await fetch(href.replace(PUBLIC, stack.apps.baseUrl));
    expect({
      status: res.status,
      type: res.headers.get('content-type'),
      disposition: res.headers.get('content-disposition'),
      cache: res.headers.get('cache-control'),
    }).toEqual({
      status: 200,
      type: 'text/html; charset=utf-8',
      disposition: 'attachment; filename="natural-back-pain-relief.html"',
      cache: 'private, no-store',
    });

    // The guide mail comes too, once, with the same kind of link and the one-click unsubscribe headers.
    await stack.smtp.waitFor(() => stack.smtp.to(email).some((m) => /guide/i.test(m.parsed.subject ?? '')));
    const guideMail = stack.smtp.to(email).find((m) => /guide/i.test(m.parsed.subject ?? ''))!;
    expect(linkFrom(guideMail.parsed.text ?? '', `${PUBLIC}/guides/natural-back-pain-relief/`)).toBeTruthy();
    expect(headerBlock(guideMail.raw)).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click$/m);
    // The footer's "Manage your preferences" link (its "Unsubscribe" link opens the same page at the unsubscribe form).
    const guideText = guideMail.parsed.text ?? '';
    const preferencesLink = linkFrom(
      guideText.slice(guideText.indexOf('Manage your preferences')),
      `${PUBLIC}/unsubscribe/`,
    );

    // 5. The preference centre: newsletters, topics; saving topics keeps the subscription.
    await page.goto(preferencesLink);
    expect(await brandAndHeading(page)).toEqual({ brand: 'Spine-health', h1: 'Your email preferences' });
    await expect(page.locator('.subs').innerText()).resolves.toMatch(
      /Spine-health\s+Subscribed\s+Arthritis-health\s+Subscribed/,
    );
    expect(await page.getByLabel('Neck Pain').isChecked()).toBe(true);
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '06-preferences');
    // Nothing destructive is pre-selected: topics and unsubscribing are separate forms and buttons.
    expect(await page.locator('input[type=radio]').count()).toBe(0);
    await page.getByLabel('Sciatica').check();
    await page.getByRole('button', { name: 'Save topics' }).click();
    await page.waitForLoadState();
    expect(await brandAndHeading(page)).toEqual({ brand: 'Spine-health', h1: 'Preferences saved' });
    await screenshot(page, '07-preferences-saved');
    expect(
      (await query<{ status: string }>(stack.db.url, `SELECT DISTINCT status FROM subscriptions`)).map((r) => r.status),
    ).toEqual(['active']);

    // …then unsubscribe from all.
    await page.goto(preferencesLink);
    expect(await page.getByLabel('Sciatica').isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Unsubscribe from all newsletters' }).click();
    await page.waitForLoadState();
    expect(await brandAndHeading(page)).toEqual({ brand: 'Veritas Health', h1: 'You have been unsubscribed' });
    await expect(page.locator('.lead').innerText()).resolves.toContain(
      'You will no longer receive Arthritis-health and Spine-health.',
    );
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '08-unsubscribed');
    expect(
      (await query<{ status: string }>(stack.db.url, `SELECT DISTINCT status FROM subscriptions`)).map((r) => r.status),
    ).toEqual(['unsubscribed']);

    // The preference centre now shows where the reader stands.
    await page.goto(preferencesLink);
    await expect(page.locator('.subs').innerText()).resolves.toMatch(/Spine-health\s+Unsubscribed/);
    await expect(page.locator('#nothing-left').innerText()).resolves.toContain('not subscribed to any');
    expect(await page.locator('form').count()).toBe(0);
    await screenshot(page, '09-preferences-after');
    expect(consoleErrors).toEqual([]);
  });

  it('shows the embed snippet, which posts to the same endpoint; a used or bad link gets a clear page', async () => {
    await page.goto(`${PUBLIC}/subscribe/embed?newsletter=spine-health`);
    expect(await brandAndHeading(page)).toEqual({ brand: 'Veritas Health', h1: 'Signup box for your articles' });
    const snippet = await page.getByLabel('HTML snippet').inputValue();
    expect(snippet).toContain(`<form method="post" action="${PUBLIC}/v1/subscriptions">`);
    expect(snippet).toContain('<input type="hidden" name="newsletters" value="spine-health">');
    expect(snippet).toContain('<input type="hidden" name="timezone" disabled><script>');
    // The preview's copy of the snippet script runs (the embed page allows it by hash) and fills the field.
    const zone = await page.evaluate<string>('Intl.DateTimeFormat().resolvedOptions().timeZone');
    expect(await page.locator('.preview input[name=timezone]').inputValue()).toBe(zone);
    await expect(page.locator('.preview .mr-signup').innerText()).resolves.toMatch(
      /^Subscribe to our weekly newsletter and get our FREE Guide: Natural Back Pain Relief: 16 Choices for Lasting Comfort\.\s+Email address[\s\S]*We respect your privacy\. Unsubscribe at any time\./,
    );
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '10-embed');

    // The snippet's form, filled in the preview, lands on the hosted "check your inbox" page.
    await page.locator('.preview').getByLabel('Email address').fill('from.embed@example.com');
    await page.locator('.preview').getByRole('button', { name: 'Subscribe' }).click();
    await page.waitForLoadState();
    expect(await brandAndHeading(page)).toEqual({ brand: 'Spine-health', h1: 'Check your inbox' });
    await stack.smtp.waitFor(() => stack.smtp.to('from.embed@example.com').length >= 1);
    // No CSP violation on the embed page either (its preview runs the snippet's script).
    expect(consoleErrors).toEqual([]);

    // Another reader's browser, another zone in the field.
    const chicago = await browser.newContext({ timezoneId: 'America/Chicago' });
    try {
      const other = await chicago.newPage();
      await other.goto(`${PUBLIC}/subscribe`);
      expect(await other.locator('main form input[name=timezone]').inputValue()).toBe('America/Chicago');
    } finally {
      await chicago.close();
    }

    const bad = await page.goto(`${PUBLIC}/confirm/${'x'.repeat(43)}`);
    expect(bad?.status()).toBe(404);
    expect(await brandAndHeading(page)).toEqual({ brand: 'Veritas Health', h1: 'This link is not valid' });
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '11-link-error');

    // Input the server refuses (past the browser's own check) gets a 400 page naming the problem.
    await page.goto(`${PUBLIC}/subscribe`);
    await page.evaluate('document.querySelector("main form").noValidate = true');
    await page.getByLabel('Email address').fill('not an address');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${PUBLIC}/v1/subscriptions`),
      page.getByRole('button', { name: 'Subscribe' }).click(),
    ]);
    expect(refused.status()).toBe(400);
    expect(refused.headers()['content-security-policy']).toContain("default-src 'none'");
    await page.waitForLoadState();
    expect((await brandAndHeading(page)).h1).toBe('Please check the form');
    await expect(page.getByRole('alert').innerText()).resolves.toMatch(/email/i);
    await expectAccessibleAndResponsive(page);
    await screenshot(page, '12-form-error');
  });
});
