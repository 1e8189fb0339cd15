import 'reflect-metadata';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { DigestPlanner } from '#digests/digest-planner.service.js';
import { DigestSender } from '#digests/digest-sender.service.js';
import { MailRenderer } from '#mail/mail-renderer.service.js';
import { DIGEST_QUEUE } from '#queue/jobs.js';
import { addAudience } from './support/audience.js';
import { admin, waitUntil } from './support/admin.js';
import { type Backend, headerBlock } from './support/apps.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

interface Digest {
  id: string;
  status: string;
  recipients: number;
  sent: number;
  failed: number;
  skipped: number;
  reason: string | null;
  articles: { url: string; title: string }[];
}

describe.each<Backend>(['postgres', 'redis'])('weekly digest on the %s queue backend', (backend) => {
  const stack = useStack({
    label: `digest_${backend}`,
    queue: backend,
    env: { SEND_RATE_PER_SECOND: '100000', DIGEST_BATCH_SIZE: '100', SMTP_POOL_SIZE: '5' },
    prepare: () => audience(),
  });
  let active: string[];
  const others = new Set<string>();

  const digest = (id: string) => admin<Digest>(stack.apps.baseUrl, 'GET', `/v1/digests/${id}`).then((r) => r.body);
  const finished = (id: string) =>
    waitUntil(
      () => digest(id),
      (d) => !['scheduled', 'sending'].includes(d.status),
      60_000,
      `digest ${id}`,
    );

  /** Inserts the audience: 1 000 to mail, 15 of each kind that must get nothing. */
  const audience = async () => {
    active = await addAudience(stack.db.url, { prefix: 'active', count: 1000, newsletter: 'spine-health' });
    for (const e of await addAudience(stack.db.url, {
      prefix: 'pending',
      count: 15,
      newsletter: 'spine-health',
      subscription: 'pending',
    }))
      others.add(e);
    for (const e of await addAudience(stack.db.url, {
      prefix: 'gone',
      count: 15,
      newsletter: 'spine-health',
      subscription: 'unsubscribed',
    }))
      others.add(e);
    for (const e of await addAudience(stack.db.url, {
      prefix: 'bounced',
      count: 15,
      newsletter: 'spine-health',
      subscriber: 'bounced',
    }))
      others.add(e);
    for (const e of await addAudience(stack.db.url, { prefix: 'other', count: 15, newsletter: 'arthritis-health' }))
      others.add(e);
    for (const e of await addAudience(stack.db.url, {
      prefix: 'suppressed',
      count: 15,
      newsletter: 'spine-health',
      suppressWithSecret: stack.config.appSecret,
    }))
      others.add(e);
  };

  it('sends each confirmed subscriber exactly one copy, rendered once, and nobody else any', async () => {
    const mjmlBefore = MailRenderer.mjmlCalls;
    const created = await admin<{ id: string; status: string }>(
      stack.apps.baseUrl,
      'POST',
      '/v1/newsletters/spine-health/digests',
      {},
    );
    expect(created.status).toBe(201);
    expect(created.body.status).toBe('scheduled');
    const d = await finished(created.body.id);
    expect(d).toMatchObject({ status: 'sent', recipients: 1015, sent: 1000, failed: 0, skipped: 15 });
    expect(d.articles.length).toBe(6);
    expect(d.articles[0].title).toBe('All About Upper Back Pain');
    expect(MailRenderer.mjmlCalls - mjmlBefore).toBe(1);

    const byRecipient = new Map<string, number>();
    for (const m of stack.smtp.messages)
      for (const t of m.envelope.to) byRecipient.set(t, (byRecipient.get(t) ?? 0) + 1);
    expect(byRecipient.size).toBe(1000);
    for (const e of active) expect(byRecipient.get(e)).toBe(1);
    for (const e of others) expect(byRecipient.get(e)).toBeUndefined();

    const sample = stack.smtp.to(active[0])[0];
    const head = headerBlock(sample.raw);
    expect(head).toMatch(/^List-ID: "Spine-health" <spine-health\.mailroom\.test>$/m);
    // The one-click URL alone: nothing reads a mailto: mailbox, so none is offered.
    expect(head).toMatch(/^List-Unsubscribe: <http:\/\/mailroom\.test\/unsubscribe\/[^>,\s]+>$/m);
    expect(head).not.toMatch(/mailto:/i);
    // No PRIVACY_URL here: no privacy link.
    expect(sample.parsed.html).not.toContain('Privacy policy');
    expect(head).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click$/m);
    expect(sample.parsed.subject).toBe('Spine-health: All About Upper Back Pain and 5 more');
    expect(sample.parsed.html).toContain('Hi Reader 1,');
    // The HTML part travels as 7bit (ASCII with numeric references), not quoted-printable.
    expect(String(sample.raw)).toMatch(
      /Content-Type: text\/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n/,
    );
    expect(sample.parsed.text).toContain('Hi Reader 1,');
    expect(sample.parsed.text).toContain('580 N Bank Ln');
    expect(sample.parsed.text).toContain('Read more');
    const ids = new Set(stack.smtp.messages.map((m) => m.parsed.messageId));
    expect(ids.size).toBe(1000);
    const tokens = new Set(
      stack.smtp.messages.map((m) => /^List-Unsubscribe: <([^>]+)>/m.exec(headerBlock(m.raw))?.[1]),
    );
    expect(tokens.size).toBe(1000);

    // The ledger agrees, with a message id for every sent row.
    const [ledger] = await query<{ sent: number; with_id: number }>(
      stack.db.url,
      `SELECT count(*) FILTER (WHERE status = 'sent')::int AS sent, count(message_id)::int AS with_id FROM deliveries WHERE digest_id = $1`,
      [d.id],
    );
    expect(ledger).toEqual({ sent: 1000, with_id: 1000 });

    // The one-click link in a digest works.
    const unsub = /^List-Unsubscribe: <([^>]+)>/m.exec(head)![1].replace('http://mailroom.test', stack.apps.baseUrl);
    const res = await fetch(unsub, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(res.status).toBe(200);
  });

  it('a batch job run twice sends nothing twice', async () => {
    const [{ id }] = await query<{ id: string }>(
      stack.db.url,
      `SELECT id FROM digests WHERE status = 'sent' ORDER BY id LIMIT 1`,
    );
    const before = stack.smtp.messages.length;
    const [range] = await query<{ from: string; to: string }>(
      stack.db.url,
      `SELECT min(subscriber_id)::text AS "from", max(subscriber_id)::text AS "to" FROM deliveries WHERE digest_id = $1`,
      [id],
    );
    // Re-delivered through the queue under a fresh job id, and run directly as well.
    const queue = stack.apps.worker!.get<Queue>(getQueueToken(DIGEST_QUEUE));
    await queue.add(
      'send-digest-batch',
      { digestId: id, fromSubscriberId: range.from, toSubscriberId: range.to },
      { jobId: `again-${id}` },
    );
    const sender = stack.apps.worker!.get(DigestSender);
    await query(stack.db.url, `UPDATE digests SET status = 'sending' WHERE id = $1`, [id]);
    expect(await sender.sendBatch(id, range.from, range.to)).toBe('sent');
    await new Promise((r) => setTimeout(r, 1000));
    expect(stack.smtp.messages.length).toBe(before);
    expect((await digest(id)).status).toBe('sent');
  });

  it('never carries an article twice; with nothing new the digest is skipped and says so', async () => {
    const second = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    const d2 = await finished(second.body.id);
    expect(d2.status).toBe('skipped');
    expect(d2.reason).toBe('no new articles since the last digest');

    const title = `<img src=x onerror=alert(1)> {{unsubscribeUrl}} & "quotes" ${backend}`;
    const art = await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
      url: `https://www.spine-health.example/news/${backend}-xss`,
      title,
      summary: '<script>alert(2)</script> {{#each x}}',
      publishedAt: new Date().toISOString(),
      newsletters: ['spine-health'],
      topics: ['Neck Pain'],
    });
    expect(art.status).toBe(201);
    const before = stack.smtp.messages.length;
    const third = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    const d3 = await finished(third.body.id);
    expect(d3.status).toBe('sent');
    expect(d3.articles.map((a) => a.title)).toEqual([title]);
    await waitUntil(
      async () => stack.smtp.messages.length,
      (n) => n >= before + 999,
      30_000,
      'third digest mails',
    );
    const m = stack.smtp.messages[stack.smtp.messages.length - 1];
    expect(m.parsed.html).not.toContain('<img src=x');
    expect(m.parsed.html).not.toContain('<script>alert(2)');
    expect(m.parsed.html).toContain('&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;');
    // An article cannot reach into the per-recipient placeholders.
    expect(m.parsed.html).not.toMatch(/\/unsubscribe\/[^"<]*&lt;img/);
    expect(m.parsed.text).toContain('<img src=x onerror=alert(1)>');
    expect(m.parsed.text).not.toMatch(/\{\{unsubscribeUrl\}\}/);
  });

  it('previews as a reader sees it and sends a test copy', async () => {
    await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
      url: `https://www.spine-health.example/news/${backend}-preview`,
      title: 'Treating Intercostal Muscle Strain',
      summary: 'Breathing exercises and gentle stretches.',
      imageUrl: 'https://images.spine-health.example/intercostal.jpg',
      publishedAt: new Date().toISOString(),
      newsletters: ['spine-health'],
    });
    const sendAt = new Date(Date.now() + 3600_000).toISOString();
    const created = await admin<{ id: string; status: string }>(
      stack.apps.baseUrl,
      'POST',
      '/v1/newsletters/spine-health/digests',
      { sendAt },
    );
    expect(created.body.status).toBe('scheduled');
    const preview = await admin<string>(stack.apps.baseUrl, 'GET', `/v1/digests/${created.body.id}/preview`);
    expect(preview.status).toBe(200);
    expect(preview.text).toContain('Treating Intercostal Muscle Strain');
    expect(preview.text).toContain('https://images.spine-health.example/intercostal.jpg');
    expect(preview.text).toContain('Read more');
    const test = await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${created.body.id}/test`, {
      to: 'marketer@example.com',
    });
    expect(test.status).toBe(202);
    await stack.smtp.waitFor(() => stack.smtp.to('marketer@example.com').length === 1);
    expect(stack.smtp.to('marketer@example.com')[0].parsed.subject).toBe(
      '[Test] Spine-health: Treating Intercostal Muscle Strain',
    );
    // A test copy says so and carries no unsubscribe that pretends to work (no subscription stands behind it).
    const copy = stack.smtp.to('marketer@example.com')[0];
    expect(headerBlock(copy.raw)).not.toMatch(/^List-Unsubscribe/im);
    expect(String(copy.parsed.html)).not.toMatch(/\/unsubscribe\/|\/subscribe\?|Manage your preferences/);
    expect(String(copy.parsed.html)).toContain('<strong>TEST COPY</strong>');
    expect(copy.parsed.text?.trimStart()).toMatch(/^TEST COPY · This is a test copy of this digest\./);
    expect(copy.parsed.text).toMatch(
      /This is a test copy sent to marketer@example\.com by [^;]+; readers get their\s+own/,
    );
    expect(copy.parsed.text).not.toContain('You are receiving this because you subscribed');
    expect(
      (await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${created.body.id}/test`, { to: 'nope' })).status,
    ).toBe(400);
    // Cancel the scheduled one: it never sends.
    const cancelled = await admin<{ status: string }>(
      stack.apps.baseUrl,
      'POST',
      `/v1/digests/${created.body.id}/cancel`,
    );
    expect(cancelled.body.status).toBe('cancelled');
    expect((await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${created.body.id}/cancel`)).status).toBe(409);
  });

  it('skips a digest that is past due beyond the grace window instead of sending it late', async () => {
    const [{ id }] = await query<{ id: string }>(
      stack.db.url,
      `INSERT INTO digests (newsletter_id, status, trigger, send_at) SELECT id, 'scheduled', 'manual', now() - interval '3 hours'
       FROM newsletters WHERE slug = 'spine-health' RETURNING id`,
    );
    const before = stack.smtp.messages.length;
    expect(await stack.apps.worker!.get(DigestPlanner).plan(id)).toBe('skipped');
    const d = await digest(id);
    expect(d.status).toBe('skipped');
    expect(d.reason).toMatch(/^past due/);
    expect(stack.smtp.messages.length).toBe(before);
    expect(
      (
        await admin(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {
          sendAt: '2020-01-01T00:00:00Z',
        })
      ).status,
    ).toBe(400);
  });

  it('a plan stopped after its first ledger page writes the rest when retried, and every reader gets one copy', async () => {
    const art = await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
      url: `https://www.spine-health.example/news/${backend}-paged`,
      title: 'Sacroiliac Joint Dysfunction: Exercises That Help',
      summary: 'Stretches and strengthening for the SI joint.',
      publishedAt: new Date().toISOString(),
      newsletters: ['spine-health'],
    });
    expect(art.status).toBe(201);
    // What a plan leaves when it dies after its transaction and the ledger's first page (the
    // batch size is 100 here, four batch jobs at once: 400 rows), before anything was queued.
    const [{ id }] = await query<{ id: string }>(
      stack.db.url,
      `INSERT INTO digests (newsletter_id, status, trigger, send_at, started_at)
       SELECT id, 'sending', 'manual', now(), now() FROM newsletters WHERE slug = 'spine-health' RETURNING id`,
    );
    await query(
      stack.db.url,
      `INSERT INTO digest_articles (digest_id, article_id, position) SELECT $1, id, 0 FROM articles WHERE url = $2`,
      [id, `https://www.spine-health.example/news/${backend}-paged`],
    );
    await query(
      stack.db.url,
      `INSERT INTO deliveries (digest_id, subscriber_id, subscription_id)
       SELECT $1, s.subscriber_id, s.id FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
       JOIN newsletters n ON n.id = s.newsletter_id
       WHERE n.slug = 'spine-health' AND s.status = 'active' AND u.status = 'ok'
       ORDER BY s.subscriber_id LIMIT 400`,
      [id],
    );
    const audience = await query<{ email: string }>(
      stack.db.url,
      `SELECT u.email FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
       JOIN newsletters n ON n.id = s.newsletter_id
       WHERE n.slug = 'spine-health' AND s.status = 'active' AND u.status = 'ok'`,
    );
    expect(audience.length).toBeGreaterThan(1000);
    const before = stack.smtp.messages.length;

    expect(await stack.apps.worker!.get(DigestPlanner).plan(id)).toBe('planned');
    const d = await finished(id);
    expect(d.status).toBe('sent');
    expect(d.recipients).toBe(audience.length);
    const mailable = audience.filter((a) => active.includes(a.email));
    expect(d.sent).toBe(mailable.length);
    expect(d.sent + d.skipped).toBe(audience.length);
    const [{ rows: ledgerRows, subscribers }] = await query<{ rows: number; subscribers: number }>(
      stack.db.url,
      `SELECT count(*)::int AS rows, count(DISTINCT subscriber_id)::int AS subscribers FROM deliveries WHERE digest_id = $1`,
      [id],
    );
    expect({ ledgerRows, subscribers }).toEqual({ ledgerRows: audience.length, subscribers: audience.length });
    await waitUntil(
      async () => stack.smtp.messages.length,
      (n) => n >= before + mailable.length,
      30_000,
      'paged digest mails',
    );
    await new Promise((r) => setTimeout(r, 300));
    const mine = stack.smtp.messages.slice(before);
    expect(mine.length).toBe(mailable.length);
    const byRecipient = new Map<string, number>();
    for (const m of mine) for (const t of m.envelope.to) byRecipient.set(t, (byRecipient.get(t) ?? 0) + 1);
    for (const a of mailable) expect(byRecipient.get(a.email)).toBe(1);
    expect(mine[0].parsed.subject).toBe('Spine-health: Sacroiliac Joint Dysfunction: Exercises That Help');
  });
});
