import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { signToken } from '#subscriptions/tokens.js';
import { addAudience } from './support/audience.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

const PRIVACY = 'https://www.veritashealth.example/privacy';
const GUIDE = 'Natural Back Pain Relief';
/** A browser's form post: it asks for HTML. */
const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' };

/** Reader pages: honest signup offers, post/redirect/get, 404 for unknown newsletters, privacy links, preferences. */
describe('reader pages', () => {
  const stack = useStack({ label: 'reader_pages', worker: false, env: { PRIVACY_URL: PRIVACY } });

  const get = (path: string) =>
    fetch(`${stack.apps.baseUrl}${path}`, { headers: { accept: 'text/html' }, redirect: 'manual' });
  const postForm = (path: string, form: [string, string][]) =>
    fetch(`${stack.apps.baseUrl}${path}`, {
      method: 'POST',
      headers: FORM,
      body: new URLSearchParams(form).toString(),
      redirect: 'manual',
    });
  const statusOf = async (email: string) =>
    (
      await query<{ status: string }>(
        stack.db.url,
        `SELECT s.status FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email = $1`,
        [email],
      )
    ).map((r) => r.status);

  describe('a signup page offers only what its newsletter sends', () => {
    it.each(['arthritis-health', 'sports-health'])(
      '%s (no guide): no guide on the page or in the snippet',
      async (slug) => {
        const page = await (await get(`/subscribe?newsletter=${slug}`)).text();
        expect(page).not.toContain(GUIDE);
        expect(page).not.toContain('FREE');
        const embed = await (await get(`/subscribe/embed?newsletter=${slug}`)).text();
        expect(embed).not.toContain(GUIDE);
        expect(embed).not.toContain('free guide');
      },
    );

    it('spine-health still offers its own guide', async () => {
      const page = await (await get('/subscribe?newsletter=spine-health')).text();
      expect(page).toContain('Subscribe and get our FREE Guide:');
      expect(page).toContain(GUIDE);
      expect(await (await get('/subscribe/embed?newsletter=spine-health')).text()).toContain(GUIDE);
    });
  });

  describe('signup form', () => {
    it("answers a browser's form post with a 303 to the check-inbox page; scripts and JSON get 202 pending", async () => {
      const res = await postForm('/v1/subscriptions', [
        ['email', 'form.reader@example.com'],
        ['newsletters', 'sports-health'],
      ]);
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe('/subscribe/check-inbox?newsletter=sports-health');
      expect(await statusOf('form.reader@example.com')).toEqual(['pending']);
      const landing = await get(res.headers.get('location')!);
      expect(landing.status).toBe(200);
      const html = await landing.text();
      expect(html).toContain('<h1>Check your inbox</h1>');
      expect(html).toContain('<span class="brand-name">Sports-health</span>');

      // No newsletter named: the default's page.
      const plain = await postForm('/v1/subscriptions', [['email', 'form.default@example.com']]);
      expect([plain.status, plain.headers.get('location')]).toEqual([303, '/subscribe/check-inbox']);
      expect(await (await get('/subscribe/check-inbox')).text()).toContain(
        '<span class="brand-name">Spine-health</span>',
      );

      // A form post from a client that does not ask for HTML (a script) gets the contract's answer.
      const script = await fetch(`${stack.apps.baseUrl}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams([['email', 'form.script@example.com']]).toString(),
        redirect: 'manual',
      });
      expect(script.status).toBe(202);
      expect(await script.json()).toEqual({ status: 'pending' });
      expect(await statusOf('form.script@example.com')).toEqual(['pending']);

      const json = await fetch(`${stack.apps.baseUrl}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'json.reader@example.com' }),
      });
      expect(json.status).toBe(202);
      expect(await json.json()).toEqual({ status: 'pending' });
    });

    it("fills the reader's time zone from the browser: a hidden field whose script the page's CSP allows by hash", async () => {
      for (const path of ['/subscribe?newsletter=sports-health', '/subscribe/embed?newsletter=sports-health']) {
        const res = await get(path);
        const html = await res.text();
        // The one inline script (the embed page's copy is its preview; the textarea shows it escaped).
        const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
        expect([path, scripts.length]).toEqual([path, 1]);
        const [whole, attrs, body] = scripts[0];
        expect([path, attrs]).toEqual([path, '']);
        expect(html).toContain(`<input type="hidden" name="timezone" disabled>${whole}`);
        expect(body).toContain('Intl.DateTimeFormat().resolvedOptions().timeZone');
        const hash = createHash('sha256').update(body, 'utf8').digest('base64');
        const directives = (res.headers.get('content-security-policy') ?? '').split(';').map((d) => d.trim());
        expect([path, directives.filter((d) => d.startsWith('script-src'))]).toEqual([
          path,
          [`script-src 'sha256-${hash}'`],
        ]);
        expect(directives).toContain("default-src 'none'");
      }
      // A page without the field allows no script.
      const landing = await get('/subscribe/check-inbox');
      expect(landing.headers.get('content-security-policy')).not.toContain('script-src');
    });

    it('stores the timezone a form posts on the subscriber; without script (no field) it stays unknown', async () => {
      const filled = await postForm('/v1/subscriptions', [
        ['email', 'tz.berlin@example.com'],
        ['newsletters', 'sports-health'],
        ['timezone', 'Europe/Berlin'],
      ]);
      expect([filled.status, filled.headers.get('location')]).toEqual([
        303,
        '/subscribe/check-inbox?newsletter=sports-health',
      ]);
      const noScript = await postForm('/v1/subscriptions', [
        ['email', 'tz.noscript@example.com'],
        ['newsletters', 'sports-health'],
      ]);
      expect(noScript.status).toBe(303);
      const rows = await query<{ email: string; timezone: string | null }>(
        stack.db.url,
        `SELECT email, timezone FROM subscribers WHERE email = ANY($1) ORDER BY email`,
        [['tz.berlin@example.com', 'tz.noscript@example.com']],
      );
      expect(rows).toEqual([
        { email: 'tz.berlin@example.com', timezone: 'Europe/Berlin' },
        { email: 'tz.noscript@example.com', timezone: null },
      ]);
      expect(await statusOf('tz.berlin@example.com')).toEqual(['pending']);
    });

    it('a bad form still gets the 400 page', async () => {
      const res = await postForm('/v1/subscriptions', [['email', 'not an address']]);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await res.text()).toContain('Please check the form');
    });

    it('an unknown ?newsletter= is a 404 page saying so, not another newsletter', async () => {
      for (const path of ['/subscribe?newsletter=nope', '/subscribe/embed?newsletter=nope']) {
        const res = await get(path);
        expect([path, res.status]).toEqual([path, 404]);
        const html = await res.text();
        expect(html).toContain('<h1>This newsletter does not exist</h1>');
        expect(html).not.toContain('name="email"');
        expect(html).toMatch(/\?newsletter(=|&#x3D;)spine-health">Spine-health<\/a>/);
      }
      expect((await get('/subscribe')).status).toBe(200);
    });

    it('links the privacy policy by the form and on every reader page', async () => {
      const signup = await (await get('/subscribe')).text();
      expect(signup).toContain(`Read our <a href="${PRIVACY}">privacy policy</a>.`);
      const embed = await (await get('/subscribe/embed')).text();
      expect(embed).toContain('Privacy policy</a>.');
      for (const path of ['/subscribe', '/subscribe/embed', '/subscribe/check-inbox', `/confirm/${'x'.repeat(43)}`]) {
        expect([path, await (await get(path)).text()]).toEqual([
          path,
          expect.stringContaining(`<a href="${PRIVACY}" id="privacy-link">Privacy policy</a>`),
        ]);
      }
    });
  });

  describe('preference centre', () => {
    let token: string;
    const email = 'topics1@example.com';

    beforeAll(async () => {
      await addAudience(stack.db.url, { prefix: 'topics', count: 1, newsletter: 'spine-health' });
      const [sub] = await query<{ id: string }>(
        stack.db.url,
        `SELECT s.id::text FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
          JOIN newsletters n ON n.id = s.newsletter_id WHERE u.email = $1 AND n.slug = 'spine-health'`,
        [email],
      );
      token = signToken(stack.apps.config.appSecret, 'unsubscribe', sub.id);
    });

    it('opens with nothing destructive selected: a topics form and a separate unsubscribe form', async () => {
      const html = await (await get(`/unsubscribe/${token}`)).text();
      expect(html).not.toMatch(/type="radio"/);
      expect(html).not.toMatch(/value="unsubscribe"[^>]*checked/);
      expect(html).toMatch(
        /<form [^>]*id="topics-form"[\s\S]*name="action" value="topics"[\s\S]*id="save-topics">Save topics<\/button>/,
      );
      expect(html).toMatch(
        /<form [^>]*id="unsubscribe-form"[\s\S]*value="unsubscribe"[^>]*id="unsubscribe-one">Unsubscribe from Spine-health<\/button>/,
      );
      // The topics form comes first; with ?action=unsubscribe (the mail's "Unsubscribe" link) the other way round.
      expect(html.indexOf('id="topics-form"')).toBeLessThan(html.indexOf('id="unsubscribe-form"'));
      const leaving = await (await get(`/unsubscribe/${token}?action=unsubscribe`)).text();
      expect(leaving).toContain('<h1>Unsubscribe from Spine-health?</h1>');
      expect(leaving.indexOf('id="unsubscribe-form"')).toBeLessThan(leaving.indexOf('id="topics-form"'));
    });

    it('saving topics keeps the subscription (even a form with topics and no action)', async () => {
      const saved = await postForm(`/unsubscribe/${token}`, [
        ['action', 'topics'],
        ['topics', 'Sciatica'],
      ]);
      expect(saved.status).toBe(200);
      expect(await saved.text()).toContain('Preferences saved');
      const noAction = await postForm(`/unsubscribe/${token}`, [['topics', 'Neck Pain']]);
      expect(await noAction.text()).toContain('Preferences saved');
      const [row] = await query<{ status: string; topics: string[] }>(
        stack.db.url,
        `SELECT s.status, s.topics FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
          JOIN newsletters n ON n.id = s.newsletter_id WHERE u.email = $1 AND n.slug = 'spine-health'`,
        [email],
      );
      expect(row).toEqual({ status: 'active', topics: ['Neck Pain'] });
    });

    it('the unsubscribe button unsubscribes; RFC 8058 one-click is unchanged', async () => {
      const gone = await postForm(`/unsubscribe/${token}`, [['action', 'unsubscribe']]);
      expect(gone.status).toBe(200);
      expect(await gone.text()).toContain('You have been unsubscribed');
      expect(await statusOf(email)).toContain('unsubscribed');
      const oneClick = await fetch(`${stack.apps.baseUrl}/unsubscribe/${token}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      expect(oneClick.status).toBe(200);
    });
  });
});
