import 'reflect-metadata';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { sessionTokenHash } from '#staff/staff-sessions.service.js';
import { runUserCommand, type CliIo } from '../scripts/cli-users.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { createTestDatabase, query } from './support/db.js';
import { useStack } from './support/stack.js';

const ADMIN = { email: 'Ada.Admin@Example.com', password: 'correct horse battery staple' };
const MARKETER = { email: 'mark@example.com', password: 'marketing-password-1' };
const BAD_CREDENTIALS = 'Email or password is incorrect';

function cliIo(env: Record<string, string> = {}): CliIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { env, lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l) };
}

function cookieHeader(page: { setCookies: string[] }, name: string): string {
  const c = page.setCookies.find((s) => s.startsWith(`${name}=`));
  if (!c) throw new Error(`No ${name} cookie in ${JSON.stringify(page.setCookies)}`);
  return c;
}

describe('staff console: accounts, sign-in, sessions, CSRF, roles, queue board', () => {
  const stack = useStack({
    label: 'console',
    queue: 'redis',
    worker: false,
    // Per-IP limit tested with X-Forwarded-For; every other request comes from 127.0.0.1.
    env: { TRUST_PROXY: 'true', CONSOLE_LOGIN_FAILURES_PER_IP: '8' },
    prepare: async () => {
      await addAudience(stack.db.url, { prefix: 'on', count: 3, newsletter: 'spine-health' });
      await addAudience(stack.db.url, {
        prefix: 'wait',
        count: 2,
        newsletter: 'sports-health',
        subscription: 'pending',
      });
    },
  });
  let users: StaffUsersService;

  beforeAll(async () => {
    users = stack.apps.api.get(StaffUsersService);
    const marketer = await users.create({ ...MARKETER, role: 'marketer' });
    expect(marketer.ok).toBe(true);
  });

  describe('npm run cli -- user:create / user:password', () => {
    it('creates the first admin with the password from MAILROOM_USER_PASSWORD, stored as an argon2id hash', async () => {
      const io = cliIo({ MAILROOM_USER_PASSWORD: ADMIN.password });
      const code = await runUserCommand('user:create', ['--email', ADMIN.email, '--role', 'admin'], users, io);
      expect({ code, errors: io.errors }).toEqual({ code: 0, errors: [] });
      expect(io.lines.join('\n')).toMatch(/Created admin ada\.admin@example\.com/);
      const [row] = await query<{ email: string; password_hash: string; role: string }>(
        stack.db.url,
        `SELECT email, password_hash, role FROM staff_users WHERE email = 'ada.admin@example.com'`,
      );
      expect(row.role).toBe('admin');
      expect(row.password_hash).toMatch(/^\$argon2id\$/);
      expect(row.password_hash).not.toContain(ADMIN.password);
    });

    it('refuses short passwords, duplicates, unknown roles and missing arguments', async () => {
      let io = cliIo();
      expect(
        await runUserCommand(
          'user:create',
          ['--email', 'x@example.com', '--role', 'admin', '--password', 'short'],
          users,
          io,
        ),
      ).toBe(65);
      expect(io.errors.join()).toMatch(/at least 12 characters/);
      io = cliIo({ MAILROOM_USER_PASSWORD: 'long enough password' });
      expect(
        await runUserCommand('user:create', ['--email', 'ADA.ADMIN@example.com', '--role', 'admin'], users, io),
      ).toBe(65);
      expect(io.errors.join()).toMatch(/already exists/);
      io = cliIo({ MAILROOM_USER_PASSWORD: 'long enough password' });
      expect(await runUserCommand('user:create', ['--email', 'y@example.com', '--role', 'owner'], users, io)).toBe(65);
      expect(io.errors.join()).toMatch(/Role must be admin or marketer/);
      io = cliIo();
      expect(await runUserCommand('user:create', ['--email', 'y@example.com'], users, io)).toBe(64);
      // No password anywhere and no terminal to ask on.
      io = cliIo();
      expect(await runUserCommand('user:create', ['--email', 'y@example.com', '--role', 'admin'], users, io)).toBe(64);
      expect(io.errors.join()).toMatch(/MAILROOM_USER_PASSWORD/);
      io = cliIo({ MAILROOM_USER_PASSWORD: 'long enough password' });
      expect(await runUserCommand('user:password', ['--email', 'nobody@example.com'], users, io)).toBe(67);
      const prompted = { ...cliIo(), promptHidden: async () => 'typed at the prompt' };
      expect(
        await runUserCommand('user:create', ['--email', 'typed@example.com', '--role', 'marketer'], users, prompted),
      ).toBe(0);
      expect(await users.verify('typed@example.com', 'typed at the prompt')).not.toBeNull();
    });
  });

  describe('sign-in', () => {
    it('sets an HttpOnly, SameSite=Strict session cookie on /admin, storing only its hash', async () => {
      const b = new ConsoleBrowser(stack.apps.baseUrl);
      const res = await b.signIn(ADMIN.email, ADMIN.password);
      expect(res.status).toBe(303);
      expect(res.location).toBe('/admin');
      const cookie = cookieHeader(res, 'mailroom_session');
      expect(cookie).toMatch(/; HttpOnly/);
      expect(cookie).toMatch(/; SameSite=Strict/);
      expect(cookie).toMatch(/; Path=\/admin(;|$)/);
      expect(cookie).toMatch(/; Max-Age=604800/);
      // PUBLIC_URL is http here: no Secure, or no browser would keep it (see the https case below).
      expect(cookie).not.toMatch(/; Secure/);
      const token = b.session!;
      const stored = await query<{ token_hash: Buffer }>(stack.db.url, `SELECT token_hash FROM staff_sessions`);
      expect(stored.some((r) => r.token_hash.equals(sessionTokenHash(token)))).toBe(true);
      expect(JSON.stringify(await query(stack.db.url, `SELECT * FROM staff_sessions`))).not.toContain(token);

      const home = await b.get('/admin');
      expect(home.status).toBe(200);
      expect(home.text).toContain('id="signed-in-as">ada.admin@example.com<');
      expect(home.text).toMatch(/data-newsletter="spine-health"[\s\S]*?data-figure="active">3</);
      expect(home.text).toMatch(/data-newsletter="sports-health"[\s\S]*?data-figure="pending">2</);
      expect(home.text).toContain('id="nav-users"');
      expect((await b.get('/admin/')).location).toBe('/admin');
      const missing = await b.get('/admin/nope');
      expect(missing.status).toBe(404);
      expect(missing.text).toContain('id="signed-in-as"');
      // A built section's own route takes precedence over the `/admin/:section` placeholder.
      const built = await b.get('/admin/newsletters');
      expect(built.status).toBe(200);
      expect(built.text).toContain('id="newsletters-table"');
    });

    it('refuses a wrong password and an unknown address with the same message', async () => {
      const b = new ConsoleBrowser(stack.apps.baseUrl);
      const wrong = await b.signIn(ADMIN.email, 'not the password at all');
      const unknown = await b.signIn('nobody@example.com', 'not the password at all');
      for (const res of [wrong, unknown]) {
        expect(res.status).toBe(401);
        expect(res.text).toContain(BAD_CREDENTIALS);
        expect(res.setCookies.some((c) => c.startsWith('mailroom_session='))).toBe(false);
      }
      expect(b.session).toBeUndefined();
      // The refused address stays in the field; the password does not.
      expect(wrong.text).toContain(`value="${ADMIN.email}"`);
    });

    it('pauses an address after 5 failures: the 6th attempt, even with the right password, gets 429', async () => {
      const created = await users.create({
        email: 'locked@example.com',
        role: 'marketer',
        password: 'the right password',
      });
      expect(created.ok).toBe(true);
      const b = new ConsoleBrowser(stack.apps.baseUrl);
      for (let i = 0; i < 5; i += 1)
        expect((await b.signIn('locked@example.com', `wrong password ${i}`)).status).toBe(401);
      const sixth = await b.signIn('LOCKED@example.com', 'wrong password 6');
      expect(sixth.status).toBe(429);
      expect(sixth.text).toMatch(/Too many failed sign-in attempts/);
      expect(Number(sixth.headers.get('retry-after'))).toBeGreaterThan(800);
      expect((await b.signIn('locked@example.com', 'the right password')).status).toBe(429);
      // A new password set by an admin lifts the pause for that address.
      expect((await users.changePassword(created.ok ? created.user.id : 0, 'a brand new password')).ok).toBe(true);
      expect((await b.signIn('locked@example.com', 'a brand new password')).status).toBe(303);
    });

    it('pauses a client IP after its failures, whatever address it tries', async () => {
      const b = new ConsoleBrowser(stack.apps.baseUrl, { 'x-forwarded-for': '203.0.113.9' });
      for (let i = 0; i < 8; i += 1)
        expect((await b.signIn(`guess${i}@example.com`, 'wrong password!')).status).toBe(401);
      expect((await b.signIn(MARKETER.email, MARKETER.password)).status).toBe(429);
      // Another client is not affected.
      expect((await new ConsoleBrowser(stack.apps.baseUrl).signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
    });

    it('refuses a sign-in form that did not come from the sign-in page (403)', async () => {
      const b = new ConsoleBrowser(stack.apps.baseUrl);
      const res = await b.post('/admin/login', { email: ADMIN.email, password: ADMIN.password });
      expect(res.status).toBe(403);
      expect(b.session).toBeUndefined();
    });

    it('sends browsers to the sign-in page with a local next, and XHR clients a 401', async () => {
      const anon = new ConsoleBrowser(stack.apps.baseUrl);
      const page = await anon.get('/admin/users?x=1');
      expect(page.status).toBe(302);
      expect(page.location).toBe('/admin/login?next=%2Fadmin%2Fusers%3Fx%3D1');
      const xhr = await anon.get('/admin', { accept: 'application/json' });
      expect(xhr.status).toBe(401);
      expect(JSON.parse(xhr.text)).toMatchObject({ statusCode: 401 });

      const b = new ConsoleBrowser(stack.apps.baseUrl);
      expect((await b.signIn(ADMIN.email, ADMIN.password, '/admin/users?x=1')).location).toBe('/admin/users?x=1');
      for (const evil of ['https://evil.example/admin', '//evil.example/admin', '/\\evil.example', '/docs']) {
        const c = new ConsoleBrowser(stack.apps.baseUrl);
        const login = await c.get('/admin/login');
        const res = await c.post('/admin/login', {
          _csrf: ConsoleBrowser.csrf(login.text),
          email: ADMIN.email,
          password: ADMIN.password,
          next: evil,
        });
        expect([evil, res.location]).toEqual([evil, '/admin']);
      }
    });

    it('marks the cookie Secure when PUBLIC_URL is https, and shows the queues on the PostgreSQL backend', async () => {
      const pgDb = await createTestDatabase('console_pg');
      const https = await stack.startApps({
        config: stack.testConfig({ dbUrl: pgDb.url, queue: 'postgres', env: { PUBLIC_URL: 'https://mail.example' } }),
        worker: false,
      });
      try {
        await https.api.get(StaffUsersService).create({ ...ADMIN, role: 'admin' });
        const b = new ConsoleBrowser(https.baseUrl);
        const res = await b.signIn(ADMIN.email, ADMIN.password);
        expect(res.status).toBe(303);
        expect(cookieHeader(res, 'mailroom_session')).toMatch(/; Secure/);
        const board = await b.get('/admin/queues');
        expect(board.status).toBe(200);
        const api = await b.get('/admin/queues/api/queues?activeQueue=mail&page=1', { accept: 'application/json' });
        expect(api.status).toBe(200);
        const names = (JSON.parse(api.text) as { queues: { name: string }[] }).queues.map((q) => q.name);
        expect(names.sort()).toEqual([expect.stringMatching(/digest$/), expect.stringMatching(/mail$/)]);
      } finally {
        await https.close();
        await pgDb.drop();
      }
    });
  });

  describe('roles and CSRF', () => {
    it('gives a marketer 403 on user management and hides it from the menu; an admin gets 200', async () => {
      const m = new ConsoleBrowser(stack.apps.baseUrl);
      expect((await m.signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
      const home = await m.get('/admin');
      expect(home.status).toBe(200);
      expect(home.text).not.toContain('id="nav-users"');
      const users403 = await m.get('/admin/users');
      expect(users403.status).toBe(403);
      expect(users403.text).toContain('You do not have access to this page');
      const csrf = ConsoleBrowser.csrf(home.text);
      expect(
        (
          await m.post('/admin/users', {
            _csrf: csrf,
            email: 'm2@example.com',
            role: 'admin',
            password: 'x'.repeat(12),
          })
        ).status,
      ).toBe(403);
      expect(await users.findByEmail('m2@example.com')).toBeNull();

      const a = new ConsoleBrowser(stack.apps.baseUrl);
      await a.signIn(ADMIN.email, ADMIN.password);
      const list = await a.get('/admin/users');
      expect(list.status).toBe(200);
      expect(list.text).toContain('data-email="mark@example.com"');
    });

    it('refuses a state-changing POST without the session CSRF token (403), accepts it with the token', async () => {
      const a = new ConsoleBrowser(stack.apps.baseUrl);
      await a.signIn(ADMIN.email, ADMIN.password);
      const form = { email: 'new.marketer@example.com', role: 'marketer', password: 'a long initial password' };
      const none = await a.post('/admin/users', form);
      expect(none.status).toBe(403);
      expect(none.text).toMatch(/did not come from the console/);
      expect((await a.post('/admin/users', { ...form, _csrf: 'x'.repeat(43) })).status).toBe(403);
      expect(await users.findByEmail(form.email)).toBeNull();
      // Another session's token is no good either.
      const other = new ConsoleBrowser(stack.apps.baseUrl);
      await other.signIn(ADMIN.email, ADMIN.password);
      expect((await a.post('/admin/users', { ...form, _csrf: await other.csrfToken() })).status).toBe(403);

      const ok = await a.post('/admin/users', { ...form, _csrf: await a.csrfToken() });
      expect(ok.status).toBe(303);
      expect(ok.location).toBe('/admin/users?notice=created');
      expect(await users.findByEmail(form.email)).toMatchObject({ role: 'marketer' });
      expect((await a.post('/admin/logout', {})).status).toBe(403);
    });

    it('shows form errors next to their fields', async () => {
      const a = new ConsoleBrowser(stack.apps.baseUrl);
      await a.signIn(ADMIN.email, ADMIN.password);
      const res = await a.post('/admin/users', {
        _csrf: await a.csrfToken(),
        email: 'not-an-email',
        role: 'marketer',
        password: 'short',
      });
      expect(res.status).toBe(400);
      expect(res.text).toMatch(/id="new-email"[^>]*aria-invalid="true"[^>]*aria-describedby="new-email-error"/);
      expect(res.text).toMatch(/<p class="field-error" id="new-email-error">Email must be a valid email address<\/p>/);
      expect(res.text).toMatch(
        /<p class="field-error" id="new-password-error">Password must be at least 12 characters<\/p>/,
      );
      expect(res.text).toContain('value="not-an-email"');
    });
  });

  describe('sessions', () => {
    it('signing out ends the session', async () => {
      const a = new ConsoleBrowser(stack.apps.baseUrl);
      await a.signIn(ADMIN.email, ADMIN.password);
      const token = a.session!;
      const out = await a.post('/admin/logout', { _csrf: await a.csrfToken() });
      expect(out.status).toBe(303);
      expect(out.location).toBe('/admin/login?notice=signed-out');
      expect(out.setCookies.find((c) => c.startsWith('mailroom_session='))).toMatch(/Path=\/admin/);
      expect(a.session).toBeUndefined();
      // Replaying the old cookie gets nowhere.
      const replay = new ConsoleBrowser(stack.apps.baseUrl);
      replay.cookies.set('mailroom_session', token);
      expect((await replay.get('/admin')).status).toBe(302);
      expect(
        (await query(stack.db.url, `SELECT 1 FROM staff_sessions WHERE token_hash = $1`, [sessionTokenHash(token)]))
          .length,
      ).toBe(0);
    });

    it("a password change ends that user's sessions (the admin's own change keeps the current one)", async () => {
      const m1 = new ConsoleBrowser(stack.apps.baseUrl);
      const m2 = new ConsoleBrowser(stack.apps.baseUrl);
      await m1.signIn(MARKETER.email, MARKETER.password);
      await m2.signIn(MARKETER.email, MARKETER.password);
      expect((await m1.get('/admin')).status).toBe(200);

      const a = new ConsoleBrowser(stack.apps.baseUrl);
      await a.signIn(ADMIN.email, ADMIN.password);
      const marketer = (await users.findByEmail(MARKETER.email))!;
      const page = await a.get(`/admin/users/${marketer.id}`);
      expect(page.status).toBe(200);
      const csrf = ConsoleBrowser.csrf(page.text);
      const mismatch = await a.post(`/admin/users/${marketer.id}/password`, {
        _csrf: csrf,
        password: 'a new long password',
        confirm: 'something else',
      });
      expect(mismatch.status).toBe(400);
      expect(mismatch.text).toContain('id="confirm-password-error">The two passwords do not match<');
      const changed = await a.post(`/admin/users/${marketer.id}/password`, {
        _csrf: csrf,
        password: 'a new long password',
        confirm: 'a new long password',
      });
      expect(changed.status).toBe(303);
      expect((await m1.get('/admin')).status).toBe(302);
      expect((await m2.get('/admin')).status).toBe(302);
      expect((await new ConsoleBrowser(stack.apps.baseUrl).signIn(MARKETER.email, MARKETER.password)).status).toBe(401);
      expect((await new ConsoleBrowser(stack.apps.baseUrl).signIn(MARKETER.email, 'a new long password')).status).toBe(
        303,
      );
      MARKETER.password = 'a new long password';

      // The admin changes their own password: other sessions end, this one stays.
      const elsewhere = new ConsoleBrowser(stack.apps.baseUrl);
      await elsewhere.signIn(ADMIN.email, ADMIN.password);
      const me = (await users.findByEmail(ADMIN.email))!;
      const own = await a.post(`/admin/users/${me.id}/password`, {
        _csrf: csrf,
        password: 'another long password',
        confirm: 'another long password',
      });
      expect(own.status).toBe(303);
      expect((await a.get('/admin')).status).toBe(200);
      expect((await elsewhere.get('/admin')).status).toBe(302);
      ADMIN.password = 'another long password';
    });

    it('ends a session idle for longer than the idle limit', async () => {
      const m = new ConsoleBrowser(stack.apps.baseUrl);
      await m.signIn(MARKETER.email, MARKETER.password);
      await query(
        stack.db.url,
        `UPDATE staff_sessions SET last_seen_at = now() - interval '13 hours' WHERE token_hash = $1`,
        [sessionTokenHash(m.session!)],
      );
      const res = await m.get('/admin');
      expect(res.status).toBe(302);
      expect(res.location).toBe('/admin/login');
    });
  });

  describe('user management', () => {
    it('deletes a user after a confirmation page, ending their sessions; never yourself or the last admin', async () => {
      const victim = await users.create({
        email: 'leaving@example.com',
        role: 'marketer',
        password: 'leaving soon please',
      });
      if (!victim.ok) throw new Error('setup');
      const v = new ConsoleBrowser(stack.apps.baseUrl);
      await v.signIn('leaving@example.com', 'leaving soon please');

      const a = new ConsoleBrowser(stack.apps.baseUrl);
      await a.signIn(ADMIN.email, ADMIN.password);
      const confirm = await a.get(`/admin/users/${victim.user.id}/delete`);
      expect(confirm.status).toBe(200);
      expect(confirm.text).toContain('Delete leaving@example.com?');
      expect(confirm.text).toContain('id="confirm-delete"');
      const res = await a.post(`/admin/users/${victim.user.id}/delete`, { _csrf: ConsoleBrowser.csrf(confirm.text) });
      expect(res.status).toBe(303);
      expect(await users.findByEmail('leaving@example.com')).toBeNull();
      expect((await v.get('/admin')).status).toBe(302);

      const me = (await users.findByEmail(ADMIN.email))!;
      const self = await a.post(`/admin/users/${me.id}/delete`, { _csrf: await a.csrfToken() });
      expect(self.status).toBe(400);
      expect(self.text).toContain('You cannot delete your own account');
      expect(await users.delete(me.id)).toBe('last-admin');
      expect((await a.get('/admin/users/999999')).status).toBe(404);
      expect((await a.get('/admin/users/abc')).status).toBe(404);
    });
  });

  describe('queue board', () => {
    it('needs a sign-in, then shows the mail and digest queues (Redis backend); only admins may change jobs', async () => {
      const anon = new ConsoleBrowser(stack.apps.baseUrl);
      const redirect = await anon.get('/admin/queues');
      expect(redirect.status).toBe(302);
      expect(redirect.location).toBe('/admin/login?next=%2Fadmin%2Fqueues');
      expect((await anon.get('/admin/queues/api/queues', { accept: 'application/json' })).status).toBe(401);

      const a = new ConsoleBrowser(stack.apps.baseUrl);
      const signIn = await a.signIn(ADMIN.email, ADMIN.password, '/admin/queues');
      expect(signIn.location).toBe('/admin/queues');
      const board = await a.get('/admin/queues');
      expect(board.status).toBe(200);
      expect(board.text).toContain('Mailroom queues');
      const api = await a.get('/admin/queues/api/queues?activeQueue=mail&page=1', { accept: 'application/json' });
      expect(api.status).toBe(200);
      const names = (JSON.parse(api.text) as { queues: { name: string }[] }).queues.map((q) => q.name);
      expect(names.sort()).toEqual([expect.stringMatching(/digest$/), expect.stringMatching(/mail$/)]);

      const m = new ConsoleBrowser(stack.apps.baseUrl);
      await m.signIn(MARKETER.email, MARKETER.password);
      expect((await m.get('/admin/queues')).status).toBe(200);
      const pause = await m.request('PUT', '/admin/queues/api/queues/mail/pause', undefined, {
        accept: 'application/json',
        origin: stack.apps.baseUrl,
      });
      expect(pause.status).toBe(403);
      // An admin's change must come from this site.
      const crossSite = await a.request('PUT', '/admin/queues/api/queues/mail/pause', undefined, {
        accept: 'application/json',
        origin: 'https://evil.example',
      });
      expect(crossSite.status).toBe(403);
    });
  });
});
