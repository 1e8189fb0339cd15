import 'reflect-metadata';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { admin } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

const ADMIN = { email: 'ada.suppress@example.com', password: 'correct horse battery staple' };
const MARKETER = { email: 'mark.suppress@example.com', password: 'marketing-password-1' };

/** Suppressing an address by hand (console and admin API), and the queue board's way back to the console. */
describe('console: manual suppressions and the queue board', () => {
  const stack = useStack({ label: 'console_suppress', worker: false });
  let a: ConsoleBrowser;
  let m: ConsoleBrowser;

  const subscriberStatus = async (email: string) =>
    (await query<{ status: string }>(stack.db.url, `SELECT status FROM subscribers WHERE email = $1`, [email]))[0]
      ?.status;

  beforeAll(async () => {
    const users = stack.apps.api.get(StaffUsersService);
    expect((await users.create({ ...ADMIN, role: 'admin' })).ok).toBe(true);
    expect((await users.create({ ...MARKETER, role: 'marketer' })).ok).toBe(true);
    a = new ConsoleBrowser(stack.apps.baseUrl);
    expect((await a.signIn(ADMIN.email, ADMIN.password)).status).toBe(303);
    m = new ConsoleBrowser(stack.apps.baseUrl);
    expect((await m.signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
    await addAudience(stack.db.url, { prefix: 'manual', count: 3, newsletter: 'spine-health' });
  });

  it('an admin suppresses an address from the Suppressions page, with a reason; its mail ends', async () => {
    const page = await a.get('/admin/suppressions');
    expect(page.text).toContain('id="suppress-form"');
    const csrf = ConsoleBrowser.csrf(page.text);
    const missing = await a.post('/admin/suppressions', { _csrf: csrf, email: 'manual1@example.com', reason: '' });
    expect(missing.status).toBe(400);
    expect(missing.text).toContain('id="suppress-reason-error">Say why this address must not be mailed</p>');
    const bad = await a.post('/admin/suppressions', { _csrf: csrf, email: 'not an address', reason: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('id="suppress-email-error"');

    const res = await a.post('/admin/suppressions', {
      _csrf: csrf,
      email: 'Manual1@Example.com',
      reason: 'Asked by phone to get nothing more',
    });
    expect([res.status, res.location]).toEqual([303, '/admin/suppressions?notice=added']);
    expect(await subscriberStatus('manual1@example.com')).toBe('suppressed');
    const list = await a.get('/admin/suppressions?notice=added');
    expect(list.text).toMatch(/data-reason="manual" data-email="manual1@example.com"/);
    expect(list.text).toContain('Asked by phone to get nothing more');
    // Twice: already listed, the first reason kept.
    const again = await a.post('/admin/suppressions', { _csrf: csrf, email: 'manual1@example.com', reason: 'again' });
    expect(again.location).toBe('/admin/suppressions?notice=already-listed');
    // A digest now reaches the two others only.
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {
      sendAt: new Date(Date.now() + 86_400_000).toISOString(),
    });
    expect((await a.get(`/admin/digests/${created.body.id}/send`)).text).toContain('to 2 readers of Spine-health now?');
  });

  it('a marketer sees no form and may not post one (403)', async () => {
    const page = await m.get('/admin/suppressions');
    expect(page.text).not.toContain('id="suppress-form"');
    const res = await m.post('/admin/suppressions', {
      _csrf: ConsoleBrowser.csrf(page.text),
      email: 'manual2@example.com',
      reason: 'no',
    });
    expect(res.status).toBe(403);
    expect(await subscriberStatus('manual2@example.com')).toBe('ok');
  });

  it('POST /v1/suppressions { email, reason? } → 201, ending the address like a hard bounce', async () => {
    const res = await admin<{ email: string; reason: string; created: boolean }>(
      stack.apps.baseUrl,
      'POST',
      '/v1/suppressions',
      { email: 'manual2@example.com', reason: 'Legal request' },
    );
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ email: 'manual2@example.com', reason: 'manual', created: true });
    expect(await subscriberStatus('manual2@example.com')).toBe('suppressed');
    // Without a reason, and for an address never seen: only its hash is kept.
    const unknown = await admin(stack.apps.baseUrl, 'POST', '/v1/suppressions', { email: 'never@example.com' });
    expect(unknown.status).toBe(201);
    const invalid = await admin<{ message: string[] }>(stack.apps.baseUrl, 'POST', '/v1/suppressions', {
      email: 'nope',
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.message.join()).toMatch(/email/);
    expect(
      (await admin(stack.apps.baseUrl, 'POST', '/v1/suppressions', { email: 'x@example.com', reason: 'a\nb' })).status,
    ).toBe(400);
    const noKey = await fetch(`${stack.apps.baseUrl}/v1/suppressions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'y@example.com' }),
    });
    expect(noKey.status).toBe(401);
    // The lift (DELETE) still works on it.
    expect((await admin(stack.apps.baseUrl, 'DELETE', '/v1/suppressions/manual2@example.com')).status).toBe(204);
  });

  it('the queue board has a fixed link back to the console', async () => {
    const board = await a.get('/admin/queues');
    expect(board.status).toBe(200);
    expect(board.text).toMatch(
      /<body[^>]*><a href="\/admin" id="mailroom-console-link"[^>]*>← Back to the Mailroom console<\/a>/,
    );
  });
});
