import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Debian's Chromium (`apt-get install -y chromium`); CHROMIUM_PATH overrides it. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const HAS_CHROMIUM = existsSync(CHROMIUM);

/** Browser specs run only where Chromium is installed; elsewhere they are skipped with a message. */
export const describeInBrowser: jest.Describe = HAS_CHROMIUM ? describe : describe.skip;
if (!HAS_CHROMIUM) {
  console.warn(`Browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
}

export const SCREENSHOTS = join(process.cwd(), 'artifacts', 'screenshots');

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 375, height: 740 };

/**
 * Launches headless Chromium. `hosts` maps host names to a local port: mails and pages carry
 * PUBLIC_URL links (http://mailroom.test/…), and the browser follows them to the api under test.
 */
export async function launchBrowser(hosts: Record<string, string> = {}): Promise<Browser> {
  const rules = Object.entries(hosts).map(([host, target]) => `MAP ${host} ${target}`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      ...(rules.length > 0 ? [`--host-resolver-rules=${rules.join(', ')}`] : []),
    ],
  });
}

export async function newContext(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({ viewport: DESKTOP, acceptDownloads: true, locale: 'en-US', reducedMotion: 'reduce' });
}

/** Saves full-page screenshots of the current page at desktop and phone (375 px) widths. */
export async function screenshot(page: Page, name: string): Promise<string[]> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const files: string[] = [];
  for (const [label, size] of [
    ['desktop', DESKTOP],
    ['375', PHONE],
  ] as const) {
    await page.setViewportSize(size);
    const file = join(SCREENSHOTS, `${name}-${label}.png`);
    await page.screenshot({ path: file, fullPage: true });
    files.push(file);
  }
  await page.setViewportSize(DESKTOP);
  return files;
}

/** How far the page scrolls sideways at its current width (nothing may overflow a 375 px phone). */
export async function horizontalOverflow(page: Page): Promise<number> {
  // Expressions as strings: the tests compile without the DOM library.
  return page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
}

/** Visible form controls without an accessible name (a label, aria-label(ledby) or button text). */
export async function unlabelledControls(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`[...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => el.type !== 'hidden' && el.getClientRects().length > 0 && !el.closest('[aria-hidden="true"]'))
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')
      && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 120))`);
}

/** A serious or critical axe-core finding, short enough to read in a test failure. */
export interface AxeFinding {
  id: string;
  impact: string;
  help: string;
  targets: string[];
}

let axeSource: string | undefined;

/**
 * Runs axe-core (WCAG 2.x A/AA and best practices) on the page and returns its serious and
 * critical violations. axe is evaluated in the page rather than added as a <script>: the console's
 * CSP allows only its own scripts by hash (a context with bypassCSP: true runs it either way).
 */
export async function axeSeriousFindings(page: Page): Promise<AxeFinding[]> {
  axeSource ??= readFileSync(join(process.cwd(), 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  const loaded = await page.evaluate<boolean>('typeof window.axe === "object"');
  if (!loaded) await page.evaluate(axeSource);
  return page.evaluate<AxeFinding[]>(`window.axe
    .run(document, { resultTypes: ['violations'] })
    .then((r) => r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 5).map((n) => String(n.target)) })))`);
}

/** The elements that stick out past the right edge at the current width (to explain an overflow). */
export async function overflowingElements(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(
    `[...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 8).map((el) => el.tagName + '.' + el.className + '#' + el.id + ' ' + Math.round(el.getBoundingClientRect().right))`,
  );
}
