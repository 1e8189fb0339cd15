import 'reflect-metadata';
import { createHmac } from 'node:crypto';
import { emailHash } from '#subscriptions/tokens.js';
import { admin, waitUntil } from './support/admin.js';
import { linkFrom } from './support/apps.js';
import { query } from './support/db.js';
import { postJson } from './support/http.js';
import { FakeSns, selfSignedCertificate } from './support/sns.js';
import { useStack } from './support/stack.js';

const PUBLIC = 'http://mailroom.test';
const MAILGUN_KEY = 'mailgun-signing-key-for-tests';
const SES_TOKEN = 'ses-token-for-tests-0123456789';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:ses-bounces';

describe('subscriber records, privacy and bounce webhooks', () => {
  let sns: FakeSns;
  // Before the stack: the config names this server's origin.
  beforeAll(async () => {
    sns = await new FakeSns().start();
  });
  const stack = useStack({
    label: 'privacy',
    env: () => ({
      MAILGUN_WEBHOOK_SIGNING_KEY: MAILGUN_KEY,
      POSTMARK_WEBHOOK_USER: 'pm',
      POSTMARK_WEBHOOK_PASSWORD: 'pm-secret',
      SES_WEBHOOK_TOKEN: SES_TOKEN,
      // Our stand-in for SNS: a local origin instead of https://sns.<region>.amazonaws.com.
      SES_SNS_ORIGIN_PATTERN: sns.originPattern,
      SES_SNS_TOPIC_ARNS: TOPIC,
      PUBLIC_POSTS_PER_IP_PER_MINUTE: '10000',
    }),
  });
  afterAll(async () => {
    await sns?.stop();
  });
  const status = async (email: string) =>
    (await query<{ status: string }>(stack.db.url, `SELECT status FROM subscribers WHERE email = $1`, [email]))[0]
      ?.status;
  const suppressionCount = async () =>
    (await query<{ n: number }>(stack.db.url, `SELECT count(*)::int AS n FROM suppressions`))[0].n;

  async function activeReader(email: string, name = 'Sam'): Promise<void> {
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email, name, topics: ['Sciatica'] });
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    const link = linkFrom(stack.smtp.to(email).at(-1)!.parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(link.replace(PUBLIC, stack.apps.baseUrl), { method: 'POST' })).status).toBe(200);
  }

  it('PATCH changes name, topics and unsubscribes, but never activates', async () => {
    await activeReader('patch@example.com');
    const res = await admin<{
      name: string;
      subscriptions: { newsletter: string; status: string; topics: string[] }[];
    }>(stack.apps.baseUrl, 'PATCH', '/v1/subscribers/patch@example.com', {
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
        await admin(stack.apps.baseUrl, 'PATCH', '/v1/subscribers/patch@example.com', {
          newsletters: { 'spine-health': 'active' },
        })
      ).status,
    ).toBe(400);
    const un = await admin<{ subscriptions: { status: string }[] }>(
      stack.apps.baseUrl,
      'PATCH',
      '/v1/subscribers/patch@example.com',
      {
        newsletters: { 'spine-health': 'unsubscribed' },
      },
    );
    expect(un.body.subscriptions[0].status).toBe('unsubscribed');
    expect((await admin(stack.apps.baseUrl, 'PATCH', '/v1/subscribers/nobody@example.com', { name: 'x' })).status).toBe(
      404,
    );
    expect(
      (await admin(stack.apps.baseUrl, 'PATCH', '/v1/subscribers/patch@example.com', { timezone: 'Nowhere/Town' }))
        .status,
    ).toBe(400);
  });

  it('exports everything stored about an address', async () => {
    const res = await admin<{
      subscriber: { email: string; name: string };
      subscriptions: unknown[];
      consentRecords: { action: string; consent_text: string | null }[];
      mailLog: { kind: string }[];
    }>(stack.apps.baseUrl, 'GET', '/v1/subscribers/patch@example.com/export');
    expect(res.status).toBe(200);
    expect(res.body.subscriber).toMatchObject({ email: 'patch@example.com', name: 'Samantha' });
    expect(res.body.subscriptions).toHaveLength(1);
    expect(res.body.consentRecords.map((c) => c.action)).toEqual(['subscribe', 'confirm', 'unsubscribe']);
    expect(res.body.consentRecords[0].consent_text).toContain('We respect your privacy');
    await waitUntil(
      () =>
        admin<{ mailLog: { kind: string }[] }>(stack.apps.baseUrl, 'GET', '/v1/subscribers/patch@example.com/export'),
      (r) => r.body.mailLog.some((m) => m.kind === 'confirmation'),
      10_000,
      'mail log',
    );
  });

  it('erases personal data and keeps only a keyed hash; a later signup needs a new double opt-in', async () => {
    await activeReader('forget-me@example.com', 'Forget Me');
    expect((await admin(stack.apps.baseUrl, 'DELETE', '/v1/subscribers/forget-me@example.com')).status).toBe(204);
    const dump = JSON.stringify(
      await query(
        stack.db.url,
        `SELECT (SELECT json_agg(s) FROM subscribers s) a, (SELECT json_agg(c) FROM consent_records c) b, (SELECT json_agg(m) FROM mail_log m) c,
                (SELECT json_agg(o) FROM outbox o) d, (SELECT json_agg(t) FROM tokens t) e, (SELECT json_agg(x) FROM suppressions x) f`,
      ),
    );
    expect(dump).not.toContain('forget-me');
    expect(dump).not.toContain('Forget Me');
    const [sup] = await query<{ reason: string }>(
      stack.db.url,
      `SELECT reason FROM suppressions WHERE email_hash = $1`,
      [emailHash(stack.apps.config.appSecret, 'forget-me@example.com')],
    );
    expect(sup.reason).toBe('erased');
    expect((await admin(stack.apps.baseUrl, 'GET', '/v1/subscribers/forget-me@example.com/export')).status).toBe(404);

    // Signing up again starts a new double opt-in; nothing but the confirmation is sent until it is confirmed.
    const before = stack.smtp.to('forget-me@example.com').length;
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'forget-me@example.com' });
    await stack.smtp.waitFor(() => stack.smtp.to('forget-me@example.com').length === before + 1);
    expect(stack.smtp.to('forget-me@example.com').at(-1)!.parsed.subject).toContain('Please confirm');
    const link = linkFrom(stack.smtp.to('forget-me@example.com').at(-1)!.parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(link.replace(PUBLIC, stack.apps.baseUrl), { method: 'POST' })).status).toBe(200);
    expect(
      await query(stack.db.url, `SELECT 1 FROM suppressions WHERE email_hash = $1`, [
        emailHash(stack.apps.config.appSecret, 'forget-me@example.com'),
      ]),
    ).toHaveLength(0);
  });

  it('generic webhook (API key): hard bounce suppresses once, soft bounce does nothing', async () => {
    await activeReader('generic@example.com');
    expect((await fetch(`${stack.apps.baseUrl}/v1/webhooks/generic`, { method: 'POST' })).status).toBe(401);
    const before = await suppressionCount();
    expect(
      (await admin(stack.apps.baseUrl, 'POST', '/v1/webhooks/generic', { email: 'generic@example.com', type: 'soft' }))
        .status,
    ).toBe(200);
    expect(await status('generic@example.com')).toBe('ok');
    for (let i = 0; i < 3; i += 1) {
      expect(
        (
          await admin(stack.apps.baseUrl, 'POST', '/v1/webhooks/generic', {
            email: 'generic@example.com',
            type: 'hard',
          })
        ).status,
      ).toBe(200);
    }
    expect(await suppressionCount()).toBe(before + 1);
    expect(await status('generic@example.com')).toBe('bounced');
    expect(
      (await admin(stack.apps.baseUrl, 'POST', '/v1/webhooks/generic', { email: 'x@example.com', type: 'weird' }))
        .status,
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
    const bad = await postJson(`${stack.apps.baseUrl}/v1/webhooks/mailgun`, payload('0'.repeat(64)));
    expect(bad.status).toBe(401);
    expect(await status('mailgun@example.com')).toBe('ok');
    const good = await postJson(`${stack.apps.baseUrl}/v1/webhooks/mailgun`, payload(sign(ts, 'abc123token')));
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
          `${stack.apps.baseUrl}/v1/webhooks/postmark`,
          body('postmark@example.com', 'HardBounce'),
          auth('pm', 'wrong'),
        )
      ).status,
    ).toBe(401);
    expect(await status('postmark@example.com')).toBe('ok');
    expect(
      (
        await postJson(
          `${stack.apps.baseUrl}/v1/webhooks/postmark`,
          body('postmark@example.com', 'HardBounce'),
          auth('pm', 'pm-secret'),
        )
      ).status,
    ).toBe(200);
    expect(
      (
        await postJson(
          `${stack.apps.baseUrl}/v1/webhooks/postmark`,
          body('postmark-soft@example.com', 'SoftBounce'),
          auth('pm', 'pm-secret'),
        )
      ).status,
    ).toBe(200);
    expect(await status('postmark@example.com')).toBe('bounced');
    expect(await status('postmark-soft@example.com')).toBe('ok');
  });

  describe('SES via SNS', () => {
    let seq = 0;
    /** An SES event in an SNS Notification envelope, as SNS delivers it (before signing). */
    const notification = (message: unknown, topic = TOPIC): Record<string, string> => ({
      Type: 'Notification',
      MessageId: `0b2d4e6f-0000-4000-8000-${String((seq += 1)).padStart(12, '0')}`,
      TopicArn: topic,
      Message: JSON.stringify(message),
      Timestamp: new Date().toISOString(),
      UnsubscribeURL: `${sns.origin}/?Action=Unsubscribe&SubscriptionArn=${topic}:sub`,
    });
    const bounce = (email: string, bounceType: 'Permanent' | 'Transient', bounceSubType: string) => ({
      notificationType: 'Bounce',
      bounce: {
        bounceType,
        bounceSubType,
        bouncedRecipients: [
          {
            emailAddress: email,
            action: 'failed',
            status: bounceType === 'Permanent' ? '5.1.1' : '4.2.2',
            diagnosticCode:
              bounceType === 'Permanent' ? 'smtp; 550 5.1.1 user unknown' : 'smtp; 452 4.2.2 mailbox full',
          },
        ],
        timestamp: new Date().toISOString(),
        feedbackId: '0100017f-bounce',
      },
      mail: {
        timestamp: new Date().toISOString(),
        source: 'newsletter@spine-health.example',
        messageId: '0100017f-mail',
        destination: [email],
      },
    });
    const complaint = (email: string) => ({
      notificationType: 'Complaint',
      complaint: {
        complainedRecipients: [{ emailAddress: email }],
        timestamp: new Date().toISOString(),
        feedbackId: '0100017f-complaint',
        complaintFeedbackType: 'abuse',
      },
      mail: { timestamp: new Date().toISOString(), source: 'newsletter@spine-health.example', destination: [email] },
    });
    const post = (body: unknown, token = SES_TOKEN) =>
      fetch(`${stack.apps.baseUrl}/v1/webhooks/ses?token=${token}`, {
        method: 'POST',
        // SNS sends JSON as text/plain.
        headers: { 'content-type': 'text/plain; charset=UTF-8' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });

    it('signed (SignatureVersion 1 and 2): permanent bounce and complaint suppress once; transient does not', async () => {
      await activeReader('ses-hard@example.com');
      await activeReader('ses-soft@example.com');
      await activeReader('ses-complaint@example.com');
      const before = await suppressionCount();
      const hard = sns.sign(notification(bounce('ses-hard@example.com', 'Permanent', 'General')));
      expect((await post(hard, 'wrong-token')).status).toBe(401);
      expect(await status('ses-hard@example.com')).toBe('ok');
      // SNS may deliver the same message more than once.
      for (let i = 0; i < 3; i += 1) expect((await post(hard)).status).toBe(200);
      const soft = sns.sign(notification(bounce('ses-soft@example.com', 'Transient', 'MailboxFull')), { version: '1' });
      expect((await post(soft)).status).toBe(200);
      const res = await post(sns.sign(notification(complaint('ses-complaint@example.com')), { version: '1' }));
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'processed', events: 1 });
      expect(await status('ses-hard@example.com')).toBe('bounced');
      expect(await status('ses-soft@example.com')).toBe('ok');
      expect(await status('ses-complaint@example.com')).toBe('complained');
      expect(await suppressionCount()).toBe(before + 2);
    });

    it('a bad signature, a foreign certificate host or an unknown topic → 401 and no change', async () => {
      await activeReader('ses-forged@example.com');
      const before = await suppressionCount();
      const fetchesBefore = sns.requests.length;
      const good = sns.sign(notification(bounce('ses-forged@example.com', 'Permanent', 'General')));
      const forger = selfSignedCertificate('sns.test');
      const attempts: { why: string; body: unknown }[] = [
        { why: 'unsigned', body: notification(bounce('ses-forged@example.com', 'Permanent', 'General')) },
        {
          why: 'message changed after signing',
          body: { ...good, Message: JSON.stringify(complaint('ses-forged@example.com')) },
        },
        {
          why: 'signature flipped',
          body: { ...good, Signature: (good.Signature.startsWith('A') ? 'B' : 'A') + good.Signature.slice(1) },
        },
        { why: 'SHA1 label on a SHA256 signature', body: { ...good, SignatureVersion: '1' } },
        { why: 'unknown signature version', body: { ...good, SignatureVersion: '3' } },
        {
          why: 'signed by another key, pointing at the real certificate',
          body: sns.sign(notification(bounce('ses-forged@example.com', 'Permanent', 'General')), {
            key: forger.privateKey,
          }),
        },
        {
          why: 'certificate on a foreign host',
          body: sns.sign(notification(bounce('ses-forged@example.com', 'Permanent', 'General')), {
            certUrl: 'https://evil.example/SimpleNotificationService-test.pem',
          }),
        },
        {
          why: 'certificate on another origin of the same machine',
          body: sns.sign(notification(bounce('ses-forged@example.com', 'Permanent', 'General')), {
            certUrl: `http://localhost:${sns.port}/SimpleNotificationService-test.pem`,
          }),
        },
        {
          why: 'validly signed, but for a topic we do not listen to',
          body: sns.sign(
            notification(bounce('ses-forged@example.com', 'Permanent', 'General'), `${TOPIC.slice(0, -1)}X`),
          ),
        },
      ];
      const statuses = [];
      for (const a of attempts) statuses.push(`${a.why}: ${(await post(a.body)).status}`);
      expect(statuses).toEqual(attempts.map((a) => `${a.why}: 401`));
      expect(await status('ses-forged@example.com')).toBe('ok');
      expect(await suppressionCount()).toBe(before);
      // The certificate was fetched once at most (it is cached), and never from elsewhere.
      expect(sns.requests.slice(fetchesBefore).every((r) => r === '/SimpleNotificationService-test.pem')).toBe(true);
      expect((await post('not json')).status).toBe(400);
    });

    it('the signed SubscriptionConfirmation handshake calls SubscribeURL, only on an SNS origin', async () => {
      const handshake = (subscribeUrl: string, type = 'SubscriptionConfirmation') => ({
        Type: type,
        MessageId: `165545c9-2a5c-472c-8df2-${String((seq += 1)).padStart(12, '0')}`,
        Token: 'a'.repeat(64),
        TopicArn: TOPIC,
        Message: `You have chosen to subscribe to the topic ${TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
        SubscribeURL: subscribeUrl,
        Timestamp: new Date().toISOString(),
      });
      const confirmUrl = `${sns.origin}/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=${'a'.repeat(64)}`;
      // Unsigned: nothing is fetched.
      expect((await post(handshake(confirmUrl))).status).toBe(401);
      expect(sns.requests.filter((r) => r.startsWith('/?Action=ConfirmSubscription'))).toHaveLength(0);
      // Signed: confirmed by calling SubscribeURL.
      const ok = await post(sns.sign(handshake(confirmUrl)));
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ status: 'subscribed', events: 0 });
      expect(sns.requests.filter((r) => r.startsWith('/?Action=ConfirmSubscription'))).toHaveLength(1);
      // Even signed, a SubscribeURL off SNS is never called.
      expect((await post(sns.sign(handshake('https://evil.example/confirm')))).status).toBe(400);
      // UnsubscribeConfirmation is verified, then acknowledged.
      const bye = await post(sns.sign(handshake(confirmUrl, 'UnsubscribeConfirmation'), { version: '1' }));
      expect(bye.status).toBe(200);
      expect(await bye.json()).toEqual({ status: 'ignored', events: 0 });
      expect(sns.requests.filter((r) => r.startsWith('/?Action=ConfirmSubscription'))).toHaveLength(1);
    });
  });

  it('a suppressed address is skipped by the next digest and gets no confirmation', async () => {
    const before = stack.smtp.to('ses-hard@example.com').length;
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, {
      email: 'ses-hard@example.com',
      newsletters: ['sports-health'],
    });
    const d = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    await waitUntil(
      () => admin<{ status: string }>(stack.apps.baseUrl, 'GET', `/v1/digests/${d.body.id}`),
      (r) => r.body.status === 'sent',
      30_000,
      'digest',
    );
    expect(stack.smtp.to('ses-hard@example.com').length).toBe(before);
    expect(stack.smtp.to('ses-soft@example.com').length).toBeGreaterThan(2);
  });
});
