import 'reflect-metadata';
import { domainToASCII } from 'node:url';
import { headerBlock } from './support/apps.js';
import { admin, waitUntil } from './support/admin.js';
import { query } from './support/db.js';
import { postJson, sleep } from './support/http.js';
import { useStack } from './support/stack.js';

describe('the outbox delivers once the queue is back', () => {
  // A Redis of its own, not started: nothing listens there when the apps start.
  const stack = useStack({ label: 'outbox', start: false, ownRedis: { started: false } });

  it('a subscribe while Redis is down gets its 202, and its one confirmation when Redis returns', async () => {
    const apps = await stack.startApps(); // on the stack's own Redis: nothing listens there yet

    const health = await fetch(`${apps.baseUrl}/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: 'error', error: { queue: { status: 'down' } } });

    const res = await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'patient@example.com' });
    expect(res.status).toBe(202);
    await sleep(1500);
    expect(stack.smtp.to('patient@example.com')).toHaveLength(0);
    const [pending] = await query<{ n: number }>(
      stack.db.url,
      `SELECT count(*)::int AS n FROM outbox WHERE dispatched_at IS NULL`,
    );
    expect(pending.n).toBe(1);

    await stack.redis.start();
    await stack.smtp.waitFor(() => stack.smtp.to('patient@example.com').length >= 1, 30_000);
    await sleep(1500);
    expect(stack.smtp.to('patient@example.com')).toHaveLength(1);
    expect((await fetch(`${apps.baseUrl}/health`)).status).toBe(200);
  });
});

describe('SMTP replies and message hygiene', () => {
  const stack = useStack({ label: 'smtp', env: { PUBLIC_POSTS_PER_IP_PER_MINUTE: '10000' } });

  it('4xx replies are retried with backoff until delivered', async () => {
    let refusals = 0;
    stack.smtp.rcptHook = (addr) =>
      addr === 'greylisted@example.com' && refusals++ < 2
        ? { code: 451, message: '4.7.1 Greylisted, try later' }
        : null;
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'greylisted@example.com' });
    await stack.smtp.waitFor(() => stack.smtp.to('greylisted@example.com').length >= 1, 30_000);
    expect(refusals).toBe(3);
    expect(stack.smtp.to('greylisted@example.com')).toHaveLength(1);
  });

  it('550 5.1.1 is tried once and suppresses the address for every newsletter', async () => {
    let tries = 0;
    stack.smtp.rcptHook = (addr) => {
      if (addr !== 'nobody@example.com') return null;
      tries += 1;
      return { code: 550, message: '5.1.1 <nobody@example.com>: Recipient address rejected: User unknown' };
    };
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'nobody@example.com' });
    for (let i = 0; i < 50; i += 1) {
      const rows = await query<{ status: string }>(
        stack.db.url,
        `SELECT status FROM subscribers WHERE email = 'nobody@example.com'`,
      );
      if (rows[0]?.status === 'bounced') break;
      await sleep(100);
    }
    await sleep(500);
    expect(tries).toBe(1);
    const [sub] = await query<{ status: string }>(
      stack.db.url,
      `SELECT status FROM subscribers WHERE email = 'nobody@example.com'`,
    );
    expect(sub.status).toBe('bounced');
    expect(await query(stack.db.url, `SELECT reason FROM suppressions`)).toEqual([{ reason: 'bounced' }]);
    const log = await query<{ status: string; detail: string }>(
      stack.db.url,
      `SELECT status, detail FROM mail_log WHERE kind = 'confirmation' AND status = 'failed'`,
    );
    expect(log).toHaveLength(1);
    // Another newsletter, later: nothing is sent.
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, {
      email: 'nobody@example.com',
      newsletters: ['sports-health'],
    });
    await sleep(800);
    expect(tries).toBe(1);
  });

  it('an erased address that signs up again and then hard-bounces is listed as bounced, not erased', async () => {
    const email = 'comeback@example.com';
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email });
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1, 30_000);
    expect((await admin(stack.apps.baseUrl, 'DELETE', `/v1/subscribers/${email}`)).status).toBe(204);
    const listed = () =>
      query<{ n: number; reasons: string[] }>(
        stack.db.url,
        `SELECT count(*)::int AS n, array_agg(reason ORDER BY reason) AS reasons FROM suppressions`,
      );
    const [erased] = await listed();
    expect(erased.reasons).toContain('erased');

    let tries = 0;
    stack.smtp.rcptHook = (addr) => {
      if (addr !== email) return null;
      tries += 1;
      return { code: 550, message: '5.1.1 Recipient address rejected: User unknown' };
    };
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email });
    const [after] = await waitUntil(listed, ([r]) => !r.reasons.includes('erased'), 30_000, 'the bounce');
    expect(tries).toBe(1);
    expect(after.n).toBe(erased.n); // the same entry, now saying bounced
    // Listed as bounced, a new sign-up gets no confirmation.
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email });
    await sleep(800);
    expect(tries).toBe(1);
  });

  it('554 5.7.1 (policy) fails the message without suppressing anyone', async () => {
    let tries = 0;
    stack.smtp.rcptHook = (addr) => {
      if (addr !== 'policy@example.com') return null;
      tries += 1;
      return { code: 554, message: '5.7.1 Message rejected by policy' };
    };
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'policy@example.com' });
    await sleep(1500);
    expect(tries).toBe(1);
    const [sub] = await query<{ status: string }>(
      stack.db.url,
      `SELECT status FROM subscribers WHERE email = 'policy@example.com'`,
    );
    expect(sub.status).toBe('ok');
  });

  it('every mail has one recipient, no injected header, unique Message-ID, and escaped values', async () => {
    stack.smtp.rcptHook = () => null;
    const evilName = 'Eve "</a><script>alert(1)</script>" Bcc: victim@example.com';
    const res = await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'eve@example.com', name: evilName });
    expect(res.status).toBe(202);
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, {
      email: 'Ünïcødé@bücher.example',
      name: 'Zoë Ünïcødé',
    }).then((r) => expect(r.status).toBe(400));
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'idn@bücher.example', name: 'Zoë 😀' });
    // smtp-server reports the IDN recipient in Unicode; the stored address is its ASCII (punycode) form.
    const idn = () =>
      stack.smtp.messages.filter((m) =>
        m.envelope.to.some((t) => domainToASCII(t.split('@')[1]) === 'xn--bcher-kva.example'),
      );
    await stack.smtp.waitFor(() => stack.smtp.to('eve@example.com').length >= 1 && idn().length >= 1);
    const mails = [stack.smtp.to('eve@example.com')[0], idn()[0]];
    for (const m of mails) {
      expect(m.envelope.to).toHaveLength(1);
      const head = headerBlock(m.raw);
      for (const name of ['From', 'To', 'Subject', 'Date', 'Message-ID']) {
        expect(head.match(new RegExp(`^${name}:`, 'gim'))).toHaveLength(1);
      }
      expect(head).not.toMatch(/^(Bcc|Cc):/im);
      expect(m.parsed.html).not.toContain('<script>');
    }
    expect(mails[0].parsed.html).toContain('&lt;script&gt;');
    expect(
      mails[0].parsed.to && 'value' in mails[0].parsed.to ? mails[0].parsed.to.value.map((v) => v.address) : [],
    ).toEqual(['eve@example.com']);
    expect(mails[1].parsed.html).toContain('Zoë 😀');
    const ids = stack.smtp.messages.map((m) => m.parsed.messageId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
