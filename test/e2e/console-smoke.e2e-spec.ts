import 'reflect-metadata';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { describeInBrowser, horizontalOverflow, launchBrowser, PHONE, screenshot } from '../support/browser.js';
import { useStack } from '../support/stack.js';

const MARKETER = { email: 'mark@example.com', password: 'marketing-password-1' };
const LOCKED = { email: 'locked@example.com', password: 'the right password' };

describeInBrowser('staff console in Chromium: sign-in refusals, rate limit, roles', () => {
  const stack = useStack({ label: 'e2e_console', worker: false });
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  async function signIn(email: string, password: string): Promise<number | undefined> {
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/admin/login') && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    await page.waitForLoadState();
    return res.status();
  }

  beforeAll(async () => {
    const users = stack.apps.api.get(StaffUsersService);
    expect((await users.create({ ...MARKETER, role: 'marketer' })).ok).toBe(true);
    expect((await users.create({ ...LOCKED, role: 'marketer' })).ok).toBe(true);
    browser = await launchBrowser();
  });

  beforeEach(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
    page = await context.newPage();
  });

  afterEach(async () => {
    await context?.close();
  });

  // The browser closes first, before the apps it talks to.
  stack.onTeardown(async () => {
    await browser?.close();
  });

  it('refuses a wrong password, then pauses the address after 5 failures (even the right password gets 429)', async () => {
    await page.goto(`${stack.apps.baseUrl}/admin/login`);
    await screenshot(page, 'console-01-login');
    expect(await signIn(LOCKED.email, 'not the password')).toBe(401);
    await expect(page.getByRole('alert').innerText()).resolves.toContain('Email or password is incorrect');
    // The address stays in the field, the password does not.
    expect(await page.getByLabel('Email').inputValue()).toBe(LOCKED.email);
    expect(await page.getByLabel('Password').inputValue()).toBe('');
    expect((await context.cookies()).some((c) => c.name === 'mailroom_session')).toBe(false);
    await screenshot(page, 'console-02-login-refused');

    for (let i = 2; i <= 5; i += 1) expect(await signIn(LOCKED.email, `wrong password ${i}`)).toBe(401);
    expect(await signIn(LOCKED.email, LOCKED.password)).toBe(429);
    await expect(page.locator('body').innerText()).resolves.toMatch(/Too many failed sign-in attempts/);
    expect((await context.cookies()).some((c) => c.name === 'mailroom_session')).toBe(false);
    await page.setViewportSize(PHONE);
    expect(await horizontalOverflow(page)).toBeLessThanOrEqual(0);
    await screenshot(page, 'console-03-login-rate-limited');
  });

  it('signs a marketer in; user management answers 403 and is not in the menu', async () => {
    await page.goto(`${stack.apps.baseUrl}/admin`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    expect(await signIn(MARKETER.email, MARKETER.password)).toBe(303);
    expect(new URL(page.url()).pathname).toBe('/admin');
    const session = (await context.cookies()).find((c) => c.name === 'mailroom_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(await page.locator('#nav-users').count()).toBe(0);
    await screenshot(page, 'console-04-marketer-overview');

    const res = await page.goto(`${stack.apps.baseUrl}/admin/users`);
    expect(res?.status()).toBe(403);
    await expect(page.locator('body').innerText()).resolves.toContain('You do not have access to this page');
    await page.setViewportSize(PHONE);
    expect(await horizontalOverflow(page)).toBeLessThanOrEqual(0);
    await screenshot(page, 'console-05-users-403');
  });
});
