import 'reflect-metadata';
import { ADMIN_KEY, headerBlock, linkFrom } from './support/apps.js';
import { query } from './support/db.js';
import { postForm, postJson, sleep } from './support/http.js';
import { useStack } from './support/stack.js';

const PUBLIC = 'http://mailroom.test';

describe('links, tokens and abuse', () => {
  const stack = useStack({ label: 'links', env: { PUBLIC_POSTS_PER_IP_PER_MINUTE: '10000' } });
  const local = (link: string) => link.replace(PUBLIC, stack.apps.baseUrl);
  const subscribe = (body: Record<string, unknown>) => postJson(`${stack.apps.baseUrl}/v1/subscriptions`, body);

  /** Subscribes and confirms an address; returns its confirm link and its guide mail's unsubscribe URL. */
  async function activeReader(
    email: string,
  ): Promise<{ confirmLink: string; unsubscribeUrl: string; guideLink: string }> {
    expect((await subscribe({ email })).status).toBe(202);
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    const confirmLink = linkFrom(stack.smtp.to(email)[0].parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(local(confirmLink), { method: 'POST' })).status).toBe(200);
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 2);
    const guide = stack.smtp.to(email)[1];
    const unsubscribeUrl = /<(http[^>]+)>/.exec(/^List-Unsubscribe: (.*)$/m.exec(headerBlock(guide.raw))![1])![1];
    const guideLink = linkFrom(guide.parsed.text ?? '', `${PUBLIC}/guides/`);
    return { confirmLink, unsubscribeUrl, guideLink };
  }

  it('answers byte-identically for new, pending, active, unsubscribed and suppressed addresses', async () => {
    const active = await activeReader('known-active@example.com');
    await postForm(local(active.unsubscribeUrl), { 'List-Unsubscribe': 'One-Click' });
    await activeReader('known-active2@example.com');
    await subscribe({ email: 'known-pending@example.com' });
    // Suppress an address the way a hard bounce does.
    const { emailHash } = await import('#subscriptions/tokens.js');
    await query(stack.db.url, `INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'bounced')`, [
      emailHash(stack.apps.config.appSecret, 'suppressed@example.com'),
    ]);
    const answers: string[] = [];
    for (const email of [
      'brand-new@example.com',
      'known-pending@example.com',
      'known-active2@example.com',
      'known-active@example.com',
      'suppressed@example.com',
    ]) {
      const res = await subscribe({ email });
      answers.push(`${res.status} ${res.headers.get('content-type')} ${await res.text()}`);
    }
    expect(new Set(answers).size).toBe(1);
    expect(answers[0]).toBe('202 application/json; charset=utf-8 {"status":"pending"}');
    await sleep(500);
    expect(stack.smtp.to('suppressed@example.com')).toHaveLength(0);
  });

  it('sends at most 3 confirmation mails per address per 24 h, whatever the number of requests', async () => {
    const email = 'bombed@example.com';
    for (let i = 0; i < 10; i += 1) expect((await subscribe({ email })).status).toBe(202);
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 3);
    await sleep(800);
    expect(stack.smtp.to(email)).toHaveLength(3);
    const [{ n }] = await query<{ n: number }>(
      stack.db.url,
      `SELECT count(*)::int AS n FROM outbox WHERE payload->>'subscriberId' = (SELECT id::text FROM subscribers WHERE email = $1)`,
      [email],
    );
    expect(n).toBe(3);
  });

  it('holds that limit when the requests for one address arrive all at once', async () => {
    const email = 'bombed-at-once@example.com';
    const codes = await Promise.all(Array.from({ length: 12 }, async () => (await subscribe({ email })).status));
    expect(codes).toEqual(Array(12).fill(202));
    const [{ n, consent }] = await query<{ n: number; consent: number }>(
      stack.db.url,
      `SELECT (SELECT count(*)::int FROM outbox WHERE payload->>'subscriberId' = s.id::text) AS n,
              (SELECT count(*)::int FROM consent_records WHERE subscriber_id = s.id) AS consent
       FROM subscribers s WHERE s.email = $1`,
      [email],
    );
    expect(n).toBe(3);
    expect(consent).toBe(12);
  });

  it('sign-ups that arrive together share one statement, and each lands whole', async () => {
    const emails = Array.from({ length: 40 }, (_, i) => `together-${i}@example.com`);
    const codes = await Promise.all(
      emails.map(async (email, i) => {
        const body =
          i % 2 === 0
            ? { email, name: `Zoë ${i}`, timezone: 'America/Chicago', topics: ['Neck Pain'] }
            : { email, newsletters: ['spine-health', 'sports-health'] };
        return (await subscribe(body)).status;
      }),
    );
    expect(codes).toEqual(Array(40).fill(202));
    const stored = await query<{
      email: string;
      name: string | null;
      timezone: string | null;
      subs: number;
      consent: number;
      events: number;
      topics: string[] | null;
    }>(
      stack.db.url,
      `SELECT s.email, s.name, s.timezone,
              (SELECT count(*)::int FROM subscriptions WHERE subscriber_id = s.id AND status = 'pending') AS subs,
              (SELECT count(*)::int FROM consent_records WHERE subscriber_id = s.id AND action = 'subscribe') AS consent,
              (SELECT count(*)::int FROM outbox WHERE payload->>'subscriberId' = s.id::text) AS events,
              (SELECT topics FROM subscriptions WHERE subscriber_id = s.id ORDER BY newsletter_id LIMIT 1) AS topics
       FROM subscribers s WHERE s.email LIKE 'together-%' ORDER BY s.email`,
    );
    expect(stored).toHaveLength(40);
    for (const row of stored) {
      const i = Number(/together-(\d+)@/.exec(row.email)![1]);
      if (i % 2 === 0) {
        expect(row).toMatchObject({ name: `Zoë ${i}`, timezone: 'America/Chicago', subs: 1, consent: 1, events: 1 });
        expect(row.topics).toEqual(['Neck Pain']);
      } else {
        expect(row).toMatchObject({ name: null, timezone: null, subs: 2, consent: 2, events: 1 });
      }
    }
    // Rows written by one transaction share its id (xmin): several sign-ups went in one statement.
    const [{ groups }] = await query<{ groups: number }>(
      stack.db.url,
      `SELECT count(DISTINCT xmin::text)::int AS groups FROM subscribers WHERE email LIKE 'together-%'`,
    );
    expect(groups).toBeLessThan(40);
  });

  it('a sign-up that fails in a shared statement fails alone; the others land as if alone', async () => {
    const { SignupWriter } = await import('#subscriptions/signup-writer.repository.js');
    const { emailHash } = await import('#subscriptions/tokens.js');
    const writer = stack.apps.api.get(SignupWriter);
    const [{ id }] = await query<{ id: number }>(
      stack.db.url,
      `SELECT id FROM newsletters WHERE slug = 'spine-health'`,
    );
    const request = (email: string, newsletterIds: number[]) => ({
      email,
      name: null,
      timezone: null,
      suppressionHash: emailHash(stack.apps.config.appSecret, email),
      newsletterIds,
      topics: [],
      source: null,
      consent: { ip: '127.0.0.1', userAgent: 'test', sourceUrl: null, consentText: 'test', consentVersion: 'test' },
      confirmationsPerDay: 3,
    });
    // Written in one turn of the event loop: one group, whose statement fails on the unknown newsletter.
    const outcomes = await Promise.allSettled([
      writer.write(request('group-a@example.com', [id])),
      writer.write(request('group-bad@example.com', [2_000_000_000])),
      writer.write(request('group-b@example.com', [id])),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const rows = await query<{ email: string; events: number }>(
      stack.db.url,
      `SELECT s.email, (SELECT count(*)::int FROM outbox WHERE payload->>'subscriberId' = s.id::text) AS events
       FROM subscribers s WHERE s.email LIKE 'group-%' ORDER BY s.email`,
    );
    expect(rows).toEqual([
      { email: 'group-a@example.com', events: 1 },
      { email: 'group-b@example.com', events: 1 },
    ]);
  });

  it('the honeypot gets the same 202 and stores and sends nothing', async () => {
    const res = await subscribe({ email: 'bot@example.com', website: 'http://spam.example' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'pending' });
    await sleep(300);
    expect(await query(stack.db.url, `SELECT 1 FROM subscribers WHERE email = 'bot@example.com'`)).toHaveLength(0);
    expect(stack.smtp.to('bot@example.com')).toHaveLength(0);
  });

  it('unknown, tampered, expired and spent confirmation links get friendly 4xx pages', async () => {
    const email = 'tokens@example.com';
    await subscribe({ email });
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    const link = linkFrom(stack.smtp.to(email)[0].parsed.text ?? '', `${PUBLIC}/confirm/`);
    const token = link.split('/').pop()!;
    const flipped = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    for (const bad of [flipped, 'x'.repeat(43), 'short', '../../etc/passwd', '%00']) {
      for (const method of ['GET', 'POST']) {
        const res = await fetch(`${stack.apps.baseUrl}/confirm/${encodeURIComponent(bad)}`, { method });
        expect(res.status).toBe(404);
        const html = await res.text();
        expect(html).toContain('This link is not valid');
      }
    }
    expect(
      await query(
        stack.db.url,
        `SELECT 1 FROM subscriptions WHERE status = 'active' AND subscriber_id = (SELECT id FROM subscribers WHERE email = $1)`,
        [email],
      ),
    ).toHaveLength(0);

    await query(
      stack.db.url,
      `UPDATE tokens SET expires_at = now() - interval '1 minute' WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = $1)`,
      [email],
    );
    const expired = await fetch(local(link), { method: 'POST' });
    expect(expired.status).toBe(400);
    expect(await expired.text()).toContain('This link has expired');
    const expiredJson = await fetch(local(link), { method: 'POST', headers: { accept: 'application/json' } });
    expect(await expiredJson.json()).toMatchObject({ statusCode: 400, message: 'This confirmation link has expired.' });
  });

  it('a used link stops working once the reader has unsubscribed', async () => {
    const r = await activeReader('spent@example.com');
    await postForm(local(r.unsubscribeUrl), { 'List-Unsubscribe': 'One-Click' });
    const res = await fetch(local(r.confirmLink), { method: 'POST' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('already been used');
  });

  it('the preference centre changes nothing until submitted, and its form works', async () => {
    const email = 'prefs@example.com';
    // Two newsletters, both confirmed with one link.
    await subscribe({ email, newsletters: ['spine-health', 'arthritis-health'] });
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    const link = linkFrom(stack.smtp.to(email)[0].parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(local(link), { method: 'POST' })).status).toBe(200);
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 2);
    const unsub = /<(http[^>]+)>/.exec(
      /^List-Unsubscribe: (.*)$/m.exec(headerBlock(stack.smtp.to(email)[1].raw))![1],
    )![1];

    const page = await fetch(local(unsub));
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Unsubscribe from Spine-health');
    expect(html).toContain('Unsubscribe from all newsletters (Arthritis-health)');
    expect(html).toContain('value="Neck Pain"');
    const statuses = () =>
      query<{ slug: string; status: string; topics: string[] }>(
        stack.db.url,
        `SELECT n.slug, s.status, s.topics FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id
         WHERE s.subscriber_id = (SELECT id FROM subscribers WHERE email = $1) ORDER BY n.slug`,
        [email],
      );
    expect((await statuses()).map((s) => s.status)).toEqual(['active', 'active']);

    const saved = await postForm(local(unsub), { action: 'topics', topics: ['Neck Pain', 'Sciatica'] });
    expect(saved.status).toBe(200);
    expect(await statuses()).toEqual([
      { slug: 'arthritis-health', status: 'active', topics: [] },
      { slug: 'spine-health', status: 'active', topics: ['Neck Pain', 'Sciatica'] },
    ]);

    const all = await postForm(local(unsub), { action: 'unsubscribe-all' });
    expect(all.status).toBe(200);
    expect(await all.text()).toContain('You have been unsubscribed');
    expect((await statuses()).map((s) => s.status)).toEqual(['unsubscribed', 'unsubscribed']);
    const consent = await query<{ action: string }>(
      stack.db.url,
      `SELECT action FROM consent_records WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = $1) ORDER BY id`,
      [email],
    );
    expect(consent.map((c) => c.action)).toEqual([
      'subscribe',
      'subscribe',
      'confirm',
      'confirm',
      'preferences',
      'unsubscribe',
      'unsubscribe',
    ]);
  });

  it('one-click unsubscribe accepts multipart/form-data too, with no redirect', async () => {
    const r = await activeReader('multipart@example.com');
    const form = new FormData();
    form.append('List-Unsubscribe', 'One-Click');
    const res = await fetch(local(r.unsubscribeUrl), { method: 'POST', body: form, redirect: 'manual' });
    expect(res.status).toBe(200);
    const [row] = await query<{ status: string }>(
      stack.db.url,
      `SELECT status FROM subscriptions WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = 'multipart@example.com')`,
    );
    expect(row.status).toBe('unsubscribed');
  });

  it('tampered unsubscribe and guide links change nothing', async () => {
    const r = await activeReader('tamper@example.com');
    const token = r.unsubscribeUrl.split('/').pop()!;
    const [id, exp, mac] = token.split('.');
    const otherId = `${Number(id) + 1}.${exp}.${mac}`;
    const flipped = `${id}.${exp}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`;
    for (const bad of [otherId, flipped, id, 'garbage']) {
      expect((await fetch(`${stack.apps.baseUrl}/unsubscribe/${bad}`)).status).toBe(404);
      expect(
        (await postForm(`${stack.apps.baseUrl}/unsubscribe/${bad}`, { 'List-Unsubscribe': 'One-Click' })).status,
      ).toBe(404);
    }
    // A guide token is not an unsubscribe token (single purpose), and vice versa.
    const guideToken = r.guideLink.split('/').pop()!;
    expect(
      (await postForm(`${stack.apps.baseUrl}/unsubscribe/${guideToken}`, { 'List-Unsubscribe': 'One-Click' })).status,
    ).toBe(404);
    expect((await fetch(`${stack.apps.baseUrl}/guides/natural-back-pain-relief/${token}`)).status).toBe(404);
    expect((await fetch(local(r.guideLink).replace('natural-back-pain-relief', 'other-guide'))).status).toBe(404);
    const [row] = await query<{ status: string }>(
      stack.db.url,
      `SELECT status FROM subscriptions WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = 'tamper@example.com')`,
    );
    expect(row.status).toBe('active');
    expect((await fetch(local(r.guideLink))).status).toBe(200);
  });

  it('the database holds no usable raw token', async () => {
    const tokens = stack.smtp.messages
      .map((m) => m.parsed.text ?? '')
      .flatMap((t) =>
        [...t.matchAll(/\/(?:confirm|unsubscribe|guides\/[a-z-]+)\/([A-Za-z0-9._-]+)/g)].map((x) => x[1]),
      );
    expect(tokens.length).toBeGreaterThan(5);
    const dump = JSON.stringify(
      await query(
        stack.db.url,
        `SELECT (SELECT json_agg(t) FROM tokens t) AS tokens, (SELECT json_agg(o) FROM outbox o) AS outbox, (SELECT json_agg(m) FROM mail_log m) AS log`,
      ),
    );
    for (const t of tokens) expect(dump).not.toContain(t);
  });

  it('admin routes need the API key', async () => {
    expect((await fetch(`${stack.apps.baseUrl}/v1/newsletters`)).status).toBe(401);
    expect(
      (await fetch(`${stack.apps.baseUrl}/v1/newsletters`, { headers: { authorization: 'Bearer wrong-key-123' } }))
        .status,
    ).toBe(401);
    expect(
      (await fetch(`${stack.apps.baseUrl}/v1/subscribers`, { headers: { authorization: ADMIN_KEY } })).status,
    ).toBe(401);
    const ok = await fetch(`${stack.apps.baseUrl}/v1/newsletters`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(ok.status).toBe(200);
  });
});

describe('per-IP rate limit on public POSTs', () => {
  // Each test starts its own api, with its own limits.
  const stack = useStack({ label: 'ratelimit', start: false });

  it('answers 429 past the limit, per client IP from X-Forwarded-For only when TRUST_PROXY is set', async () => {
    const env = { PUBLIC_POSTS_PER_IP_PER_MINUTE: '5', TRUST_PROXY: 'true' };
    const apps = await stack.startApps({ env, worker: false });
    try {
      const from = (ip: string, i: number) =>
        postJson(`${apps.baseUrl}/v1/subscriptions`, { email: `rl${i}@example.com` }, { 'x-forwarded-for': ip });
      const codes: number[] = [];
      for (let i = 0; i < 6; i += 1) codes.push((await from('203.0.113.7', i)).status);
      expect(codes).toEqual([202, 202, 202, 202, 202, 429]);
      const limited = await from('203.0.113.7', 99);
      expect(await limited.json()).toMatchObject({
        statusCode: 429,
        message: expect.stringContaining('Too many requests'),
      });
      expect((await from('203.0.113.8', 100)).status).toBe(202);
      const [row] = await query<{ ip: string }>(
        stack.db.url,
        `SELECT host(ip) AS ip FROM consent_records ORDER BY id LIMIT 1`,
      );
      expect(row.ip).toBe('203.0.113.7');
    } finally {
      await apps.close();
    }
  });

  it.each([['1'], ['true'], ['127.0.0.1'], ['127.0.0.0/8,10.0.0.0/8']])(
    'TRUST_PROXY=%s takes the first untrusted address from the right: a forged left-most entry changes nothing',
    async (trust) => {
      const env = { PUBLIC_POSTS_PER_IP_PER_MINUTE: '5', TRUST_PROXY: trust };
      const apps = await stack.startApps({ env, worker: false });
      try {
        await query(stack.db.url, `DELETE FROM consent_records`);
        const codes: number[] = [];
        // A client rotates the left-most entry; the proxy appends the address it saw.
        for (let i = 0; i < 7; i += 1) {
          const res = await postJson(
            `${apps.baseUrl}/v1/subscriptions`,
            { email: `spoof${trust.length}-${i}@example.com` },
            { 'x-forwarded-for': `6.6.6.${i}, 203.0.113.77` },
          );
          codes.push(res.status);
        }
        expect(codes).toEqual([202, 202, 202, 202, 202, 429, 429]);
        const ips = await query<{ ip: string }>(stack.db.url, `SELECT DISTINCT host(ip) AS ip FROM consent_records`);
        expect(ips).toEqual([{ ip: '203.0.113.77' }]);
      } finally {
        await apps.close();
      }
    },
  );

  it('ignores X-Forwarded-For when TRUST_PROXY is off', async () => {
    const env = { PUBLIC_POSTS_PER_IP_PER_MINUTE: '3' };
    const apps = await stack.startApps({ env, worker: false });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 4; i += 1) {
        const res = await postJson(
          `${apps.baseUrl}/v1/subscriptions`,
          { email: `xff${i}@example.com` },
          { 'x-forwarded-for': `198.51.100.${i}` },
        );
        codes.push(res.status);
      }
      expect(codes).toEqual([202, 202, 202, 429]);
    } finally {
      await apps.close();
    }
  });
});
