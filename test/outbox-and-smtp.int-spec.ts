import 'reflect-metadata';
import { domainToASCII } from 'node:url';
import { type RunningApps, headerBlock, startApps, testConfig } from './support/apps.js';
import { createTestDatabase, query, seedDatabase } from './support/db.js';
import { postJson, sleep } from './support/http.js';
import { ThrowawayRedis, freePort } from './support/redis-server.js';
import { TestSmtp } from './support/smtp.js';

describe('the outbox delivers once the queue is back', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let redis: ThrowawayRedis;
  let apps: RunningApps | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('outbox');
    await seedDatabase(db.url);
    smtp = await new TestSmtp().start();
    redis = new ThrowawayRedis(await freePort());
  });
  afterAll(async () => {
    // The queue must answer for a clean close.
    if (apps) await redis.start().catch(() => undefined);
    await apps?.close();
    await redis?.stop();
    await smtp?.stop();
    await db?.drop();
  });

  it('a subscribe while Redis is down gets its 202, and its one confirmation when Redis returns', async () => {
    const config = testConfig({ dbUrl: db.url, smtpUrl: smtp.url, backend: 'redis' });
    config.queue.redisUrl = redis.url; // nothing listens there yet
    apps = await startApps(config);

    const health = await fetch(`${apps.baseUrl}/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: 'error', error: { queue: { status: 'down' } } });

    const res = await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'patient@example.com' });
    expect(res.status).toBe(202);
    await sleep(1500);
    expect(smtp.to('patient@example.com')).toHaveLength(0);
    const [pending] = await query<{ n: number }>(
      db.url,
      `SELECT count(*)::int AS n FROM outbox WHERE dispatched_at IS NULL`,
    );
    expect(pending.n).toBe(1);

    await redis.start();
    await smtp.waitFor(() => smtp.to('patient@example.com').length >= 1, 30_000);
    await sleep(1500);
    expect(smtp.to('patient@example.com')).toHaveLength(1);
    expect((await fetch(`${apps.baseUrl}/health`)).status).toBe(200);
  });
});

describe('SMTP replies and message hygiene', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let apps: RunningApps;

  beforeAll(async () => {
    db = await createTestDatabase('smtp');
    await seedDatabase(db.url);
    smtp = await new TestSmtp().start();
    apps = await startApps(
      testConfig({
        dbUrl: db.url,
        smtpUrl: smtp.url,
        backend: 'postgres',
        env: { PUBLIC_POSTS_PER_IP_PER_MINUTE: '10000' },
      }),
    );
  });
  afterAll(async () => {
    await apps?.close();
    await smtp?.stop();
    await db?.drop();
  });

  it('4xx replies are retried with backoff until delivered', async () => {
    let refusals = 0;
    smtp.rcptHook = (addr) =>
      addr === 'greylisted@example.com' && refusals++ < 2
        ? { code: 451, message: '4.7.1 Greylisted, try later' }
        : null;
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'greylisted@example.com' });
    await smtp.waitFor(() => smtp.to('greylisted@example.com').length >= 1, 30_000);
    expect(refusals).toBe(3);
    expect(smtp.to('greylisted@example.com')).toHaveLength(1);
  });

  it('550 5.1.1 is tried once and suppresses the address for every newsletter', async () => {
    let tries = 0;
    smtp.rcptHook = (addr) => {
      if (addr !== 'nobody@example.com') return null;
      tries += 1;
      return { code: 550, message: '5.1.1 <nobody@example.com>: Recipient address rejected: User unknown' };
    };
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'nobody@example.com' });
    for (let i = 0; i < 50; i += 1) {
      const rows = await query<{ status: string }>(
        db.url,
        `SELECT status FROM subscribers WHERE email = 'nobody@example.com'`,
      );
      if (rows[0]?.status === 'bounced') break;
      await sleep(100);
    }
    await sleep(500);
    expect(tries).toBe(1);
    const [sub] = await query<{ status: string }>(
      db.url,
      `SELECT status FROM subscribers WHERE email = 'nobody@example.com'`,
    );
    expect(sub.status).toBe('bounced');
    expect(await query(db.url, `SELECT reason FROM suppressions`)).toEqual([{ reason: 'bounced' }]);
    const log = await query<{ status: string; detail: string }>(
      db.url,
      `SELECT status, detail FROM mail_log WHERE kind = 'confirmation' AND status = 'failed'`,
    );
    expect(log).toHaveLength(1);
    // Another newsletter, later: nothing is sent.
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'nobody@example.com', newsletters: ['sports-health'] });
    await sleep(800);
    expect(tries).toBe(1);
  });

  it('554 5.7.1 (policy) fails the message without suppressing anyone', async () => {
    let tries = 0;
    smtp.rcptHook = (addr) => {
      if (addr !== 'policy@example.com') return null;
      tries += 1;
      return { code: 554, message: '5.7.1 Message rejected by policy' };
    };
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'policy@example.com' });
    await sleep(1500);
    expect(tries).toBe(1);
    const [sub] = await query<{ status: string }>(
      db.url,
      `SELECT status FROM subscribers WHERE email = 'policy@example.com'`,
    );
    expect(sub.status).toBe('ok');
  });

  it('every mail has one recipient, no injected header, unique Message-ID, and escaped values', async () => {
    smtp.rcptHook = () => null;
    const evilName = 'Eve "</a><script>alert(1)</script>" Bcc: victim@example.com';
    const res = await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'eve@example.com', name: evilName });
    expect(res.status).toBe(202);
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'Ünïcødé@bücher.example', name: 'Zoë Ünïcødé' }).then(
      (r) => expect(r.status).toBe(400),
    );
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'idn@bücher.example', name: 'Zoë 😀' });
    // smtp-server reports the IDN recipient in Unicode; the stored address is its ASCII (punycode) form.
    const idn = () =>
      smtp.messages.filter((m) =>
        m.envelope.to.some((t) => domainToASCII(t.split('@')[1]) === 'xn--bcher-kva.example'),
      );
    await smtp.waitFor(() => smtp.to('eve@example.com').length >= 1 && idn().length >= 1);
    const mails = [smtp.to('eve@example.com')[0], idn()[0]];
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
    const ids = smtp.messages.map((m) => m.parsed.messageId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
