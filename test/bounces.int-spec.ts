import 'reflect-metadata';
import nodemailer from 'nodemailer';
import { BounceListener } from '../apps/worker/src/bounces/bounce-listener.service.js';
import { BounceIntake } from '#mail/bounces/bounce-intake.service.js';
import {
  bounceKey,
  type BounceRef,
  mintBounceToken,
  readBounceToken,
  tokenOfAddress,
} from '#mail/bounces/bounce-token.js';
import { admin, waitUntil } from './support/admin.js';
import { type Backend, linkFrom } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { bounceSample } from './support/bounce-samples.js';
import { query } from './support/db.js';
import { postJson } from './support/http.js';
import { freePort } from './support/redis-server.js';
import { type Stack, useStack } from './support/stack.js';

const PUBLIC = 'http://mailroom.test';
const BOUNCE_DOMAIN = 'bounces.mailroom.test';

interface Digest {
  id: string;
  status: string;
  sent: number;
}

/** Delivers a report to the worker's bounce listener over SMTP, from the null sender as relays do. */
async function deliverReport(port: number, to: string, raw: string): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    await transport.sendMail({ envelope: { from: '', to: [to] }, raw });
  } finally {
    transport.close();
  }
}

function digestHelpers(stack: Stack) {
  const digest = (id: string) => admin<Digest>(stack.apps.baseUrl, 'GET', `/v1/digests/${id}`).then((r) => r.body);
  return {
    async sendDigest(): Promise<string> {
      const created = await admin<{ id: string }>(
        stack.apps.baseUrl,
        'POST',
        '/v1/newsletters/spine-health/digests',
        {},
      );
      expect(created.status).toBe(201);
      const d = await waitUntil(
        () => digest(created.body.id),
        (x) => !['scheduled', 'sending'].includes(x.status),
        60_000,
        `digest ${created.body.id}`,
      );
      expect(d.status).toBe('sent');
      return d.id;
    },
    async subscriberStatus(email: string): Promise<string | undefined> {
      const res = await admin<{ items: { email: string; status: string }[] }>(
        stack.apps.baseUrl,
        'GET',
        `/v1/subscribers?email=${encodeURIComponent(email)}`,
      );
      return res.body.items[0]?.status;
    },
    async subscriberId(email: string): Promise<string> {
      return (await query<{ id: string }>(stack.db.url, `SELECT id FROM subscribers WHERE email = $1`, [email]))[0].id;
    },
  };
}

describe.each<Backend>(['postgres', 'redis'])('bounces by VERP and SMTP on the %s queue backend', (backend) => {
  let port = 0;
  beforeAll(async () => {
    port = await freePort();
  });
  const stack = useStack({
    label: `bounces_${backend}`,
    queue: backend,
    env: () => ({
      BOUNCE_DOMAIN,
      BOUNCE_SMTP_PORT: String(port),
      BOUNCE_SMTP_HOST: '127.0.0.1',
      SEND_RATE_PER_SECOND: '100000',
      PUBLIC_POSTS_PER_IP_PER_MINUTE: '10000',
    }),
    prepare: async () => {
      readers = await addAudience(stack.db.url, { prefix: 'reader', count: 15, newsletter: 'spine-health' });
      // A non-ASCII address does not fit the spliced fast path: its message is built by nodemailer.
      await query(
        stack.db.url,
        `WITH s AS (INSERT INTO subscribers (email, name) VALUES ('zoë@example.com', 'Zoë') RETURNING id)
         INSERT INTO subscriptions (subscriber_id, newsletter_id, status, confirmed_at)
         SELECT s.id, (SELECT id FROM newsletters WHERE slug = 'spine-health'), 'active', now() FROM s`,
      );
    },
  });
  let readers: string[] = [];
  const h = digestHelpers(stack);
  const key = () => bounceKey(stack.config.appSecret);
  /** What the envelope sender of a mail to `email` (the last by default) names: its VERP token, read with the app's key. */
  const verpOf = (email: string, nth = -1): { address: string; ref: BounceRef | null } => {
    const mail = stack.smtp.to(email).at(nth);
    if (!mail) throw new Error(`No mail to ${email}`);
    const token = tokenOfAddress(mail.envelope.from, BOUNCE_DOMAIN);
    return { address: mail.envelope.from, ref: token === null ? null : readBounceToken(key(), token) };
  };
  const reports = (email: string) =>
    query<{ outcome: string; status: string | null; mail_kind: string; digest_id: string | null; detail: string }>(
      stack.db.url,
      `SELECT outcome, status, mail_kind, digest_id, detail FROM bounce_reports
        WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = $1) ORDER BY id`,
      [email],
    );
  const suppressions = async () =>
    (await query<{ n: number }>(stack.db.url, `SELECT count(*)::int AS n FROM suppressions`))[0].n;

  let firstDigest = '';

  it('the worker listens on BOUNCE_SMTP_PORT; a second one on the same port stops, naming the variable', async () => {
    expect(stack.apps.worker!.get(BounceListener).port).toBe(port);
    // A second listener in this process, on the same configuration: the port is taken.
    const second = new BounceListener(stack.config, stack.apps.worker!.get(BounceIntake));
    await expect(second.onApplicationBootstrap()).rejects.toThrow(/BOUNCE_SMTP_PORT\): EADDRINUSE/);
    expect(second.port).toBeNull();
  });

  it("a confirmation's envelope sender is a VERP address naming the confirmation and the reader; From is unchanged", async () => {
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'newcomer@example.com', name: 'Nia' });
    await stack.smtp.waitFor(() => stack.smtp.to('newcomer@example.com').length >= 1);
    const { address, ref } = verpOf('newcomer@example.com');
    expect(address).toMatch(/^bounces\+[a-z0-9-]+@bounces\.mailroom\.test$/);
    expect(address.length - BOUNCE_DOMAIN.length - 1).toBeLessThanOrEqual(64);
    expect(ref).toEqual({ kind: 'confirmation', subscriberId: await h.subscriberId('newcomer@example.com') });
    const mail = stack.smtp.to('newcomer@example.com')[0];
    expect(mail.parsed.from?.value[0]?.address).not.toContain(BOUNCE_DOMAIN);

    // Confirmed: the guide's envelope sender names the guide mail and the same reader.
    const link = linkFrom(mail.parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(link.replace(PUBLIC, stack.apps.baseUrl), { method: 'POST' })).status).toBe(200);
    await stack.smtp.waitFor(() => stack.smtp.to('newcomer@example.com').length >= 2);
    expect(verpOf('newcomer@example.com').ref).toEqual({
      kind: 'guide',
      subscriberId: await h.subscriberId('newcomer@example.com'),
    });
  });

  it("each digest mail's envelope sender names the digest and its own reader", async () => {
    firstDigest = await h.sendDigest();
    const seen = new Set<string>();
    for (const email of readers) {
      const { address, ref } = verpOf(email);
      expect(ref).toEqual({ kind: 'digest', digestId: firstDigest, subscriberId: await h.subscriberId(email) });
      seen.add(address);
    }
    expect(seen.size).toBe(readers.length);
    // Built by nodemailer (not the fast path): the same envelope sender.
    expect(verpOf('zoë@example.com').ref).toEqual({
      kind: 'digest',
      digestId: firstDigest,
      subscriberId: await h.subscriberId('zoë@example.com'),
    });

    // A test copy names the digest and no reader.
    expect(
      (await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${firstDigest}/test`, { to: 'editor@example.com' })).status,
    ).toBeLessThan(300);
    await stack.smtp.waitFor(() => stack.smtp.to('editor@example.com').length >= 1);
    expect(verpOf('editor@example.com').ref).toEqual({ kind: 'test', digestId: firstDigest });
  });

  it('a permanent failure (Postfix 5.1.1) suppresses the reader the token names, once', async () => {
    const [reader, bystander] = readers;
    const before = await suppressions();
    // The report quotes another address: only the token counts.
    const raw = bounceSample('postfix-5.1.1-user-unknown', { verp: verpOf(reader).address, rcpt: bystander });
    await deliverReport(port, verpOf(reader).address, raw);
    expect(await h.subscriberStatus(reader)).toBe('bounced');
    expect(await h.subscriberStatus(bystander)).toBe('ok');
    expect(await suppressions()).toBe(before + 1);
    const rows = await reports(reader);
    expect(rows).toEqual([
      expect.objectContaining({ outcome: 'bounced', status: '5.1.1', mail_kind: 'digest', digest_id: firstDigest }),
    ]);
    // No address is kept in the detail.
    expect(rows[0].detail).not.toContain('@');
    // The reader's export shows it; their erasure deletes it.
    const exported = await admin<{ bounceReports: { outcome: string; mail_kind: string }[] }>(
      stack.apps.baseUrl,
      'GET',
      `/v1/subscribers/${encodeURIComponent(reader)}/export`,
    );
    expect(exported.body.bounceReports).toEqual([expect.objectContaining({ outcome: 'bounced', mail_kind: 'digest' })]);

    // The same report again: nothing more.
    await deliverReport(port, verpOf(reader).address, raw);
    expect(await reports(reader)).toHaveLength(1);
    expect(await suppressions()).toBe(before + 1);
  });

  it.each([
    ['exim-permanent', 2],
    ['gmail-5.1.1', 3],
    ['outlook-5.1.10', 4],
    ['yahoo-554-dd', 5],
    ['qmail-5.1.1', 6],
  ])('%s: permanent, the reader is bounced', async (sample, i) => {
    const reader = readers[i];
    const { address } = verpOf(reader);
    await deliverReport(port, address, bounceSample(sample, { verp: address, rcpt: reader }));
    expect(await h.subscriberStatus(reader)).toBe('bounced');
    expect(await reports(reader)).toEqual([expect.objectContaining({ outcome: 'bounced', digest_id: firstDigest })]);
  });

  it('the same report delivered twice at once (two relays, two connections) is recorded and applied once', async () => {
    const reader = readers[14];
    const { address } = verpOf(reader);
    const before = await suppressions();
    const raw = bounceSample('outlook-5.1.10', { verp: address, rcpt: reader });
    await Promise.all([deliverReport(port, address, raw), deliverReport(port, address, raw)]);
    expect(await h.subscriberStatus(reader)).toBe('bounced');
    expect(await reports(reader)).toHaveLength(1);
    expect(await suppressions()).toBe(before + 1);
  });

  it('a transient report (Postfix 4.4.1 delayed) changes nothing', async () => {
    const reader = readers[7];
    const { address } = verpOf(reader);
    await deliverReport(port, address, bounceSample('postfix-4.4.1-delayed', { verp: address, rcpt: reader }));
    expect(await h.subscriberStatus(reader)).toBe('ok');
    expect(await reports(reader)).toEqual([]);
  });

  it('a policy rejection (5.7.1) is recorded and suppresses nobody; a full mailbox (5.2.2) likewise', async () => {
    const before = await suppressions();
    for (const [sample, reader, outcome] of [
      ['policy-5.7.1', readers[8], 'policy'],
      ['exchange-mailbox-full-5.2.2', readers[9], 'failed'],
    ] as const) {
      const { address } = verpOf(reader);
      await deliverReport(port, address, bounceSample(sample, { verp: address, rcpt: reader }));
      expect(await h.subscriberStatus(reader)).toBe('ok');
      expect(await reports(reader)).toEqual([expect.objectContaining({ outcome })]);
    }
    expect(await suppressions()).toBe(before);
  });

  it('an ARF abuse report marks the reader complained', async () => {
    const reader = readers[10];
    const { address } = verpOf(reader);
    await deliverReport(port, address, bounceSample('arf-abuse', { verp: address, rcpt: 'redacted@yahoo.com' }));
    expect(await h.subscriberStatus(reader)).toBe('complained');
    expect(await reports(reader)).toEqual([expect.objectContaining({ outcome: 'complained', status: null })]);
  });

  it('an out-of-office reply is no bounce', async () => {
    const reader = readers[11];
    const { address } = verpOf(reader);
    await deliverReport(port, address, bounceSample('autoreply-out-of-office', { verp: address, rcpt: reader }));
    expect(await h.subscriberStatus(reader)).toBe('ok');
    expect(await reports(reader)).toEqual([]);
  });

  it('forged, tampered and unsigned tokens change nothing; other recipients are refused', async () => {
    const reader = readers[12];
    const { address } = verpOf(reader);
    const before = await suppressions();
    const at = address.indexOf('@');
    const sig = address.slice(at - 16, at);
    const tampered = `${address.slice(0, at - 16)}${sig[0] === 'a' ? 'b' : 'a'}${sig.slice(1)}${address.slice(at)}`;
    // The same reader and digest, signed with another secret.
    const forged = `bounces+${mintBounceToken(bounceKey('x'.repeat(64)), verpOf(reader).ref!)}@${BOUNCE_DOMAIN}`;
    for (const to of [tampered, forged, `bounces+unsigned@${BOUNCE_DOMAIN}`]) {
      await deliverReport(port, to, bounceSample('postfix-5.1.1-user-unknown', { verp: to, rcpt: reader }));
    }
    expect(await h.subscriberStatus(reader)).toBe('ok');
    expect(await reports(reader)).toEqual([]);
    expect(await suppressions()).toBe(before);
    await expect(
      deliverReport(port, `postmaster@${BOUNCE_DOMAIN}`, bounceSample('qmail-5.1.1', { verp: address, rcpt: reader })),
    ).rejects.toMatchObject({ responseCode: 550 });
    await expect(
      deliverReport(
        port,
        `${address.slice(0, at)}@elsewhere.example`,
        bounceSample('qmail-5.1.1', { verp: address, rcpt: reader }),
      ),
    ).rejects.toMatchObject({ responseCode: 550 });
  });

  it('refuses a report over the size limit', async () => {
    const { address } = verpOf(readers[13]);
    // Over BOUNCE_MAX_BYTES (1 MB by default): a real report is a few kilobytes.
    const big =
      bounceSample('qmail-5.1.1', { verp: address, rcpt: readers[13] }) + `${'y'.repeat(998)}\r\n`.repeat(1100);
    await expect(deliverReport(port, address, big)).rejects.toMatchObject({ responseCode: 552 });
    expect(await h.subscriberStatus(readers[13])).toBe('ok');
  });

  it('a bounced confirmation suppresses its reader', async () => {
    const { address, ref } = verpOf('newcomer@example.com', 0);
    expect(ref?.kind).toBe('confirmation');
    await deliverReport(port, address, bounceSample('gmail-5.1.1', { verp: address, rcpt: 'newcomer@example.com' }));
    expect(await h.subscriberStatus('newcomer@example.com')).toBe('bounced');
    expect(await reports('newcomer@example.com')).toEqual([
      expect.objectContaining({ outcome: 'bounced', mail_kind: 'confirmation', digest_id: null }),
    ]);
  });

  it("the digest's stats count the readers whose reports named it", async () => {
    const stats = await admin<{ bounces: Record<string, number> }>(
      stack.apps.baseUrl,
      'GET',
      `/v1/digests/${firstDigest}/stats`,
    );
    expect(stats.status).toBe(200);
    // Readers 0, 2–6 and 14 bounced (the confirmation's bounce names no digest), 10 complained, 8 policy, 9 failed.
    expect(stats.body.bounces).toEqual({ bounced: 7, complained: 1, policy: 1, failed: 1 });
  });

  it('the next digest mails nobody bounced or complained, and everyone else', async () => {
    const mailed = (email: string) => stack.smtp.to(email).length;
    const counts = new Map(readers.map((e) => [e, mailed(e)]));
    // Something new to send: an article is never sent to a reader twice.
    const article = await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
      url: 'https://www.spine-health.com/conditions/lower-back-pain/new-this-week',
      title: 'New this week: walking for back pain',
      publishedAt: new Date().toISOString(),
      newsletters: ['spine-health'],
    });
    expect(article.status).toBe(201);
    await h.sendDigest();
    const gone = new Set([0, 2, 3, 4, 5, 6, 10, 14].map((i) => readers[i]));
    for (const email of readers)
      expect([email, mailed(email) - counts.get(email)!]).toEqual([email, gone.has(email) ? 0 : 1]);
  });

  it('erasing a reader deletes their reports; a report that comes later for them is ignored', async () => {
    const reader = readers[8];
    const id = await h.subscriberId(reader);
    const { address } = verpOf(reader);
    const count = async () =>
      (
        await query<{ n: number }>(
          stack.db.url,
          `SELECT count(*)::int AS n FROM bounce_reports WHERE subscriber_id = $1`,
          [id],
        )
      )[0].n;
    expect(await count()).toBe(1);
    expect(
      (await admin(stack.apps.baseUrl, 'DELETE', `/v1/subscribers/${encodeURIComponent(reader)}`)).status,
    ).toBeLessThan(300);
    expect(await count()).toBe(0);
    const before = (await query<{ n: number }>(stack.db.url, `SELECT count(*)::int AS n FROM bounce_reports`))[0].n;
    await deliverReport(port, address, bounceSample('qmail-5.1.1', { verp: address, rcpt: reader }));
    expect((await query<{ n: number }>(stack.db.url, `SELECT count(*)::int AS n FROM bounce_reports`))[0].n).toBe(
      before,
    );
  });
});

describe('without BOUNCE_DOMAIN', () => {
  const stack = useStack({ label: 'bounces_off', env: { SEND_RATE_PER_SECOND: '100000' } });

  it('the envelope sender is the From address, as before, and no listener runs', async () => {
    expect(stack.apps.worker!.get(BounceListener).port).toBeNull();
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'plain@example.com' });
    await stack.smtp.waitFor(() => stack.smtp.to('plain@example.com').length >= 1);
    const mail = stack.smtp.to('plain@example.com')[0];
    expect(mail.envelope.from).toBe(mail.parsed.from?.value[0]?.address);
    expect(mail.envelope.from).not.toMatch(/^bounces\+/);
    // Confirmed, then the guide: the same.
    const link = linkFrom(mail.parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(link.replace(PUBLIC, stack.apps.baseUrl), { method: 'POST' })).status).toBe(200);
    await stack.smtp.waitFor(() => stack.smtp.to('plain@example.com').length >= 2);
    const guide = stack.smtp.to('plain@example.com')[1];
    expect(guide.envelope.from).toBe(guide.parsed.from?.value[0]?.address);
  });
});
