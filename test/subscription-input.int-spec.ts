import 'reflect-metadata';
import { ADMIN_KEY } from './support/apps.js';
import { query } from './support/db.js';
import { postForm, postJson } from './support/http.js';
import { useStack } from './support/stack.js';

/** Invariant 5: bad input gets a 4xx naming the field, never a 500, and leaves nothing half-written. */
describe('subscription input validation', () => {
  const stack = useStack({ label: 'input', worker: false, env: { PUBLIC_POSTS_PER_IP_PER_MINUTE: '10000' } });
  const url = () => `${stack.apps.baseUrl}/v1/subscriptions`;

  const cases: [string, unknown, RegExp][] = [
    ['missing email', { name: 'x' }, /email/],
    ['email not a string', { email: 42 }, /email must be a string/],
    ['invalid email', { email: 'not-an-email' }, /email must be a valid email address/],
    ['over-long email', { email: `${'a'.repeat(250)}@example.com` }, /email must be at most 254 characters/],
    ['CR/LF in email', { email: 'a@example.com\r\nBcc: victim@example.com' }, /email must not contain line breaks/],
    ['quoted local part', { email: '"a@b x"@evil.test' }, /email must be a valid email address/],
    ['display-name form', { email: 'Eve <eve@example.com>' }, /email must be a valid email address/],
    ['two addresses', { email: 'a@example.com,b@example.com' }, /email must be a valid email address/],
    [
      'unknown newsletter',
      { email: 'a@example.com', newsletters: ['nope'] },
      /newsletters contains an unknown newsletter: "nope"/,
    ],
    ['newsletters wrong type', { email: 'a@example.com', newsletters: 7 }, /newsletters/],
    ['CR/LF in name', { email: 'a@example.com', name: 'Eve\r\nBcc: x@y.z' }, /name must not contain line breaks/],
    ['over-long name', { email: 'a@example.com', name: 'n'.repeat(101) }, /name must be at most 100 characters/],
    ['bad timezone', { email: 'a@example.com', timezone: 'Mars/Olympus' }, /timezone must be an IANA time zone/],
    ['bad source', { email: 'a@example.com', source: 'javascript:alert(1)' }, /source must be an http\(s\) URL/],
    ['topics wrong type', { email: 'a@example.com', topics: [1, 2] }, /topics must be an array of strings/],
    ['body is an array', [{ email: 'a@example.com' }], /./],
    ['body is a string', '"a@example.com"', /./],
  ];

  it.each(cases)('%s → 400 naming the field', async (_label, body, message) => {
    const res = await postJson(url(), body);
    expect(res.status).toBe(400);
    const json = (await res.json()) as { statusCode: number; message: string | string[] };
    expect(json.statusCode).toBe(400);
    expect([json.message].flat().join(' | ')).toMatch(message);
    expect(JSON.stringify(json)).not.toMatch(/at \w+ \(|\.ts:\d+|node_modules/);
  });

  it('malformed JSON → 400 with a clear message', async () => {
    const res = await postJson(url(), '{"email": "a@example.com",');
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ statusCode: 400, message: 'Malformed JSON in request body' });
  });

  it('bodies over 100 kB → 413', async () => {
    const res = await postJson(url(), { email: 'a@example.com', name: 'x'.repeat(110 * 1024) });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ statusCode: 413, message: expect.stringContaining('100 kB') });
  });

  it('unsupported content type → 415, not 500', async () => {
    const res = await fetch(url(), { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' });
    expect(res.status).toBe(415);
  });

  it('a bad form post gets an HTML page with the message, status 400', async () => {
    const res = await postForm(url(), { email: 'nope' });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(await res.text()).toContain('email must be a valid email address');
  });

  it('leaves nothing half-written after all that', async () => {
    const [counts] = await query<{ subs: number; subscribers: number; outbox: number; consent: number }>(
      stack.db.url,
      `SELECT (SELECT count(*)::int FROM subscriptions) AS subs, (SELECT count(*)::int FROM subscribers) AS subscribers,
              (SELECT count(*)::int FROM outbox) AS outbox, (SELECT count(*)::int FROM consent_records) AS consent`,
    );
    expect(counts).toEqual({ subs: 0, subscribers: 0, outbox: 0, consent: 0 });
  });

  it('accepts a plain HTML form with several newsletters and answers with a page (303 to it)', async () => {
    const res = await postForm(
      url(),
      {
        email: 'Form.Reader@Example.com',
        newsletters: ['spine-health', 'sports-health'],
        topics: 'Neck Pain',
        website: '',
      },
      { accept: 'text/html,application/xhtml+xml' }, // as a browser asks
    );
    // Post/redirect/get: a reload of the answer does not post the form again.
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/subscribe/check-inbox?newsletter=spine-health&newsletter=sports-health');
    const page = await fetch(new URL(res.headers.get('location')!, url()));
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('Check your inbox');
    const subs = await query<{ email: string; slug: string; status: string; topics: string[] }>(
      stack.db.url,
      `SELECT u.email, n.slug, s.status, s.topics FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
       JOIN newsletters n ON n.id = s.newsletter_id ORDER BY n.slug`,
    );
    expect(subs).toEqual([
      { email: 'form.reader@example.com', slug: 'spine-health', status: 'pending', topics: ['Neck Pain'] },
      { email: 'form.reader@example.com', slug: 'sports-health', status: 'pending', topics: ['Neck Pain'] },
    ]);
    const consent = await query<{ action: string; consent_text: string; consent_version: string; ip: string }>(
      stack.db.url,
      `SELECT action, consent_text, consent_version, host(ip) AS ip FROM consent_records`,
    );
    expect(consent).toHaveLength(2);
    expect(consent[0]).toMatchObject({ action: 'subscribe', ip: '127.0.0.1', consent_version: expect.any(String) });
    expect(consent[0].consent_text).toContain('We respect your privacy. Unsubscribe at any time.');
  });

  it('IDN domains are stored in ASCII form', async () => {
    expect((await postJson(url(), { email: 'leser@bücher.example' })).status).toBe(202);
    const [row] = await query<{ email: string }>(
      stack.db.url,
      `SELECT email FROM subscribers WHERE email LIKE 'leser@%'`,
    );
    expect(row.email).toBe('leser@xn--bcher-kva.example');
  });
  it('a newsletter created or made the default through the admin API counts at once', async () => {
    const admin = { authorization: `Bearer ${ADMIN_KEY}` };
    const created = await postJson(
      `${stack.apps.baseUrl}/v1/newsletters`,
      { slug: 'brand-new', name: 'Brand New' },
      admin,
    );
    expect(created.status).toBe(201);
    expect((await postJson(url(), { email: 'first@example.com', newsletters: ['brand-new'] })).status).toBe(202);
    const patched = await fetch(`${stack.apps.baseUrl}/v1/newsletters/brand-new`, {
      method: 'PATCH',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ isDefault: true }),
    });
    expect(patched.status).toBe(200);
    expect((await postJson(url(), { email: 'second@example.com' })).status).toBe(202);
    const rows = await query<{ email: string }>(
      stack.db.url,
      `SELECT u.email FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
       JOIN newsletters n ON n.id = s.newsletter_id WHERE n.slug = 'brand-new' ORDER BY u.email`,
    );
    expect(rows.map((r) => r.email)).toEqual(['first@example.com', 'second@example.com']);
  });
});
