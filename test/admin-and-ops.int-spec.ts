import 'reflect-metadata';
import { addAudience } from './support/audience.js';
import { admin } from './support/admin.js';
import { useStack } from './support/stack.js';

interface NewsletterView {
  slug: string;
  name: string;
  guide: string | null;
  isDefault: boolean;
  schedule: { cron: string; timezone: string } | null;
  feedUrl: string | null;
}

describe('admin API, hosted signup page and operations routes', () => {
  const stack = useStack({
    label: 'admin',
    worker: false,
    env: { FEED_ALLOW_PRIVATE: 'true', FEED_ALLOWED_PORTS: '*' },
    prepare: async () => {
      await addAudience(stack.db.url, { prefix: 'list', count: 5, newsletter: 'spine-health' });
      await addAudience(stack.db.url, {
        prefix: 'wait',
        count: 2,
        newsletter: 'sports-health',
        subscription: 'pending',
      });
    },
  });

  it('lists, creates, reads and updates newsletters', async () => {
    const list = await admin<NewsletterView[]>(stack.apps.baseUrl, 'GET', '/v1/newsletters');
    expect(list.body.map((n) => n.slug)).toEqual(['arthritis-health', 'spine-health', 'sports-health']);
    const spine = list.body.find((n) => n.slug === 'spine-health')!;
    expect(spine).toMatchObject({ name: 'Spine-health', guide: 'natural-back-pain-relief', isDefault: true });

    const created = await admin<NewsletterView>(stack.apps.baseUrl, 'POST', '/v1/newsletters', {
      slug: 'neck-health',
      name: 'Neck-health',
      fromName: 'Neck-health',
      fromEmail: 'newsletter@neck-health.example',
      guide: 'natural-back-pain-relief',
      schedule: { cron: '0 9 * * 2', timezone: 'America/Chicago' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      slug: 'neck-health',
      guide: 'natural-back-pain-relief',
      schedule: { cron: '0 9 * * 2', timezone: 'America/Chicago' },
    });
    expect(
      (await admin(stack.apps.baseUrl, 'POST', '/v1/newsletters', { slug: 'neck-health', name: 'Again' })).status,
    ).toBe(409);
    expect((await admin(stack.apps.baseUrl, 'GET', '/v1/newsletters/neck-health')).status).toBe(200);
    expect((await admin(stack.apps.baseUrl, 'GET', '/v1/newsletters/nope')).status).toBe(404);

    const patched = await admin<NewsletterView>(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/neck-health', {
      name: 'Neck-health Weekly',
      feedUrl: 'https://neck-health.example/feed.xml',
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'Neck-health Weekly', feedUrl: 'https://neck-health.example/feed.xml' });
  });

  it.each([
    ['bad slug', { slug: 'Bad Slug', name: 'x' }, /slug must be lower-case/],
    ['CR/LF in name', { slug: 'ok-slug', name: 'a\r\nBcc: x@y.z' }, /name must not contain line breaks/],
    ['unknown guide', { slug: 'ok-slug', name: 'x', guide: 'nope' }, /guide "nope" does not exist/],
    ['bad fromEmail', { slug: 'ok-slug', name: 'x', fromEmail: 'nope' }, /fromEmail must be an email address/],
    [
      'bad cron',
      { slug: 'ok-slug', name: 'x', schedule: { cron: 'every tuesday', timezone: 'UTC' } },
      /schedule\.cron/,
    ],
    [
      'bad time zone',
      { slug: 'ok-slug', name: 'x', schedule: { cron: '0 9 * * 2', timezone: 'Nowhere/City' } },
      /schedule\.timezone must be an IANA time zone/,
    ],
  ])('bad newsletter input (%s) → 400 naming the field', async (_l, body, msg) => {
    const res = await admin<{ message: string[] }>(stack.apps.baseUrl, 'POST', '/v1/newsletters', body);
    expect(res.status).toBe(400);
    expect([res.body.message].flat().join(' ')).toMatch(msg);
  });

  it('finds subscribers by email, newsletter and status, paged by cursor', async () => {
    const byEmail = await admin<{
      items: { email: string; subscriptions: { newsletter: string; status: string }[] }[];
    }>(stack.apps.baseUrl, 'GET', '/v1/subscribers?email=LIST1@example.com');
    expect(byEmail.body.items).toHaveLength(1);
    expect(byEmail.body.items[0].subscriptions).toEqual([
      expect.objectContaining({ newsletter: 'spine-health', status: 'active' }),
    ]);
    const pending = await admin<{ items: { email: string }[] }>(
      stack.apps.baseUrl,
      'GET',
      '/v1/subscribers?newsletter=sports-health&status=pending',
    );
    expect(pending.body.items.map((i) => i.email)).toEqual(['wait1@example.com', 'wait2@example.com']);
    const page1 = await admin<{ items: unknown[]; next: string }>(stack.apps.baseUrl, 'GET', '/v1/subscribers?limit=3');
    expect(page1.body.items).toHaveLength(3);
    const page2 = await admin<{ items: unknown[]; next: string | null }>(
      stack.apps.baseUrl,
      'GET',
      `/v1/subscribers?limit=3&after=${page1.body.next}`,
    );
    expect(page2.body.items).toHaveLength(3);
    expect((await admin(stack.apps.baseUrl, 'GET', '/v1/subscribers?status=weird')).status).toBe(400);
  });

  it('serves the hosted signup box with the guide offer and the privacy line', async () => {
    const res = await fetch(
      `${stack.apps.baseUrl}/subscribe?newsletter=spine-health&source=https://www.spine-health.example/x`,
    );
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('Natural Back Pain Relief: 16 Choices for Lasting Comfort');
    expect(html).toContain('We respect your privacy. Unsubscribe at any time.');
    expect(html).toMatch(/name="website"/);
    expect(html).toMatch(/value="spine-health"[^>]*checked/);
  });

  it('serves OpenAPI docs and health', async () => {
    expect((await fetch(`${stack.apps.baseUrl}/docs`)).status).toBe(200);
    // The description is Markdown: a bare <API key> was read as a tag and the page showed "Bearer .".
    const spec = (await (await fetch(`${stack.apps.baseUrl}/docs-json`)).json()) as { info: { description: string } };
    expect(spec.info.description).toContain('`Authorization: Bearer <API key>`');
    const health = await fetch(`${stack.apps.baseUrl}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'ok',
      info: { database: { status: 'up' }, queue: { status: 'up' } },
    });
  });
});
