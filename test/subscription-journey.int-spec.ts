import 'reflect-metadata';
import { type Backend, headerBlock, linkFrom } from './support/apps.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

const PUBLIC = 'http://mailroom.test';

describe.each<Backend>(['postgres', 'redis'])('reader journey on the %s queue backend', (backend) => {
  const stack = useStack({ label: `journey_${backend}`, queue: backend });
  const local = (link: string) => link.replace(PUBLIC, stack.apps.baseUrl);

  it('subscribes, confirms by POST only, delivers the guide once, and unsubscribes in one click', async () => {
    const email = `reader-${backend}@example.com`;
    const res = await fetch(`${stack.apps.baseUrl}/v1/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        email,
        name: 'Pat <b>Reader</b>',
        topics: ['Neck Pain'],
        source: 'https://www.spine-health.example/a',
      }),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'pending' });

    // The subscription is durable before any mail.
    const subs = await query<{ status: string }>(
      stack.db.url,
      `SELECT s.status FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email = $1`,
      [email],
    );
    expect(subs).toEqual([{ status: 'pending' }]);

    const [confirmation] = await stack.smtp
      .waitFor((m) => m.some((x) => x.envelope.to.includes(email)))
      .then(() => stack.smtp.to(email));
    expect(confirmation.envelope.to).toEqual([email]);
    expect(confirmation.parsed.headers.get('auto-submitted')).toBe('auto-generated');
    expect(confirmation.parsed.messageId).toMatch(/^<.+@.+>$/);
    expect(confirmation.parsed.from?.text).toContain('newsletter@spine-health.example');
    expect(confirmation.parsed.subject).toBe('Please confirm your subscription to Spine-health');
    expect(confirmation.parsed.html).toBeTruthy();
    expect(confirmation.parsed.text).toContain('/confirm/');
    // Values from readers are escaped in HTML.
    expect(confirmation.parsed.html).toContain('Pat &lt;b&gt;Reader&lt;/b&gt;');
    expect(confirmation.parsed.html).not.toContain('<b>Reader</b>');
    expect(confirmation.parsed.html).toContain('580 N Bank Ln');
    const confirmLink = linkFrom(confirmation.parsed.text ?? '', `${PUBLIC}/confirm/`);

    // A link scanner's GET shows a page and confirms nothing.
    const page = await fetch(local(confirmLink));
    expect(page.status).toBe(200);
    const pageHtml = await page.text();
    expect(pageHtml).toContain('<form method="post"');
    expect((await query<{ status: string }>(stack.db.url, `SELECT status FROM subscriptions`))[0].status).toBe(
      'pending',
    );

    const confirmed = await fetch(local(confirmLink), { method: 'POST', headers: { accept: 'application/json' } });
    expect(confirmed.status).toBe(200);
    expect(await confirmed.json()).toEqual({ status: 'active' });
    // Idempotent: a second click says the same.
    const again = await fetch(local(confirmLink), { method: 'POST' });
    expect(again.status).toBe(200);
    expect(await again.text()).toContain("You're subscribed");

    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 2);
    const guideMail = stack.smtp.to(email)[1];
    expect(guideMail.parsed.subject).toBe('Your free guide: Natural Back Pain Relief: 16 Choices for Lasting Comfort');
    const head = headerBlock(guideMail.raw);
    expect(head).toMatch(/^List-ID: "Spine-health" <spine-health\.mailroom\.test>$/m);
    expect(head.match(/^List-Unsubscribe:/gm)).toHaveLength(1);
    const listUnsub = /^List-Unsubscribe: (.*)$/m.exec(head)?.[1] ?? '';
    expect(listUnsub).toMatch(/^<http:\/\/mailroom\.test\/unsubscribe\/[^>,\s]+>$/);
    expect(guideMail.raw).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click$/m);
    expect(guideMail.parsed.text).toContain('580 N Bank Ln');

    const guideLink = linkFrom(guideMail.parsed.text ?? '', `${PUBLIC}/guides/natural-back-pain-relief/`);
    const download = await fetch(local(guideLink));
    expect(download.status).toBe(200);
    expect(download.headers.get('content-disposition')).toContain('attachment');
    const guide = await download.text();
    expect(guide).toContain('Natural Back Pain Relief');
    expect((guide.match(/class="choice"/g) ?? []).length).toBe(16);

    // Subscribing again while active: same answer, no new mail.
    const repeat = await fetch(`${stack.apps.baseUrl}/v1/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email }),
    });
    expect(repeat.status).toBe(202);
    expect(await repeat.json()).toEqual({ status: 'pending' });

    // One-click unsubscribe, RFC 8058.
    const unsubUrl = /<(http[^>]+)>/.exec(listUnsub)![1];
    const one = await fetch(local(unsubUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
      redirect: 'manual',
    });
    expect(one.status).toBe(200);
    const after = await query<{ status: string }>(stack.db.url, `SELECT status FROM subscriptions`);
    expect(after).toEqual([{ status: 'unsubscribed' }]);

    // Re-subscribe: a new confirmation, and after confirming no second guide.
    await fetch(`${stack.apps.baseUrl}/v1/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email }),
    });
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 3);
    const second = stack.smtp.to(email)[2];
    expect(second.parsed.subject).toContain('Please confirm');
    const link2 = linkFrom(second.parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect((await fetch(local(link2), { method: 'POST' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1000));
    expect(stack.smtp.to(email)).toHaveLength(3);
    const log = await query<{ kind: string; status: string }>(
      stack.db.url,
      `SELECT kind, status FROM mail_log ORDER BY id`,
    );
    expect(log).toEqual([
      { kind: 'confirmation', status: 'sent' },
      { kind: 'guide', status: 'sent' },
      { kind: 'confirmation', status: 'sent' },
    ]);
  });
});
