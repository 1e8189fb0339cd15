import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { signToken, verifyToken } from '../../libs/subscriptions/src/tokens.js';
import { type RunningApps, headerBlock, linkFrom, startApps, testConfig } from '../support/apps.js';
import { createTestDatabase, query, seedDatabase } from '../support/db.js';
import { postJson } from '../support/http.js';
import { TestSmtp } from '../support/smtp.js';

const PUBLIC = 'http://mailroom.test';

describe('abuse and token guessing', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let apps: RunningApps;

  beforeAll(async () => {
    db = await createTestDatabase('abuse');
    await seedDatabase(db.url);
    smtp = await new TestSmtp().start();
    apps = await startApps(
      testConfig({
        dbUrl: db.url,
        smtpUrl: smtp.url,
        backend: 'postgres',
        env: { TRUST_PROXY: 'true', PUBLIC_POSTS_PER_IP_PER_MINUTE: '12' },
      }),
    );
  });

  afterAll(async () => {
    await apps?.close();
    await smtp?.stop();
    await db?.drop();
  });

  it('1 000 signups of one address from 100 IPs: at most 3 confirmation mails, and 429 past each IP limit', async () => {
    const codes = new Map<number, number>();
    for (let ip = 0; ip < 100; ip += 1) {
      const batch = await Promise.all(
        Array.from({ length: 10 }, () =>
          postJson(
            `${apps.baseUrl}/v1/subscriptions`,
            { email: 'target@example.com' },
            { 'x-forwarded-for': `198.51.100.${ip}` },
          ).then((r) => r.status),
        ),
      );
      for (const c of batch) codes.set(c, (codes.get(c) ?? 0) + 1);
    }
    expect(codes.get(202)).toBe(1000);
    // The same IP past its limit is refused.
    const extra = [];
    for (let i = 0; i < 3; i += 1)
      extra.push(
        (
          await postJson(
            `${apps.baseUrl}/v1/subscriptions`,
            { email: `x${i}@example.com` },
            { 'x-forwarded-for': '198.51.100.7' },
          )
        ).status,
      );
    expect(extra).toEqual([202, 202, 429]); // 12 a minute per IP: 10 used above
    await smtp.waitFor(() => smtp.to('target@example.com').length >= 3);
    await new Promise((r) => setTimeout(r, 1500));
    expect(smtp.to('target@example.com')).toHaveLength(3);
  });

  it('100 000 random and bit-flipped tokens verify as nothing', () => {
    const secret = apps.config.appSecret;
    const valid = signToken(secret, 'unsubscribe', '12345');
    let accepted = 0;
    for (let i = 0; i < 50_000; i += 1) {
      const random = `${Math.floor(Math.random() * 1e6) + 1}.0.${randomBytes(16).toString('base64url')}`;
      if (verifyToken(secret, 'unsubscribe', random).ok || verifyToken(secret, 'guide', random).ok) accepted += 1;
    }
    const bytes = Buffer.from(valid);
    for (let i = 0; i < 50_000; i += 1) {
      const flipped = Buffer.from(bytes);
      const pos = i % flipped.length;
      flipped[pos] ^= 1 << (i % 7);
      const t = flipped.toString('latin1');
      if (t !== valid && verifyToken(secret, 'unsubscribe', t).ok) accepted += 1;
    }
    expect(accepted).toBe(0);
  });

  it('2 000 guessed links over HTTP change nothing', async () => {
    const email = 'guarded@example.com';
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email }, { 'x-forwarded-for': '203.0.113.200' });
    await smtp.waitFor(() => smtp.to(email).length >= 1);
    const link = linkFrom(smtp.to(email)[0].parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect(
      (
        await fetch(link.replace(PUBLIC, apps.baseUrl), {
          method: 'POST',
          headers: { 'x-forwarded-for': '203.0.113.201' },
        })
      ).status,
    ).toBe(200);
    await smtp.waitFor(() => smtp.to(email).length >= 2);
    const unsub = /<(http[^>]+)>/.exec(/^List-Unsubscribe: (.*)$/m.exec(headerBlock(smtp.to(email)[1].raw))![1])![1];
    const [id, exp, mac] = unsub.split('/').pop()!.split('.');
    const statuses = new Set<number>();
    for (let i = 0; i < 2000; i += 1) {
      const flip = mac.split('');
      flip[i % flip.length] = flip[i % flip.length] === 'A' ? 'B' : 'A';
      const guesses = [
        `/unsubscribe/${id}.${exp}.${flip.join('')}`,
        `/unsubscribe/${Number(id) + (i % 50) + 1}.${exp}.${mac}`,
        `/confirm/${randomBytes(32).toString('base64url')}`,
        `/guides/natural-back-pain-relief/${id}.${exp}.${mac}`,
      ];
      const path = guesses[i % guesses.length];
      const res = await fetch(`${apps.baseUrl}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-forwarded-for': `10.9.${Math.floor(i / 250)}.${i % 250}`,
        },
        body: 'List-Unsubscribe=One-Click',
      });
      statuses.add(res.status);
    }
    expect([...statuses].every((s) => s === 404)).toBe(true);
    const [row] = await query<{ status: string }>(
      db.url,
      `SELECT s.status FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email = $1`,
      [email],
    );
    expect(row.status).toBe('active');
  });
});
