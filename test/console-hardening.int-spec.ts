import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { ADMIN_KEY } from './support/apps.js';
import { ConsoleBrowser, type Page } from './support/console.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

const ADMIN = { email: 'ada@example.com', password: 'correct horse battery staple' };
const MARKETER = { email: 'mark@example.com', password: 'marketing-password-1' };
const LOGIN_CSRF_COOKIE = 'mailroom_login_csrf';

/** The directives of a Content-Security-Policy header, by name. */
function csp(page: { headers: Headers }): Map<string, string[]> {
  const header = page.headers.get('content-security-policy') ?? '';
  const out = new Map<string, string[]>();
  for (const part of header.split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) out.set(name, values);
  }
  return out;
}

/** What every /admin answer must carry, whatever its status. */
function expectConsoleHeaders(page: Page, label: string): void {
  const policy = csp(page);
  expect([label, policy.get('default-src')]).toEqual([label, ["'none'"]]);
  expect([label, policy.get('frame-ancestors')]).toEqual([label, ["'none'"]]);
  expect([label, policy.get('base-uri')]).toEqual([label, ["'none'"]]);
  expect([label, policy.get('form-action')]).toEqual([label, ["'self'"]]);
  const scripts = policy.get('script-src') ?? [];
  expect([label, scripts.filter((s) => !/^'sha256-[A-Za-z0-9+/=]+'$/.test(s))]).toEqual([label, []]);
  expect([label, page.headers.get('x-content-type-options')]).toEqual([label, 'nosniff']);
  expect([label, page.headers.get('x-frame-options')]).toEqual([label, 'DENY']);
  expect([label, page.headers.get('referrer-policy')]).toEqual([label, 'same-origin']);
}

/** Each inline <script> of a page, as the CSP hash source that allows it. */
function scriptHashes(html: string): string[] {
  return [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)].map(([, attrs, body]) => {
    expect(attrs.trim()).toBe('');
    return `'sha256-${createHash('sha256').update(body, 'utf8').digest('base64')}'`;
  });
}

function bearer(key: string, ip: string): RequestInit {
  return { headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': ip } };
}

describe('console hardening: security headers, sign-in CSRF, next, API key throttle', () => {
  const stack = useStack({ label: 'console_hardening', worker: false, env: { TRUST_PROXY: 'true' } });

  beforeAll(async () => {
    const users = stack.apps.api.get(StaffUsersService);
    expect((await users.create({ ...ADMIN, role: 'admin' })).ok).toBe(true);
    expect((await users.create({ ...MARKETER, role: 'marketer' })).ok).toBe(true);
  });

  describe('security headers on every /admin answer', () => {
    it('sends a strict CSP, nosniff, DENY framing and a referrer policy on pages, errors, redirects and JSON', async () => {
      const anon = new ConsoleBrowser(stack.apps.baseUrl);
      const login = await anon.get('/admin/login');
      expect(login.status).toBe(200);
      expectConsoleHeaders(login, 'sign-in page');
      const redirect = await anon.get('/admin/users');
      expect(redirect.status).toBe(302);
      expectConsoleHeaders(redirect, 'redirect to sign-in');
      const json = await anon.get('/admin', { accept: 'application/json' });
      expect(json.status).toBe(401);
      expectConsoleHeaders(json, '401 JSON');
      const forged = await anon.post('/admin/login', { email: ADMIN.email, password: ADMIN.password });
      expect(forged.status).toBe(403);
      expectConsoleHeaders(forged, 'refused sign-in');

      const mark = new ConsoleBrowser(stack.apps.baseUrl);
      expect((await mark.signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
      const home = await mark.get('/admin');
      expect(home.status).toBe(200);
      expectConsoleHeaders(home, 'overview');
      const forbidden = await mark.get('/admin/users');
      expect(forbidden.status).toBe(403);
      expectConsoleHeaders(forbidden, '403 page');
      const missing = await mark.get('/admin/subscribers/999999');
      expect(missing.status).toBe(404);
      expectConsoleHeaders(missing, '404 page');
      // A path no route matches gets the app-wide error page, with the reader pages' (script-free) policy.
      const unknown = await mark.get('/admin/no/such/page');
      expect(unknown.status).toBe(404);
      expect(csp(unknown).get('default-src')).toEqual(["'none'"]);
      expect(csp(unknown).get('frame-ancestors')).toEqual(["'none'"]);
      expect(csp(unknown).has('script-src')).toBe(false);
      expect(unknown.headers.get('x-content-type-options')).toBe('nosniff');
      expect(unknown.headers.get('referrer-policy')).toBe('same-origin');
      const noCsrf = await mark.post('/admin/logout', {});
      expect(noCsrf.status).toBe(403);
      expectConsoleHeaders(noCsrf, 'CSRF refusal');
      const out = await mark.post('/admin/logout', { _csrf: ConsoleBrowser.csrf(home.text) });
      expect(out.status).toBe(303);
      expectConsoleHeaders(out, 'sign-out redirect');
    });

    it("allows each of the console's inline scripts by its hash, and nothing else", async () => {
      const a = new ConsoleBrowser(stack.apps.baseUrl);
      expect((await a.signIn(ADMIN.email, ADMIN.password)).status).toBe(303);
      const served = new Set<string>();
      for (const path of ['/admin', '/admin/subscribers/import', '/admin/digests/new?newsletter=spine-health']) {
        const page = await a.get(path);
        expect([path, page.status]).toEqual([path, 200]);
        expectConsoleHeaders(page, path);
        const allowed = csp(page).get('script-src') ?? [];
        for (const h of scriptHashes(page.text)) {
          expect([path, allowed]).toEqual([path, expect.arrayContaining([h])]);
          served.add(h);
        }
        // No inline handlers (CSP blocks them) and no javascript: URLs.
        expect([path, /\son[a-z]+\s*=|javascript:/i.test(page.text)]).toEqual([path, false]);
      }
      expect(served.size).toBeGreaterThanOrEqual(2);
    });

    it('lets the digest preview be framed by the console only, and gives the queue board a CSP that keeps its own scripts', async () => {
      const a = new ConsoleBrowser(stack.apps.baseUrl);
      await a.signIn(ADMIN.email, ADMIN.password);
      const [article] = await query<{ id: string }>(
        stack.db.url,
        `SELECT a.id::text AS id FROM articles a JOIN article_newsletters an ON an.article_id = a.id
          JOIN newsletters n ON n.id = an.newsletter_id WHERE n.slug = 'spine-health' ORDER BY a.id LIMIT 1`,
      );
      const preview = await a.get(`/admin/digests/preview?newsletter=spine-health&articles=${article?.id ?? ''}`);
      expect(preview.status).toBe(200);
      expect(csp(preview).get('frame-ancestors')).toEqual(["'self'"]);
      expect(preview.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(preview.headers.get('x-content-type-options')).toBe('nosniff');

      const board = await a.get('/admin/queues');
      expect(board.status).toBe(200);
      expect(board.text).toContain('Mailroom queues');
      const policy = csp(board);
      expect(policy.get('frame-ancestors')).toEqual(["'none'"]);
      expect(policy.get('object-src')).toEqual(["'none'"]);
      // Its bundles, styles and fonts load as before: no default-src or script-src to block them.
      expect(policy.has('default-src')).toBe(false);
      expect(policy.has('script-src')).toBe(false);
      expect(board.headers.get('x-content-type-options')).toBe('nosniff');
      expect(board.headers.get('x-frame-options')).toBe('DENY');
      const api = await a.get('/admin/queues/api/queues?activeQueue=mail&page=1', { accept: 'application/json' });
      expect(api.status).toBe(200);
      expect(api.headers.get('x-content-type-options')).toBe('nosniff');
      const anonApi = await new ConsoleBrowser(stack.apps.baseUrl).get('/admin/queues/api/queues', {
        accept: 'application/json',
      });
      expect(anonApi.status).toBe(401);
      expect(csp(anonApi).get('frame-ancestors')).toEqual(["'none'"]);
    });

    it('leaves reader pages and the API to their own headers', async () => {
      const res = await fetch(`${stack.apps.baseUrl}/v1/newsletters`, bearer(ADMIN_KEY, '198.51.100.200'));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-security-policy')).toBeNull();
    });
  });

  describe('sign-in CSRF token bound to its cookie', () => {
    it('refuses a cookie/field pair chosen by someone else (a cookie set from a sibling subdomain)', async () => {
      const b = new ConsoleBrowser(stack.apps.baseUrl);
      const chosen = 'A'.repeat(43);
      b.cookies.set(LOGIN_CSRF_COOKIE, chosen);
      const res = await b.post('/admin/login', { _csrf: chosen, email: ADMIN.email, password: ADMIN.password });
      expect(res.status).toBe(403);
      expect(b.session).toBeUndefined();
    });

    it('refuses the token of one sign-in page with the cookie of another', async () => {
      const one = new ConsoleBrowser(stack.apps.baseUrl);
      const other = new ConsoleBrowser(stack.apps.baseUrl);
      const token = ConsoleBrowser.csrf((await one.get('/admin/login')).text);
      await other.get('/admin/login');
      expect(token).not.toBe(one.cookies.get(LOGIN_CSRF_COOKIE));
      const res = await other.post('/admin/login', { _csrf: token, email: ADMIN.email, password: ADMIN.password });
      expect(res.status).toBe(403);
      expect(other.session).toBeUndefined();
    });

    it('refuses a real pair posted from another origin, even a sibling subdomain; accepts this origin', async () => {
      const foreign: Record<string, string>[] = [
        { origin: 'http://evil.mailroom.test' },
        { origin: 'null' },
        { 'sec-fetch-site': 'same-site' },
        { 'sec-fetch-site': 'cross-site', origin: stack.apps.baseUrl },
      ];
      for (const headers of foreign) {
        const b = new ConsoleBrowser(stack.apps.baseUrl);
        const token = ConsoleBrowser.csrf((await b.get('/admin/login')).text);
        const res = await b.post('/admin/login', { _csrf: token, ...ADMIN }, headers);
        expect([headers, res.status]).toEqual([headers, 403]);
        expect(b.session).toBeUndefined();
      }
      const own: Record<string, string>[] = [
        { origin: stack.apps.baseUrl, 'sec-fetch-site': 'same-origin' },
        { origin: 'http://mailroom.test' },
      ];
      for (const headers of own) {
        const b = new ConsoleBrowser(stack.apps.baseUrl);
        const token = ConsoleBrowser.csrf((await b.get('/admin/login')).text);
        const res = await b.post('/admin/login', { _csrf: token, ...ADMIN }, headers);
        expect([headers, res.status]).toEqual([headers, 303]);
        expect(b.session).toBeDefined();
      }
    });
  });

  describe('next after sign-in', () => {
    it.each([
      ['/admin/../..//evil.example', '/admin'],
      ['/admin/..//evil.example/x', '/admin'],
      ['/admin/%2e%2e/%2e%2e//evil.example', '/admin'],
      ['/admin/..%2f..%2fevil.example', '/admin'],
      ['/admin/..%5Cevil.example', '/admin'],
      ['/admin\\..\\evil.example', '/admin'],
      ['/admin/../docs', '/admin'],
      ['/admin/x/../users?y=1', '/admin/users?y=1'],
    ])('follows next=%p to %p', async (next, location) => {
      const b = new ConsoleBrowser(stack.apps.baseUrl);
      const token = ConsoleBrowser.csrf((await b.get('/admin/login')).text);
      const res = await b.post('/admin/login', { _csrf: token, ...ADMIN, next });
      expect(res.status).toBe(303);
      expect(res.location).toBe(location);
      // Already signed in: the sign-in page sends the browser on at once, by the same rule.
      const again = await b.get(`/admin/login?next=${encodeURIComponent(next)}`);
      expect(again.status).toBe(302);
      expect(again.location).toBe(location);
    });
  });

  describe('admin API keys: failures throttled per client IP', () => {
    const v1 = (path: string) => `${stack.apps.baseUrl}/v1${path}`;

    it('answers 429 after 20 wrong keys from one IP, refuses that IP even its right key, and spares other IPs', async () => {
      const ip = '203.0.113.7';
      for (let i = 0; i < 20; i += 1) {
        expect((await fetch(v1('/newsletters'), bearer(`wrong-key-${i}`, ip))).status).toBe(401);
      }
      const limited = await fetch(v1('/newsletters'), bearer('wrong-key-20', ip));
      expect(limited.status).toBe(429);
      const body = (await limited.json()) as { message: string };
      expect(body.message).toBe('Too many failed API key attempts: wait 15 minutes and try again');
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(14 * 60);
      expect(retryAfter).toBeLessThanOrEqual(15 * 60);
      expect((await fetch(v1('/newsletters'), bearer(ADMIN_KEY, ip))).status).toBe(429);
      expect((await fetch(v1('/newsletters'), bearer(ADMIN_KEY, '203.0.113.8'))).status).toBe(200);
      expect((await fetch(v1('/newsletters'), bearer('wrong-key', '203.0.113.8'))).status).toBe(401);

      // The count is in PostgreSQL: another api process refuses the same IP's next wrong key.
      const second = await stack.startApps({ config: stack.config, worker: false });
      try {
        const res = await fetch(`${second.baseUrl}/v1/newsletters`, bearer('wrong-key-21', ip));
        expect(res.status).toBe(429);
        expect(((await res.json()) as { message: string }).message).toMatch(/^Too many failed API key attempts/);
        expect((await fetch(`${second.baseUrl}/v1/newsletters`, bearer(ADMIN_KEY, '203.0.113.9'))).status).toBe(200);
      } finally {
        await second.close();
      }

      // API key failures are not sign-in failures: that IP may still sign in to the console.
      const b = new ConsoleBrowser(stack.apps.baseUrl, { 'x-forwarded-for': ip });
      expect((await b.signIn(ADMIN.email, ADMIN.password)).status).toBe(303);
    });

    it('counts only failures: right keys and requests without a key do not add up', async () => {
      const ip = '203.0.113.20';
      for (let i = 0; i < 25; i += 1) {
        expect((await fetch(v1('/newsletters'), bearer(ADMIN_KEY, ip))).status).toBe(200);
        expect((await fetch(v1('/newsletters'), { headers: { 'x-forwarded-for': ip } })).status).toBe(401);
      }
      expect((await fetch(v1('/newsletters'), bearer('wrong-key', ip))).status).toBe(401);
      const [row] = await query<{ n: number }>(
        stack.db.url,
        `SELECT count(*)::int AS n FROM staff_login_failures WHERE ip = $1::inet`,
        [ip],
      );
      expect(row.n).toBe(1);
    });

    it('guards the generic bounce webhook the same way', async () => {
      const ip = '203.0.113.30';
      const post = (key: string) =>
        fetch(v1('/webhooks/generic'), {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': ip, 'content-type': 'application/json' },
          body: JSON.stringify({ events: [] }),
        });
      for (let i = 0; i < 20; i += 1) expect((await post(`wrong-${i}`)).status).toBe(401);
      expect((await post('wrong-20')).status).toBe(429);
      // One count per IP across the admin API: the articles route refuses it too.
      expect((await fetch(v1('/newsletters'), bearer('wrong-21', ip))).status).toBe(429);
    });

    it('guards GET /metrics the same way: wrong tokens and keys count, the shared limit applies', async () => {
      const ip = '203.0.113.40';
      const metrics = (key: string) => fetch(`${stack.apps.baseUrl}/metrics`, bearer(key, ip));
      expect((await metrics(ADMIN_KEY)).status).toBe(200);
      for (let i = 0; i < 20; i += 1) expect((await metrics(`wrong-${i}`)).status).toBe(401);
      const limited = await metrics('wrong-20');
      expect(limited.status).toBe(429);
      expect(((await limited.json()) as { message: string }).message).toMatch(/^Too many failed API key attempts/);
      expect((await fetch(v1('/newsletters'), bearer(ADMIN_KEY, ip))).status).toBe(429);
    });
  });
});
