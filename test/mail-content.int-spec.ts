import 'reflect-metadata';
import { execFile, spawnSync } from 'node:child_process';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { admin, waitUntil } from './support/admin.js';
import { headerBlock, linkFrom } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { type CapturedMail } from './support/smtp.js';
import { useStack } from './support/stack.js';

/**
 * What every mail carries and what none may carry, read from mails as they arrive over SMTP: the
 * one-click unsubscribe alone (no mailto), honest test copies, a preheader without a colour trick,
 * nothing loaded from third parties, and the privacy policy link.
 */
const PUBLIC = 'http://mailroom.test';
const PRIVACY = 'https://www.spine-health.example/privacy?lang=en&from=mail';
/** Where a mail may point: Mailroom's own links, the articles (and their images), the publisher's site. */
const ALLOWED = [`${PUBLIC}/`, 'https://www.spine-health.example/', 'https://images.spine-health.example/'];
const STAFF = { email: 'editor@spine-health.example', password: 'editor-password-123' };
const SA = spawnSync('spamassassin', ['--version']).status === 0;

/** Enough of HTML's character references to read the text of the markup Mailroom writes. */
function decode(html: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', nbsp: '\u00a0', zwnj: '\u200c' };
  return html
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&([a-z]+);/g, (m, n: string) => named[n] ?? m);
}

const htmlOf = (m: CapturedMail): string => String(m.parsed.html);

/** The preheader element and its visible text (the padding after it removed). */
function preheader(m: CapturedMail): { element: string; text: string } {
  const html = htmlOf(m);
  const match = /<div class="mr-preheader"[^>]*>([\s\S]*?)<\/div>/.exec(html);
  if (!match) throw new Error(`No preheader in:\n${html.slice(0, 3000)}`);
  // Whatever the body shows before the preheader: it must be nothing (the preheader is the first text).
  const before = html.slice(html.search(/<body[^>]*>/), match.index).replace(/<[^>]*>/g, '');
  expect(before.replace(/<body[^>]*>/, '').trim()).toBe('');
  return { element: match[0], text: decode(match[1]).replace(/[\u034f\u200c\u00a0\s]+$/u, '') };
}

/** Every check that holds for every mail Mailroom sends. */
function checkEveryMail(m: CapturedMail): void {
  const html = htmlOf(m);
  // Nothing from third parties: no web fonts, no stylesheet, no script, no remote CSS.
  expect(html).not.toContain('fonts.googleapis');
  expect(html).not.toContain('@import');
  expect(html).not.toMatch(/<link\b|<script\b|url\(/i);
  // Every http(s) address is Mailroom's, an article's or the publisher's (XML namespaces are names, not loads).
  const urls = [...html.replace(/\sxmlns(:\w+)?="[^"]*"/g, '').matchAll(/https?:\/\/[^\s"'<>)]+/g)].map((u) => u[0]);
  urls.push(...[...(m.parsed.text ?? '').matchAll(/https?:\/\/[^\s"'<>\]]+/g)].map((u) => u[0]));
  expect(urls.length).toBeGreaterThan(0);
  for (const url of urls) expect([url, ALLOWED.some((a) => url.startsWith(a))]).toEqual([url, true]);
  // Under Gmail's clipping size (102 kB): the footer with the unsubscribe link is always shown.
  expect(Buffer.byteLength(html)).toBeLessThan(100_000);
  // Every image says what it shows, or is marked decorative (alt=""); none is sized by the sender's CSS alone.
  for (const img of html.match(/<img\b[^>]*>/gi) ?? []) expect([img, /\salt="[^"]*"/.test(img)]).toEqual([img, true]);
  // Every link and image is absolute: a mail has no base address to resolve a relative one against.
  for (const [, attr, value] of html.matchAll(/\s(href|src)="([^"]*)"/gi)) {
    expect([attr, value, /^(https?:\/\/|mailto:)/.test(value)]).toEqual([attr, value, true]);
  }
  // The text part reads as text: no markup, no template syntax, no entity left over, lines a reader can follow.
  const text = m.parsed.text ?? '';
  expect(text.length).toBeGreaterThan(200);
  expect(text).not.toMatch(/<\/?[a-z][^>]*>|\{\{|&(amp|lt|gt|quot|nbsp|#\d+);/i);
  for (const line of text.split('\n')) if (!/https?:\/\//.test(line)) expect(line.length).toBeLessThanOrEqual(200);
  // The preheader: hidden, no colour or size trick (SpamAssassin's HTML_FONT_LOW_CONTRAST), padded.
  const { element } = preheader(m);
  expect(element).toMatch(
    /^<div class="mr-preheader" style="display:none;max-height:0;max-width:0;overflow:hidden;mso-hide:all;">/,
  );
  expect(element).toContain('&#847;&zwnj;&nbsp;'.repeat(15));
  for (const hidden of html.match(/<[^>]+display:\s*none[^>]*>/g) ?? [])
    expect(hidden).not.toMatch(/color|opacity|font-size/);
  // The privacy policy, escaped in the HTML, as it is in the text.
  expect(html).toContain('<a href="https://www.spine-health.example/privacy?lang&#x3D;en&amp;from&#x3D;mail"');
  expect(html).toMatch(/>Privacy policy<\/a>/);
  expect(m.parsed.text).toContain(`Privacy policy [${PRIVACY}]`);
}

/** A newsletter mail's unsubscribe headers: the one-click https URL alone. */
function checkOneClick(m: CapturedMail): string {
  const head = headerBlock(m.raw);
  expect(head.match(/^List-Unsubscribe:/gim)).toHaveLength(1);
  expect(head).not.toMatch(/mailto:/i);
  const value = /^List-Unsubscribe: (.*)$/m.exec(head)![1];
  expect(value).toMatch(/^<http:\/\/mailroom\.test\/unsubscribe\/[^>\s,]+>$/);
  expect(head).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click$/m);
  return value.slice(1, -1);
}

/** A test copy: says so at the top and in the footer, no unsubscribe that pretends to work. */
function checkTestCopy(m: CapturedMail, to: string): void {
  expect(m.parsed.subject).toMatch(/^\[Test\] Spine-health: /);
  const head = headerBlock(m.raw);
  expect(head).not.toMatch(/^List-Unsubscribe/im);
  const html = htmlOf(m);
  expect(html).not.toMatch(/\/unsubscribe\/|\/subscribe\?|>Unsubscribe<|Manage your preferences/);
  expect(m.parsed.text).not.toMatch(/\/unsubscribe\/|\/subscribe\?|Manage your preferences/);
  expect(m.parsed.text).not.toContain('You are receiving this because you subscribed');
  // The banner comes right after the hidden preheader, and first in the text.
  expect(html).toMatch(
    /<div class="mr-preheader"[^>]*>[^<]*<\/div>\s*<div class="mr-test-banner"[^>]*><p[^>]*><strong>TEST COPY<\/strong>/,
  );
  expect(m.parsed.text?.trimStart()).toMatch(/^TEST COPY · This is a test copy of this digest\./);
  const footer = /This is a test copy sent to (\S+) by ([^;]+); readers get their\s+own unsubscribe link here\./;
  expect(footer.exec(decode(html))?.[1]).toBe(to);
  expect(footer.exec(m.parsed.text ?? '')?.[1]).toBe(to);
}

/** SpamAssassin's verdict on a raw message (local tests only, no network). */
function spamassassin(raw: string): Promise<{ score: number; tests: string[] }> {
  return new Promise((resolve, reject) => {
    const child = execFile('spamassassin', ['-t', '-L'], { maxBuffer: 16 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      const status = /^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ tests=([\s\S]*?) autolearn/m.exec(stdout);
      if (!status) return reject(new Error(`No X-Spam-Status in:\n${stdout.slice(0, 2000)}`));
      resolve({ score: Number(status[1]), tests: status[2].split(/[,\s]+/).filter(Boolean) });
    });
    child.stdin?.end(raw);
  });
}

describe('what every mail carries', () => {
  let readers: string[];
  const stack = useStack({
    label: 'mail_content',
    queue: 'redis',
    env: { PRIVACY_URL: PRIVACY },
    prepare: async () => {
      readers = await addAudience(stack.db.url, { prefix: 'mc', count: 3, newsletter: 'spine-health' });
    },
  });
  const reader = 'pat@example.org';
  /** One captured mail of each kind, for the spam scores at the end. */
  const kinds = new Map<string, CapturedMail>();
  const local = (link: string) => link.replace(PUBLIC, stack.apps.baseUrl);

  const created = async (): Promise<string> => {
    const res = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    expect(res.status).toBe(201);
    return res.body.id;
  };
  const finished = (id: string) =>
    waitUntil(
      () => admin<{ status: string }>(stack.apps.baseUrl, 'GET', `/v1/digests/${id}`).then((r) => r.body),
      (d) => !['scheduled', 'sending'].includes(d.status),
      30_000,
      `digest ${id}`,
    );
  const mailTo = async (to: string, n = 1): Promise<CapturedMail> => {
    await stack.smtp.waitFor(() => stack.smtp.to(to).length >= n);
    return stack.smtp.to(to)[n - 1];
  };

  it('the confirmation and the guide: one-click unsubscribe alone, own preheader, no third party, privacy link', async () => {
    const res = await fetch(`${stack.apps.baseUrl}/v1/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: reader, name: 'Pat' }),
    });
    expect(res.status).toBe(202);
    const confirmation = await mailTo(reader);
    kinds.set('confirmation', confirmation);
    checkEveryMail(confirmation);
    expect(preheader(confirmation).text).toBe('Confirm your email address to start receiving the newsletter.');
    expect(headerBlock(confirmation.raw)).not.toMatch(/^List-Unsubscribe/im);
    // A lifecycle mail has no web version: no "View in your browser" line (it once showed, with an empty link).
    expect(htmlOf(confirmation)).not.toContain('View in your browser');
    expect(confirmation.parsed.text).not.toContain('View in your browser');

    // The reader pages on the way load nothing from third parties either.
    const confirmLink = local(linkFrom(confirmation.parsed.text ?? '', `${PUBLIC}/confirm/`));
    for (const page of [await fetch(confirmLink), await fetch(`${stack.apps.baseUrl}/subscribe`)]) {
      const html = await page.text();
      expect(html).not.toMatch(
        /fonts\.googleapis|@import|<link\b[^>]*https?:|<script\b[^>]*\bsrc=|url\(\s*['"]?https?:/i,
      );
    }
    expect((await fetch(confirmLink, { method: 'POST' })).status).toBe(200);

    const guide = await mailTo(reader, 2);
    kinds.set('guide', guide);
    checkEveryMail(guide);
    expect(preheader(guide).text).toBe(
      'Here is your copy of Natural Back Pain Relief: 16 Choices for Lasting Comfort.',
    );
    const unsubscribe = checkOneClick(guide);
    // The preference centre behind it loads nothing from third parties.
    const page = await fetch(local(unsubscribe));
    expect(page.status).toBe(200);
    expect(await page.text()).not.toMatch(/fonts\.googleapis|@import|<link\b[^>]*https?:|<script\b[^>]*\bsrc=/i);
  });

  it('the digest on its spliced fast path: one-click unsubscribe alone, a preheader cut at a word', async () => {
    const id = await created();
    expect(await finished(id)).toMatchObject({ status: 'sent' });
    const mails = await Promise.all([...readers, reader].map((r) => mailTo(r, r === reader ? 3 : 1)));
    const titles = (
      await admin<{ articles: { title: string }[] }>(stack.apps.baseUrl, 'GET', `/v1/digests/${id}`)
    ).body.articles
      .map((a) => a.title)
      .join(' · ');
    expect(titles.length).toBeGreaterThan(150);
    for (const m of mails) {
      // The message was assembled from the issue's spliced parts (BulkMessageTemplate's boundary).
      expect(m.raw).toMatch(/boundary="--_mr_[0-9a-f]{24}"/);
      checkEveryMail(m);
      checkOneClick(m);
      const { text } = preheader(m);
      expect(text.length).toBeLessThanOrEqual(150);
      expect(text.endsWith('…')).toBe(true);
      const kept = text.slice(0, -1);
      expect(titles.startsWith(kept)).toBe(true);
      expect(titles[kept.length]).toBe(' ');
    }
    kinds.set('digest', mails[0]);
  });

  it('test copies say so and carry no unsubscribe: admin API, console, unplanned and older stored issues', async () => {
    const [{ id: sent }] = await query<{ id: string }>(
      stack.db.url,
      `SELECT id FROM digests WHERE status = 'sent' ORDER BY id DESC LIMIT 1`,
    );
    // The stored issue of a sent digest, through the admin API.
    expect(
      (await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${sent}/test`, { to: 'qa@spine-health.example' })).status,
    ).toBe(202);
    const api = await mailTo('qa@spine-health.example');
    checkEveryMail(api);
    checkTestCopy(api, 'qa@spine-health.example');
    kinds.set('test copy', api);

    // The console's "send a test".
    expect((await stack.apps.api.get(StaffUsersService).create({ ...STAFF, role: 'marketer' })).ok).toBe(true);
    const browser = new ConsoleBrowser(stack.apps.baseUrl);
    expect((await browser.signIn(STAFF.email, STAFF.password)).status).toBe(303);
    const csrf = await browser.csrfToken();
    const posted = await browser.post(`/admin/digests/${sent}/test`, {
      _csrf: csrf,
      to: 'console@spine-health.example',
    });
    expect(posted.status).toBe(303);
    const fromConsole = await mailTo('console@spine-health.example');
    checkEveryMail(fromConsole);
    checkTestCopy(fromConsole, 'console@spine-health.example');

    // An issue stored before test copies had their slots: rendered anew, still an honest test copy.
    await query(
      stack.db.url,
      `UPDATE digests SET html_template = replace(html_template, 'mr-reader', 'old') WHERE id = $1`,
      [sent],
    );
    await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${sent}/test`, { to: 'old@spine-health.example' });
    checkTestCopy(await mailTo('old@spine-health.example'), 'old@spine-health.example');

    // A digest not planned yet (rendered for the test copy).
    await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
      url: 'https://www.spine-health.example/news/mail-content',
      title: 'Treating Intercostal Muscle Strain',
      imageUrl: 'https://images.spine-health.example/intercostal.jpg',
      publishedAt: new Date().toISOString(),
      newsletters: ['spine-health'],
    });
    const later = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {
      sendAt: new Date(Date.now() + 3600_000).toISOString(),
    });
    await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${later.body.id}/test`, { to: 'plan@spine-health.example' });
    const unplanned = await mailTo('plan@spine-health.example');
    checkEveryMail(unplanned);
    checkTestCopy(unplanned, 'plan@spine-health.example');
    expect(htmlOf(unplanned)).toContain('src="https://images.spine-health.example/intercostal.jpg"');
    await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${later.body.id}/cancel`);
  });

  it('SpamAssassin finds nothing in the markup of any kind of mail (when installed)', async () => {
    expect([...kinds.keys()]).toEqual(['confirmation', 'guide', 'digest', 'test copy']);
    if (!SA) {
      console.log('spamassassin is not installed: the scores are not checked (the markup checks above still ran)');
      return;
    }
    const verdicts = await Promise.all([...kinds].map(async ([kind, m]) => [kind, await spamassassin(m.raw)] as const));
    console.log(verdicts.map(([kind, v]) => `${kind}: ${v.score} (${v.tests.join(', ')})`).join('\n'));
    for (const [, v] of verdicts) {
      expect(v.tests).not.toContain('HTML_FONT_LOW_CONTRAST');
      expect(v.tests.filter((t) => t.startsWith('HTML_') && t !== 'HTML_MESSAGE')).toEqual([]);
      expect(v.score).toBeLessThan(0.5);
    }
  });
});
