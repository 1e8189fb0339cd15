import 'reflect-metadata';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { emailHash } from '#subscriptions/tokens.js';
import { admin } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { postJson } from './support/http.js';
import { useStack } from './support/stack.js';
import { decode } from './support/html.js';

const ADMIN = { email: 'ada@example.com', password: 'correct horse battery staple' };
const MARKETER = { email: 'mark@example.com', password: 'marketing-password-1' };

/** The addresses in the subscribers table of a page, in order. */
function listedEmails(html: string): string[] {
  return [...html.matchAll(/<tr data-subscriber-id="\d+" data-email="([^"]+)"/g)].map((m) => decode(m[1]));
}

/** The text of the element with this id (tags stripped). */
function textOf(html: string, id: string): string {
  const m = new RegExp(`id="${id}"[^>]*>([\\s\\S]*?)</`).exec(html);
  if (!m) throw new Error(`No #${id} in the page`);
  return decode(m[1].replace(/<[^>]+>/g, '')).trim();
}

/** The `data-figure` values inside one newsletter's card on the overview. */
function cardFigures(html: string, slug: string): Record<string, string> {
  const start = html.indexOf(`<article class="chart-card" data-newsletter="${slug}"`);
  if (start < 0) throw new Error(`No card for ${slug}`);
  const card = html.slice(start, html.indexOf('</article>', start));
  const figures: Record<string, string> = {};
  for (const m of card.matchAll(/data-figure="([a-z-]+)">([^<]*)</g)) figures[m[1]] = m[2];
  return figures;
}

describe('staff console: subscribers, suppressions and the overview', () => {
  const stack = useStack({ label: 'console_audience', queue: 'redis' });
  const adminBrowser = () => new ConsoleBrowser(stack.apps.baseUrl);
  let ada: ConsoleBrowser;
  let mark: ConsoleBrowser;
  let emptyPages: { overview: string; subscribers: string };

  const subscriberId = async (email: string): Promise<string> => {
    const [r] = await query<{ id: string }>(stack.db.url, `SELECT id FROM subscribers WHERE email = $1`, [email]);
    if (!r) throw new Error(`No subscriber ${email}`);
    return r.id;
  };
  const subscriptionStatus = async (email: string, slug: string): Promise<string | undefined> => {
    const [r] = await query<{ status: string }>(
      stack.db.url,
      `SELECT s.status FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
        JOIN newsletters n ON n.id = s.newsletter_id WHERE u.email = $1 AND n.slug = $2`,
      [email, slug],
    );
    return r?.status;
  };
  const suppressionId = async (email: string): Promise<string | undefined> => {
    const [r] = await query<{ id: string }>(stack.db.url, `SELECT id FROM suppressions WHERE email_hash = $1`, [
      emailHash(stack.apps.config.appSecret, email),
    ]);
    return r?.id;
  };

  beforeAll(async () => {
    const users = stack.apps.api.get(StaffUsersService);
    expect((await users.create({ ...ADMIN, role: 'admin' })).ok).toBe(true);
    expect((await users.create({ ...MARKETER, role: 'marketer' })).ok).toBe(true);
    ada = adminBrowser();
    expect((await ada.signIn(ADMIN.email, ADMIN.password)).status).toBe(303);
    mark = adminBrowser();
    expect((await mark.signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
    emptyPages = {
      overview: (await mark.get('/admin')).text,
      subscribers: (await mark.get('/admin/subscribers')).text,
    };

    await addAudience(stack.db.url, { prefix: 'alpha', count: 3, newsletter: 'spine-health' });
    await addAudience(stack.db.url, { prefix: 'beta', count: 2, newsletter: 'sports-health', subscription: 'pending' });
    const bounced = await addAudience(stack.db.url, {
      prefix: 'bounce',
      count: 2,
      newsletter: 'spine-health',
      subscriber: 'bounced',
    });
    for (const e of bounced) {
      await query(stack.db.url, `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, 'bounced', $2)`, [
        emailHash(stack.apps.config.appSecret, e),
        '550 5.1.1 no such user',
      ]);
    }
    // alpha1 has been active for three weeks: the growth chart rises.
    await query(
      stack.db.url,
      `UPDATE subscriptions SET confirmed_at = now() - interval '20 days', created_at = now() - interval '20 days'
        WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = 'alpha1@example.com')`,
    );
    // carol signs up from an article page: a consent record with the words of the box.
    const res = await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, {
      email: 'Carol@Example.com',
      newsletters: ['spine-health'],
      topics: ['Neck Pain'],
      source: 'https://www.spine-health.com/conditions/neck-pain',
    });
    expect(res.status).toBe(202);
    await stack.smtp.waitFor(() => stack.smtp.to('carol@example.com').length >= 1);
  });

  describe('overview', () => {
    it('says so clearly when there is no audience and no digest yet', () => {
      expect(emptyPages.overview).toContain('id="audience-empty"');
      expect(emptyPages.overview).toContain('id="activity-empty"');
      expect(emptyPages.overview).toContain('id="digests-empty"');
      expect(emptyPages.subscribers).toContain('No subscribers yet');
    });

    it('shows active subscribers per newsletter with an SVG growth chart, and the last digest figures', async () => {
      // A digest went out an hour ago to alpha1..3: two sent, one failed; alpha2 left afterwards.
      const [{ id: digestId }] = await query<{ id: string }>(
        stack.db.url,
        `INSERT INTO digests (newsletter_id, status, trigger, send_at, started_at, finished_at, recipients)
         SELECT id, 'sent', 'manual', now() - interval '1 hour', now() - interval '1 hour', now() - interval '50 minutes', 3
           FROM newsletters WHERE slug = 'spine-health' RETURNING id`,
      );
      await query(
        stack.db.url,
        `INSERT INTO deliveries (digest_id, subscriber_id, subscription_id, status, finished_at)
         SELECT $1, u.id, s.id, CASE WHEN u.email = 'alpha3@example.com' THEN 'failed' ELSE 'sent' END, now()
           FROM subscribers u JOIN subscriptions s ON s.subscriber_id = u.id WHERE u.email LIKE 'alpha%'`,
        [digestId],
      );
      await query(
        stack.db.url,
        `UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
          WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = 'alpha2@example.com')`,
      );

      const page = await mark.get('/admin');
      expect(page.status).toBe(200);
      // spine-health: alpha1, alpha3 and the two bounced addresses are active; carol is pending.
      expect(cardFigures(page.text, 'spine-health')).toEqual({
        change: '+4',
        active: '4',
        pending: '1',
        signups: '6',
        unsubscribes: '1',
        bounces: '2',
        complaints: '0',
      });
      expect(cardFigures(page.text, 'sports-health')).toMatchObject({ active: '0', pending: '2' });
      expect(textOf(page.text, 'total-active')).toBe('4');
      expect(textOf(page.text, 'total-pending')).toBe('3');
      expect(textOf(page.text, 'total-unsubscribes')).toBe('1');
      expect(textOf(page.text, 'total-bounces')).toBe('2');
      expect(textOf(page.text, 'total-complaints')).toBe('0');

      // One inline SVG chart per newsletter, with a data table for screen readers.
      expect(page.text).toMatch(/<svg class="chart" id="chart-spine-health"[^>]*role="img"/);
      expect(page.text.match(/<svg class="chart"/g)).toHaveLength(3);
      const table = page.text.slice(page.text.indexOf('id="newsletter-spine-health-data"'));
      const values = [...table.slice(0, table.indexOf('</table>')).matchAll(/<td>(\d+)<\/td>/g)].map((m) =>
        Number(m[1]),
      );
      expect(values).toEqual([0, 0, 0, 0, 0, 1, 1, 4]);

      const row = page.text.slice(page.text.indexOf(`<tr data-digest-id="${digestId}"`));
      const digest = row.slice(0, row.indexOf('</tr>'));
      expect(digest).toContain('data-figure="sent">2<');
      expect(digest).toContain('data-figure="failed">1<');
      expect(digest).toContain('data-figure="unsubscribed-after">1<');
      expect(page.text).toContain('id="weekly-activity"');
    });
  });

  describe('subscribers', () => {
    it('searches by the start of the address, case-insensitively, and treats % and _ as letters', async () => {
      expect(listedEmails((await mark.get('/admin/subscribers?q=ALPHA')).text)).toEqual([
        'alpha1@example.com',
        'alpha2@example.com',
        'alpha3@example.com',
      ]);
      expect(listedEmails((await mark.get('/admin/subscribers?q=alpha2%40')).text)).toEqual(['alpha2@example.com']);
      const none = await mark.get(`/admin/subscribers?q=${encodeURIComponent('%a')}`);
      expect(listedEmails(none.text)).toEqual([]);
      expect(none.text).toContain('id="subscribers-empty"');
      expect(none.text).toContain('No subscriber matches');
    });

    it('filters by newsletter and status, and pages through the results', async () => {
      expect(listedEmails((await mark.get('/admin/subscribers?newsletter=sports-health&status=pending')).text)).toEqual(
        ['beta1@example.com', 'beta2@example.com'],
      );
      expect(listedEmails((await mark.get('/admin/subscribers?newsletter=spine-health&status=pending')).text)).toEqual([
        'carol@example.com',
      ]);
      expect(listedEmails((await mark.get('/admin/subscribers?status=bounced')).text)).toEqual([
        'bounce1@example.com',
        'bounce2@example.com',
      ]);
      const all = await mark.get('/admin/subscribers');
      expect(listedEmails(all.text)).toHaveLength(8);
      expect(all.text).not.toContain('id="page-next"');

      const bad = await mark.get('/admin/subscribers?status=lost');
      expect(bad.status).toBe(400);
      expect(bad.text).toContain('id="search-status-error"');
    });

    it('keyset pagination continues after the last subscriber shown', async () => {
      const first = await mark.get(`/admin/subscribers?q=alpha&after=${await subscriberId('alpha1@example.com')}`);
      expect(listedEmails(first.text)).toEqual(['alpha2@example.com', 'alpha3@example.com']);
      expect(first.text).toContain('id="page-first"');
    });

    it("shows a subscriber's subscriptions, topics, consent history and mail log", async () => {
      const id = await subscriberId('carol@example.com');
      const page = await mark.get(`/admin/subscribers/${id}`);
      expect(page.status).toBe(200);
      expect(textOf(page.text, 'subscriber-email')).toBe('carol@example.com');
      expect(page.text).toMatch(/<tr data-newsletter="spine-health" data-status="pending">/);
      expect(page.text).toContain('Neck Pain');
      expect(page.text).toMatch(/id="consent-history"[\s\S]*data-action="subscribe"/);
      expect(page.text).toContain('https://www.spine-health.com/conditions/neck-pain');
      expect(page.text).toContain('Subscribe to our weekly newsletter');
      expect(page.text).toMatch(/id="mail-log"[\s\S]*data-kind="confirmation" data-status="sent"/);
      // Marketers see no privacy actions; a URL never carries the address.
      expect(page.text).not.toContain('id="erase-subscriber-link"');
      expect((await mark.get('/admin/subscribers/99999999')).status).toBe(404);
      expect((await mark.get('/admin/subscribers/carol@example.com')).status).toBe(404);
    });

    it('unsubscribes on request after a confirmation page; the consent history names who did it', async () => {
      const id = await subscriberId('alpha1@example.com');
      const confirm = await mark.get(`/admin/subscribers/${id}/unsubscribe?newsletter=spine-health`);
      expect(confirm.status).toBe(200);
      expect(confirm.text).toContain('id="confirm-unsubscribe"');
      expect(await subscriptionStatus('alpha1@example.com', 'spine-health')).toBe('active');

      // Without the CSRF token: refused, nothing changes.
      const forged = await mark.post(`/admin/subscribers/${id}/unsubscribe`, { newsletter: 'spine-health' });
      expect(forged.status).toBe(403);
      expect(await subscriptionStatus('alpha1@example.com', 'spine-health')).toBe('active');

      const done = await mark.post(`/admin/subscribers/${id}/unsubscribe`, {
        _csrf: ConsoleBrowser.csrf(confirm.text),
        newsletter: 'spine-health',
      });
      expect(done.status).toBe(303);
      expect(done.location).toBe(`/admin/subscribers/${id}?notice=unsubscribed`);
      expect(await subscriptionStatus('alpha1@example.com', 'spine-health')).toBe('unsubscribed');
      const [consent] = await query<{ action: string; user_agent: string }>(
        stack.db.url,
        `SELECT action, user_agent FROM consent_records WHERE subscriber_id = $1 ORDER BY id DESC LIMIT 1`,
        [id],
      );
      expect(consent).toEqual({ action: 'unsubscribe', user_agent: 'console: mark@example.com' });
      const page = await mark.get(done.location!);
      expect(page.text).toContain('id="subscriber-notice"');
      expect(page.text).not.toContain('id="unsubscribe-spine-health"');
    });

    it('export and erase are for admins only: a marketer gets 403', async () => {
      const id = await subscriberId('alpha3@example.com');
      const csrf = await mark.csrfToken();
      expect((await mark.get(`/admin/subscribers/${id}/export`)).status).toBe(403);
      expect((await mark.get(`/admin/subscribers/${id}/erase`)).status).toBe(403);
      const post = await mark.post(`/admin/subscribers/${id}/erase`, {
        _csrf: csrf,
        confirm_email: 'alpha3@example.com',
      });
      expect(post.status).toBe(403);
      expect(await subscriptionStatus('alpha3@example.com', 'spine-health')).toBe('active');
    });

    it('an admin downloads everything stored, then erases after typing the address', async () => {
      const id = await subscriberId('alpha3@example.com');
      const exported = await ada.get(`/admin/subscribers/${id}/export`);
      expect(exported.status).toBe(200);
      expect(exported.headers.get('content-disposition')).toBe(`attachment; filename="subscriber-${id}.json"`);
      const data = JSON.parse(exported.text) as { subscriber: { email: string }; digestDeliveries: unknown[] };
      expect(data.subscriber.email).toBe('alpha3@example.com');
      expect(data.digestDeliveries).toHaveLength(1);

      const confirm = await ada.get(`/admin/subscribers/${id}/erase`);
      expect(confirm.status).toBe(200);
      const csrf = ConsoleBrowser.csrf(confirm.text);
      const wrong = await ada.post(`/admin/subscribers/${id}/erase`, {
        _csrf: csrf,
        confirm_email: 'alpha1@example.com',
      });
      expect(wrong.status).toBe(400);
      expect(wrong.text).toContain('id="confirm-email-error"');
      expect(await subscriptionStatus('alpha3@example.com', 'spine-health')).toBe('active');

      const erased = await ada.post(`/admin/subscribers/${id}/erase`, {
        _csrf: csrf,
        confirm_email: ' Alpha3@Example.com ',
      });
      expect(erased.status).toBe(303);
      expect(erased.location).toBe('/admin/subscribers?notice=erased');
      expect(await query(stack.db.url, `SELECT 1 FROM subscribers WHERE id = $1`, [id])).toHaveLength(0);
      expect(await suppressionId('alpha3@example.com')).toBeDefined();
      expect((await ada.get(`/admin/subscribers/${id}`)).status).toBe(404);

      const list = await mark.get('/admin/suppressions');
      expect(list.text).toContain('erased address (hash only)');
      expect(list.text).not.toContain('alpha3@example.com');
    });
  });

  describe('CSV import and export', () => {
    const csv = [
      'email,name,topics,timezone,consented_at,source',
      'dora@example.com,Dora,Knee Pain|Hip,America/Chicago,2026-01-10T10:00:00Z,https://www.arthritis-health.com/',
      'eve@example.com,Eve,,,2026-02-01,',
      'not-an-address,Nobody,,,2026-02-01,',
      'bounce1@example.com,Bounced,,,2026-02-01,',
    ].join('\n');

    it('streams a file posted by the page script (text/csv + X-CSRF-Token) and reports the counts', async () => {
      const csrf = await ada.csrfToken();
      const res = await ada.request('POST', '/admin/subscribers/import?newsletter=arthritis-health', csv, {
        'content-type': 'text/csv',
        accept: 'application/json',
        'x-csrf-token': csrf,
      });
      expect(res.status).toBe(200);
      const report = JSON.parse(res.text) as Record<string, unknown>;
      expect(report).toMatchObject({ created: 2, updated: 0, skipped: 1, invalid: 1 });
      expect(report.invalidLines).toEqual([{ line: 4, reason: 'email must be a valid email address' }]);
      expect(await subscriptionStatus('dora@example.com', 'arthritis-health')).toBe('active');

      const forged = await ada.request('POST', '/admin/subscribers/import?newsletter=arthritis-health', csv, {
        'content-type': 'text/csv',
        accept: 'application/json',
      });
      expect(forged.status).toBe(403);
    });

    it('without JavaScript, pasted CSV is imported and the report is a page', async () => {
      const form = await mark.get('/admin/subscribers/import');
      expect(form.status).toBe(200);
      expect(form.text).toContain('id="import-progress"');
      const res = await mark.post('/admin/subscribers/import', {
        _csrf: ConsoleBrowser.csrf(form.text),
        newsletter: 'arthritis-health',
        csv: 'email,name,topics,timezone,consented_at,source\nfrank@example.com,Frank,,,2026-03-01,\ndora@example.com,Dora,,,2026-01-10,',
      });
      expect(res.status).toBe(200);
      expect(textOf(res.text, 'report-created')).toBe('1');
      expect(textOf(res.text, 'report-updated')).toBe('1');
      expect(textOf(res.text, 'report-invalid')).toBe('0');

      const missing = await mark.post('/admin/subscribers/import', {
        _csrf: ConsoleBrowser.csrf(form.text),
        newsletter: '',
        csv: 'email\n',
      });
      expect(missing.status).toBe(400);
      expect(missing.text).toContain('id="import-newsletter-error"');
    });

    it('exports a newsletter as CSV', async () => {
      const res = await mark.get('/admin/subscribers/export?newsletter=arthritis-health');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
      expect(res.text.split('\n')[0]).toBe('email,name,topics,timezone,status,consented_at,source');
      expect(res.text).toContain('dora@example.com');
      expect((await mark.get('/admin/subscribers/export?newsletter=nope')).status).toBe(404);
    });
  });

  describe('suppressions', () => {
    it('lists addresses with reason and date; a marketer sees no lift button and cannot lift', async () => {
      const page = await mark.get('/admin/suppressions');
      expect(page.status).toBe(200);
      expect(page.text).toMatch(/data-reason="bounced" data-email="bounce1@example.com"/);
      expect(page.text).toContain('Hard bounce');
      expect(page.text).not.toMatch(/id="lift-\d+"/);
      const id = (await suppressionId('bounce1@example.com'))!;
      expect((await mark.get(`/admin/suppressions/${id}/lift`)).status).toBe(403);
      const post = await mark.post(`/admin/suppressions/${id}/lift`, { _csrf: await mark.csrfToken() });
      expect(post.status).toBe(403);
      expect(await suppressionId('bounce1@example.com')).toBe(id);
    });

    it('an admin lifts one after confirming; no subscription comes back without a new double opt-in', async () => {
      const id = (await suppressionId('bounce1@example.com'))!;
      const list = await ada.get('/admin/suppressions');
      expect(list.text).toContain(`id="lift-${id}"`);
      const confirm = await ada.get(`/admin/suppressions/${id}/lift`);
      expect(confirm.status).toBe(200);
      expect(confirm.text).toContain('bounce1@example.com');
      expect((await ada.post(`/admin/suppressions/${id}/lift`, {})).status).toBe(403);
      const done = await ada.post(`/admin/suppressions/${id}/lift`, { _csrf: ConsoleBrowser.csrf(confirm.text) });
      expect(done.status).toBe(303);
      expect(done.location).toBe('/admin/suppressions?notice=lifted');
      expect(await suppressionId('bounce1@example.com')).toBeUndefined();
      expect(await subscriptionStatus('bounce1@example.com', 'spine-health')).toBe('unsubscribed');
      const [lifted] = await query<{ user_agent: string }>(
        stack.db.url,
        `SELECT user_agent FROM consent_records WHERE subscriber_id = $1 ORDER BY id DESC LIMIT 1`,
        [await subscriberId('bounce1@example.com')],
      );
      expect(lifted.user_agent).toBe('suppression lifted by console: ada@example.com');
      expect(
        (await ada.post(`/admin/suppressions/${id}/lift`, { _csrf: ConsoleBrowser.csrf(confirm.text) })).status,
      ).toBe(404);

      const before = stack.smtp.to('bounce1@example.com').length;
      const res = await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, {
        email: 'bounce1@example.com',
        newsletters: ['spine-health'],
      });
      expect(res.status).toBe(202);
      const mails = await stack.smtp.waitFor(() => stack.smtp.to('bounce1@example.com').length > before);
      expect(mails.length).toBeGreaterThan(0);
      const mail = stack.smtp.to('bounce1@example.com').at(-1)!;
      expect(mail.parsed.text).toMatch(/\/confirm\//);
      expect(await subscriptionStatus('bounce1@example.com', 'spine-health')).toBe('pending');
    });

    it('DELETE /v1/suppressions/:email (API key) lifts one the same way', async () => {
      expect(
        (await fetch(`${stack.apps.baseUrl}/v1/suppressions/bounce2@example.com`, { method: 'DELETE' })).status,
      ).toBe(401);
      const res = await admin(stack.apps.baseUrl, 'DELETE', '/v1/suppressions/Bounce2@Example.com');
      expect(res.status).toBe(204);
      expect(await suppressionId('bounce2@example.com')).toBeUndefined();
      expect(await subscriptionStatus('bounce2@example.com', 'spine-health')).toBe('unsubscribed');
      expect((await admin(stack.apps.baseUrl, 'DELETE', '/v1/suppressions/bounce2@example.com')).status).toBe(404);
      expect((await admin(stack.apps.baseUrl, 'DELETE', '/v1/suppressions/not-an-address')).status).toBe(400);

      const before = stack.smtp.to('bounce2@example.com').length;
      await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, {
        email: 'bounce2@example.com',
        newsletters: ['spine-health'],
      });
      await stack.smtp.waitFor(() => stack.smtp.to('bounce2@example.com').length > before);
      expect(await subscriptionStatus('bounce2@example.com', 'spine-health')).toBe('pending');
    });

    it('shows a clear empty state when nothing is suppressed', async () => {
      await query(stack.db.url, `DELETE FROM suppressions`);
      const page = await mark.get('/admin/suppressions');
      expect(page.text).toContain('id="suppressions-empty"');
    });
  });

  it('refuses every state-changing console request without the CSRF token', async () => {
    const id = await subscriberId('dora@example.com');
    expect((await ada.post(`/admin/subscribers/${id}/erase`, { confirm_email: 'dora@example.com' })).status).toBe(403);
    expect((await ada.post(`/admin/subscribers/${id}/unsubscribe`, { newsletter: 'arthritis-health' })).status).toBe(
      403,
    );
    expect(
      (await ada.post('/admin/subscribers/import', { newsletter: 'arthritis-health', csv: 'email\nx@example.com' }))
        .status,
    ).toBe(403);
    expect(await subscriptionStatus('dora@example.com', 'arthritis-health')).toBe('active');
    // Not signed in at all: to the sign-in page.
    const anon = await new ConsoleBrowser(stack.apps.baseUrl).get('/admin/subscribers');
    expect(anon.status).toBe(302);
    expect(anon.location).toBe('/admin/login?next=%2Fadmin%2Fsubscribers');
  });
});
