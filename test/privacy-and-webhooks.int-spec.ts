import 'reflect-metadata';
import { createHmac } from 'node:crypto';
import { emailHash } from '../libs/subscriptions/src/tokens.js';
import { admin, waitUntil } from './support/admin.js';
import { type RunningApps, linkFrom, startApps, testConfig } from './support/apps.js';
import { createTestDatabase, query, seedDatabase } from './support/db.js';
import { postJson } from './support/http.js';
import { TestSmtp } from './support/smtp.js';

const PUBLIC = 'http://mailroom.test';
const MAILGUN_KEY = 'mailgun-signing-key-for-tests';
const SES_TOKEN = 'ses-token-for-tests-0123456789';

describe('subscriber records, privacy and bounce webhooks', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let apps: RunningApps;
  const status = async (email: string) =>
    (await query<{ status: string }>(db.url, `SELECT status FROM subscribers WHERE email = $1`, [email]))[0]?.status;
  const suppressionCount = async () =>
    (await query<{ n: number }>(db.url, `SELECT count(*)::int AS n FROM suppressions`))[0].n;

  async function activeReader(email: string, name = 'Sam'): Promise<void> {
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email, name, topics: ['Sciatica'] });
    await smtp.waitFor(() => smtp.to(email).length >= 1);
    const link = linkFrom(smtp.to(email).at(-1)!.parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(link.replace(PUBLIC, apps.baseUrl), { method: 'POST' })).status).toBe(200);
  }

  beforeAll(async () => {
    db = await createTestDatabase('privacy');
    await seedDatabase(db.url);
    smtp = await new TestSmtp().start();
    apps = await startApps(
      testConfig({
        dbUrl: db.url,
        smtpUrl: smtp.url,
        backend: 'postgres',
        env: {
          MAILGUN_WEBHOOK_SIGNING_KEY: MAILGUN_KEY,
          POSTMARK_WEBHOOK_USER: 'pm',
          POSTMARK_WEBHOOK_PASSWORD: 'pm-secret',
          SES_WEBHOOK_TOKEN: SES_TOKEN,
          PUBLIC_POSTS_PER_IP_PER_MINUTE: '10000',
        },
      }),
    );
  });

  afterAll(async () => {
    await apps?.close();
    await smtp?.stop();
    await db?.drop();
  });

  it('PATCH changes name, topics and unsubscribes, but never activates', async () => {
    await activeReader('patch@example.com');
    const res = await admin<{
      name: string;
      subscriptions: { newsletter: string; status: string; topics: string[] }[];
    }>(apps.baseUrl, 'PATCH', '/v1/subscribers/patch@example.com', {
      name: 'Samantha',
      topics: ['Neck Pain'],
      timezone: 'Europe/Berlin',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      name: 'Samantha',
      subscriptions: [{ newsletter: 'spine-health', status: 'active', topics: ['Neck Pain'] }],
    });
    expect(
      (
        await admin(apps.baseUrl, 'PATCH', '/v1/subscribers/patch@example.com', {
          newsletters: { 'spine-health': 'active' },
        })
      ).status,
    ).toBe(400);
    const un = await admin<{ subscriptions: { status: string }[] }>(
      apps.baseUrl,
      'PATCH',
      '/v1/subscribers/patch@example.com',
      {
        newsletters: { 'spine-health': 'unsubscribed' },
      },
    );
    expect(un.body.subscriptions[0].status).toBe('unsubscribed');
    expect((await admin(apps.baseUrl, 'PATCH', '/v1/subscribers/nobody@example.com', { name: 'x' })).status).toBe(404);
    expect(
      (await admin(apps.baseUrl, 'PATCH', '/v1/subscribers/patch@example.com', { timezone: 'Nowhere/Town' })).status,
    ).toBe(400);
  });

  it('exports everything stored about an address', async () => {
    const res = await admin<{
      subscriber: { email: string; name: string };
      subscriptions: unknown[];
      consentRecords: { action: string; consent_text: string | null }[];
      mailLog: { kind: string }[];
    }>(apps.baseUrl, 'GET', '/v1/subscribers/patch@example.com/export');
    expect(res.status).toBe(200);
    expect(res.body.subscriber).toMatchObject({ email: 'patch@example.com', name: 'Samantha' });
    expect(res.body.subscriptions).toHaveLength(1);
    expect(res.body.consentRecords.map((c) => c.action)).toEqual(['subscribe', 'confirm', 'unsubscribe']);
    expect(res.body.consentRecords[0].consent_text).toContain('We respect your privacy');
    await waitUntil(
      () => admin<{ mailLog: { kind: string }[] }>(apps.baseUrl, 'GET', '/v1/subscribers/patch@example.com/export'),
      (r) => r.body.mailLog.some((m) => m.kind === 'confirmation'),
      10_000,
      'mail log',
    );
  });

  it('erases personal data and keeps only a keyed hash; a later signup needs a new double opt-in', async () => {
    await activeReader('forget-me@example.com', 'Forget Me');
    expect((await admin(apps.baseUrl, 'DELETE', '/v1/subscribers/forget-me@example.com')).status).toBe(204);
    const dump = JSON.stringify(
      await query(
        db.url,
        `SELECT (SELECT json_agg(s) FROM subscribers s) a, (SELECT json_agg(c) FROM consent_records c) b, (SELECT json_agg(m) FROM mail_log m) c,
                (SELECT json_agg(o) FROM outbox o) d, (SELECT json_agg(t) FROM tokens t) e, (SELECT json_agg(x) FROM suppressions x) f`,
      ),
    );
    expect(dump).not.toContain('forget-me');
    expect(dump).not.toContain('Forget Me');
    const [sup] = await query<{ reason: string }>(db.url, `SELECT reason FROM suppressions WHERE email_hash = $1`, [
      emailHash(apps.config.appSecret, 'forget-me@example.com'),
    ]);
    expect(sup.reason).toBe('erased');
    expect((await admin(apps.baseUrl, 'GET', '/v1/subscribers/forget-me@example.com/export')).status).toBe(404);

    // Signing up again starts a new double opt-in; nothing but the confirmation is sent until it is confirmed.
    const before = smtp.to('forget-me@example.com').length;
    await postJson(`${apps.baseUrl}/v1/subscriptions`, { email: 'forget-me@example.com' });
    await smtp.waitFor(() => smtp.to('forget-me@example.com').length === before + 1);
    expect(smtp.to('forget-me@example.com').at(-1)!.parsed.subject).toContain('Please confirm');
    const link = linkFrom(smtp.to('forget-me@example.com').at(-1)!.parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(link.replace(PUBLIC, apps.baseUrl), { method: 'POST' })).status).toBe(200);
    expect(
      await query(db.url, `SELECT 1 FROM suppressions WHERE email_hash = $1`, [
        emailHash(apps.config.appSecret, 'forget-me@example.com'),
      ]),
    ).toHaveLength(0);
  });

  it('generic webhook (API key): hard bounce suppresses once, soft bounce does nothing', async () => {
    await activeReader('generic@example.com');
    expect((await fetch(`${apps.baseUrl}/v1/webhooks/generic`, { method: 'POST' })).status).toBe(401);
    const before = await suppressionCount();
    expect(
      (await admin(apps.baseUrl, 'POST', '/v1/webhooks/generic', { email: 'generic@example.com', type: 'soft' }))
        .status,
    ).toBe(200);
    expect(await status('generic@example.com')).toBe('ok');
    for (let i = 0; i < 3; i += 1) {
      expect(
        (await admin(apps.baseUrl, 'POST', '/v1/webhooks/generic', { email: 'generic@example.com', type: 'hard' }))
          .status,
      ).toBe(200);
    }
    expect(await suppressionCount()).toBe(before + 1);
    expect(await status('generic@example.com')).toBe('bounced');
    expect(
      (await admin(apps.baseUrl, 'POST', '/v1/webhooks/generic', { email: 'x@example.com', type: 'weird' })).status,
    ).toBe(400);
  });

  it('Mailgun: verified HMAC; complaint suppresses; bad signature → 401 and no change', async () => {
    await activeReader('mailgun@example.com');
    const sign = (timestamp: string, token: string) =>
      createHmac('sha256', MAILGUN_KEY)
        .update(timestamp + token)
        .digest('hex');
    const ts = String(Math.floor(Date.now() / 1000));
    const payload = (signature: string) => ({
      signature: { timestamp: ts, token: 'abc123token', signature },
      'event-data': { event: 'complained', recipient: 'mailgun@example.com', timestamp: Number(ts) },
    });
    const bad = await postJson(`${apps.baseUrl}/v1/webhooks/mailgun`, payload('0'.repeat(64)));
    expect(bad.status).toBe(401);
    expect(await status('mailgun@example.com')).toBe('ok');
    const good = await postJson(`${apps.baseUrl}/v1/webhooks/mailgun`, payload(sign(ts, 'abc123token')));
    expect(good.status).toBe(200);
    expect(await status('mailgun@example.com')).toBe('complained');
  });

  it('Postmark: basic auth; HardBounce suppresses, SoftBounce does not', async () => {
    await activeReader('postmark@example.com');
    await activeReader('postmark-soft@example.com');
    const auth = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    const body = (email: string, type: string) => ({
      RecordType: 'Bounce',
      Type: type,
      TypeCode: 1,
      Email: email,
      BouncedAt: new Date().toISOString(),
    });
    expect(
      (
        await postJson(
          `${apps.baseUrl}/v1/webhooks/postmark`,
          body('postmark@example.com', 'HardBounce'),
          auth('pm', 'wrong'),
        )
      ).status,
    ).toBe(401);
    expect(await status('postmark@example.com')).toBe('ok');
    expect(
      (
        await postJson(
          `${apps.baseUrl}/v1/webhooks/postmark`,
          body('postmark@example.com', 'HardBounce'),
          auth('pm', 'pm-secret'),
        )
      ).status,
    ).toBe(200);
    expect(
      (
        await postJson(
          `${apps.baseUrl}/v1/webhooks/postmark`,
          body('postmark-soft@example.com', 'SoftBounce'),
          auth('pm', 'pm-secret'),
        )
      ).status,
    ).toBe(200);
    expect(await status('postmark@example.com')).toBe('bounced');
    expect(await status('postmark-soft@example.com')).toBe('ok');
  });

  it('SES via SNS: token required; permanent bounce and complaint suppress; transient does not', async () => {
    await activeReader('ses-hard@example.com');
    await activeReader('ses-soft@example.com');
    const sns = (message: unknown) =>
      JSON.stringify({
        Type: 'Notification',
        MessageId: 'a1b2',
        TopicArn: 'arn:aws:sns:us-east-1:123456789012:ses-bounces',
        Message: JSON.stringify(message),
        Timestamp: new Date().toISOString(),
      });
    const post = (body: string, token = SES_TOKEN) =>
      fetch(`${apps.baseUrl}/v1/webhooks/ses?token=${token}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain; charset=UTF-8' },
        body,
      });
    const permanent = sns({
      notificationType: 'Bounce',
      bounce: {
        bounceType: 'Permanent',
        bounceSubType: 'General',
        bouncedRecipients: [{ emailAddress: 'ses-hard@example.com' }],
      },
      mail: { destination: ['ses-hard@example.com'] },
    });
    expect((await post(permanent, 'wrong-token')).status).toBe(401);
    expect(await status('ses-hard@example.com')).toBe('ok');
    expect((await post(permanent)).status).toBe(200);
    expect(
      (
        await post(
          sns({
            notificationType: 'Bounce',
            bounce: {
              bounceType: 'Transient',
              bounceSubType: 'MailboxFull',
              bouncedRecipients: [{ emailAddress: 'ses-soft@example.com' }],
            },
          }),
        )
      ).status,
    ).toBe(200);
    expect(await status('ses-hard@example.com')).toBe('bounced');
    expect(await status('ses-soft@example.com')).toBe('ok');
    // The subscription handshake only ever calls an SNS host.
    const handshake = JSON.stringify({
      Type: 'SubscriptionConfirmation',
      SubscribeURL: 'https://evil.example/confirm',
      TopicArn: 'x',
    });
    expect((await post(handshake)).status).toBe(400);
  });

  it('a suppressed address is skipped by the next digest and gets no confirmation', async () => {
    const before = smtp.to('ses-hard@example.com').length;
    await postJson(`${apps.baseUrl}/v1/subscriptions`, {
      email: 'ses-hard@example.com',
      newsletters: ['sports-health'],
    });
    const d = await admin<{ id: string }>(apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    await waitUntil(
      () => admin<{ status: string }>(apps.baseUrl, 'GET', `/v1/digests/${d.body.id}`),
      (r) => r.body.status === 'sent',
      30_000,
      'digest',
    );
    expect(smtp.to('ses-hard@example.com').length).toBe(before);
    expect(smtp.to('ses-soft@example.com').length).toBeGreaterThan(2);
  });
});
