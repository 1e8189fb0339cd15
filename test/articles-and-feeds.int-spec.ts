import 'reflect-metadata';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { FeedsService } from '../libs/digests/src/feeds.service.js';
import { admin } from './support/admin.js';
import { type RunningApps, startApps, testConfig } from './support/apps.js';
import { createTestDatabase, query, seedDatabase } from './support/db.js';
import { TestSmtp } from './support/smtp.js';

const RSS = `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Spine-health</title><link>https://www.spine-health.example</link><description>x</description>
<item><title>Causes of Upper Back Pain</title><link>https://www.spine-health.example/rss/causes-upper-back-pain</link>
  <description>Muscle strain, posture and more.</description><pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate><category>Upper Back Pain</category>
  <enclosure url="https://images.spine-health.example/causes.jpg" type="image/jpeg" length="1"/></item>
<item><title>Diagnosing Upper Back Pain</title><link>https://www.spine-health.example/rss/diagnosing-upper-back-pain</link>
  <description>What the doctor looks for.</description><pubDate>Tue, 24 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>No link here</title></item>
</channel></rss>`;

const ATOM = `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Arthritis-health</title><id>urn:x</id><updated>2026-11-24T08:00:00Z</updated>
<entry><title>Thoracic Discs</title><link href="https://www.arthritis-health.example/atom/thoracic-discs"/><id>urn:1</id>
  <updated>2026-11-24T08:00:00Z</updated><summary>Twelve discs between the thoracic vertebrae.</summary></entry>
<entry><title>Thoracic Spinal Nerves</title><link href="https://www.arthritis-health.example/atom/thoracic-spinal-nerves"/><id>urn:2</id>
  <updated>2026-11-23T08:00:00Z</updated><summary>Where they run and what they do.</summary></entry>
</feed>`;

/** An RSS feed of `n` items, newest first. */
function manyItems(n: number): string {
  const items = Array.from(
    { length: n },
    (_, i) =>
      `<item><title>Many ${i}</title><link>https://www.sports-health.example/many/${i}</link>` +
      `<pubDate>${new Date(Date.UTC(2026, 10, 30) - i * 3_600_000).toUTCString()}</pubDate></item>`,
  );
  return `<?xml version="1.0"?><rss version="2.0"><channel><title>Many</title>${items.join('')}</channel></rss>`;
}

describe('articles in: the API and RSS/Atom feeds', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let apps: RunningApps;
  let feedServer: Server;
  let feedBase: string;
  const hits: Record<string, { count: number; conditional: number }> = {};
  let bombBytesSent = 0;

  beforeAll(async () => {
    feedServer = createServer((req, res) => {
      const path = req.url ?? '/';
      hits[path] ??= { count: 0, conditional: 0 };
      hits[path].count += 1;
      if (req.headers['if-none-match'] === '"v1"') {
        hits[path].conditional += 1;
        res.writeHead(304).end();
        return;
      }
      if (path === '/rss.xml') res.writeHead(200, { 'content-type': 'application/rss+xml', etag: '"v1"' }).end(RSS);
      else if (path === '/atom.xml') res.writeHead(200, { 'content-type': 'application/atom+xml' }).end(ATOM);
      else if (path === '/broken.xml')
        res.writeHead(200, { 'content-type': 'application/xml' }).end('<rss><channel><item><title>oops');
      else if (path === '/error.xml') res.writeHead(500).end('boom');
      else if (path === '/slow.xml') setTimeout(() => res.writeHead(200).end(RSS), 3000);
      else if (path === '/many.xml') res.writeHead(200, { 'content-type': 'application/rss+xml' }).end(manyItems(30));
      else if (path === '/bomb.xml') {
        // 50 MB of zeros gzipped on the fly: about 50 KB on the wire.
        let left = 50;
        const zeros = new Readable({ read: () => void zeros.push(left-- > 0 ? Buffer.alloc(1024 * 1024) : null) });
        const gzip = createGzip({ level: 9 });
        gzip.on('data', (c: Buffer) => (bombBytesSent += c.length));
        res.writeHead(200, { 'content-type': 'application/rss+xml', 'content-encoding': 'gzip' });
        pipeline(zeros, gzip, res).catch(() => undefined);
      } else if (path === '/to-metadata')
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' }).end();
      else if (path === '/to-metadata-name')
        res.writeHead(301, { location: 'http://metadata.google.internal/computeMetadata/v1/' }).end();
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => feedServer.listen(0, '127.0.0.1', r));
    feedBase = `http://127.0.0.1:${(feedServer.address() as AddressInfo).port}`;
    db = await createTestDatabase('feeds');
    await seedDatabase(db.url);
    smtp = await new TestSmtp().start();
    apps = await startApps(
      testConfig({
        dbUrl: db.url,
        smtpUrl: smtp.url,
        backend: 'postgres',
        // The test feed server is on loopback, on a random port.
        env: { FEED_TIMEOUT_MS: '1000', FEED_ALLOW_PRIVATE: 'true', FEED_ALLOWED_PORTS: '*', FEED_MAX_ITEMS: '25' },
      }),
    );
  });

  afterAll(async () => {
    await apps?.close();
    await smtp?.stop();
    await db?.drop();
    feedServer?.closeAllConnections();
    await new Promise((r) => feedServer?.close(r));
  });

  it('upserts articles by url: 201 when new, 200 when updated; lists latest first', async () => {
    const body = {
      url: 'https://www.spine-health.example/a/new-article',
      title: 'Early Treatments for Upper Back Pain (draft)',
      // Newer than every seeded article whatever the day the suite runs.
      publishedAt: new Date(Date.now() + 60_000).toISOString(),
      newsletters: ['spine-health', 'sports-health'],
      topics: ['Upper Back Pain'],
    };
    const first = await admin<{ url: string; newsletters: string[] }>(apps.baseUrl, 'POST', '/v1/articles', body);
    expect(first.status).toBe(201);
    expect(first.body.newsletters).toEqual(['spine-health', 'sports-health']);
    const second = await admin<{ title: string; newsletters: string[] }>(apps.baseUrl, 'POST', '/v1/articles', {
      ...body,
      title: 'Early Treatments for Upper Back Pain',
      newsletters: ['spine-health'],
    });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ title: 'Early Treatments for Upper Back Pain', newsletters: ['spine-health'] });
    const list = await admin<{ url: string; publishedAt: string }[]>(
      apps.baseUrl,
      'GET',
      '/v1/articles?newsletter=spine-health&limit=3',
    );
    expect(list.status).toBe(200);
    expect(list.body).toHaveLength(3);
    expect(list.body[0].url).toBe(body.url);
    const times = list.body.map((a) => Date.parse(a.publishedAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect((await admin(apps.baseUrl, 'GET', '/v1/articles?newsletter=nope')).status).toBe(400);
  });

  it.each([
    ['missing url', { title: 't', publishedAt: '2026-11-24T10:00:00Z' }, /url must be an http\(s\) URL/],
    [
      'javascript url',
      { url: 'javascript:alert(1)', title: 't', publishedAt: '2026-11-24T10:00:00Z' },
      /url must be an http\(s\) URL/,
    ],
    ['no title', { url: 'https://x.example/a', publishedAt: '2026-11-24T10:00:00Z' }, /title must be a string/],
    [
      'bad date',
      { url: 'https://x.example/a', title: 't', publishedAt: 'yesterday' },
      /publishedAt must be an ISO 8601 date-time/,
    ],
    [
      'unknown newsletter',
      { url: 'https://x.example/a', title: 't', publishedAt: '2026-11-24T10:00:00Z', newsletters: ['nope'] },
      /unknown newsletter: "nope"/,
    ],
  ])('bad article input (%s) → 400 naming the field', async (_l, body, msg) => {
    const res = await admin<{ message: string[] }>(apps.baseUrl, 'POST', '/v1/articles', body);
    expect(res.status).toBe(400);
    expect([res.body.message].flat().join(' ')).toMatch(msg);
  });

  it('polls an RSS feed now, then conditionally (ETag → 304)', async () => {
    expect(
      (await admin(apps.baseUrl, 'PATCH', '/v1/newsletters/spine-health', { feedUrl: `${feedBase}/rss.xml` })).status,
    ).toBe(200);
    const polled = await admin<{ status: string; created: number; items: number }>(
      apps.baseUrl,
      'POST',
      '/v1/newsletters/spine-health/feed/poll',
    );
    expect(polled.status).toBe(200);
    expect(polled.body).toMatchObject({ status: 'ok', items: 3, created: 2, updated: 0, skipped: 0 });
    const [a] = await query<{ title: string; image_url: string; topics: string[]; source: string }>(
      db.url,
      `SELECT title, image_url, topics, source FROM articles WHERE url = 'https://www.spine-health.example/rss/causes-upper-back-pain'`,
    );
    expect(a).toEqual({
      title: 'Causes of Upper Back Pain',
      image_url: 'https://images.spine-health.example/causes.jpg',
      topics: ['Upper Back Pain'],
      source: 'feed',
    });
    const again = await admin<{ status: string }>(apps.baseUrl, 'POST', '/v1/newsletters/spine-health/feed/poll');
    expect(again.body.status).toBe('not-modified');
    expect(hits['/rss.xml'].conditional).toBe(1);
  });

  it('reads Atom feeds', async () => {
    await admin(apps.baseUrl, 'PATCH', '/v1/newsletters/arthritis-health', { feedUrl: `${feedBase}/atom.xml` });
    const polled = await admin<{ created: number }>(apps.baseUrl, 'POST', '/v1/newsletters/arthritis-health/feed/poll');
    expect(polled.body.created).toBe(2);
    const list = await admin<{ title: string; summary: string; url: string }[]>(
      apps.baseUrl,
      'GET',
      '/v1/articles?newsletter=arthritis-health&limit=50',
    );
    const fromFeed = list.body.filter((x) => x.url.includes('/atom/'));
    expect(fromFeed.map((x) => x.title)).toEqual(['Thoracic Discs', 'Thoracic Spinal Nerves']);
    expect(fromFeed[0].summary).toBe('Twelve discs between the thoracic vertebrae.');
  });

  it('reads at most FEED_MAX_ITEMS entries per poll and reports the rest as skipped', async () => {
    await admin(apps.baseUrl, 'PATCH', '/v1/newsletters/sports-health', { feedUrl: `${feedBase}/many.xml` });
    const polled = await admin(apps.baseUrl, 'POST', '/v1/newsletters/sports-health/feed/poll');
    expect(polled.body).toEqual({ status: 'ok', items: 30, created: 25, updated: 0, skipped: 5 });
    const stored = await query<{ url: string }>(
      db.url,
      `SELECT url FROM articles WHERE url LIKE 'https://www.sports-health.example/many/%' ORDER BY published_at DESC`,
    );
    expect(stored.map((r) => r.url)).toEqual(
      Array.from({ length: 25 }, (_, i) => `https://www.sports-health.example/many/${i}`),
    );
  });

  it('a malformed, failing or slow feed answers 400 with the reason and is recorded, never a 500', async () => {
    for (const [path, reason] of [
      ['/broken.xml', /not a valid RSS or Atom feed/],
      ['/error.xml', /HTTP 500/],
      ['/slow.xml', /aborted|timeout|timed out/i],
    ] as const) {
      await admin(apps.baseUrl, 'PATCH', '/v1/newsletters/sports-health', { feedUrl: `${feedBase}${path}` });
      const res = await admin<{ message: string[] }>(apps.baseUrl, 'POST', '/v1/newsletters/sports-health/feed/poll');
      expect(res.status).toBe(400);
      expect(res.body.message.join(' ')).toMatch(reason);
      const [n] = await query<{ feed_error: string }>(
        db.url,
        `SELECT feed_error FROM newsletters WHERE slug = 'sports-health'`,
      );
      expect(n.feed_error).toMatch(reason);
    }
  });

  it('without FEED_ALLOW_PRIVATE a loopback feed is refused before any request; so is a port not allowed', async () => {
    // Same database, default feed settings: private addresses refused, ports 80 and 443 only.
    const strict = await startApps(testConfig({ dbUrl: db.url, smtpUrl: smtp.url, backend: 'postgres' }), {
      worker: false,
    });
    try {
      expect(strict.config.feeds).toMatchObject({ allowPrivate: false, allowedPorts: [80, 443] });
      const before = JSON.stringify(hits);
      const cases: [string, string][] = [
        ['http://127.0.0.1/rss.xml', 'the feed address is not allowed (private or reserved network)'],
        ['http://localhost/rss.xml', 'the feed address is not allowed (private or reserved network)'],
        ['http://2130706433/rss.xml', 'the feed address is not allowed (private or reserved network)'],
        ['http://[::ffff:7f00:1]/rss.xml', 'the feed address is not allowed (private or reserved network)'],
        ['http://169.254.169.254/latest/meta-data/', 'the feed address is not allowed (cloud metadata service)'],
        [`${feedBase}/rss.xml`, `the feed address is not allowed (port ${new URL(feedBase).port}; allowed: 80, 443)`],
      ];
      for (const [feedUrl, message] of cases) {
        await admin(strict.baseUrl, 'PATCH', '/v1/newsletters/sports-health', { feedUrl });
        const res = await admin<{ message: string[] }>(
          strict.baseUrl,
          'POST',
          '/v1/newsletters/sports-health/feed/poll',
        );
        expect({ feedUrl, status: res.status, message: res.body.message }).toEqual({
          feedUrl,
          status: 400,
          message: [`Feed of sports-health failed: ${message}`],
        });
        const [n] = await query<{ feed_error: string }>(
          db.url,
          `SELECT feed_error FROM newsletters WHERE slug = 'sports-health'`,
        );
        expect(n.feed_error).toBe(message);
      }
      expect(JSON.stringify(hits)).toBe(before);
    } finally {
      await strict.close();
    }
  });

  it('refuses a redirect to a metadata address even with FEED_ALLOW_PRIVATE, and a gzip bomb at 5 MB', async () => {
    const poll = async (path: string) => {
      await admin(apps.baseUrl, 'PATCH', '/v1/newsletters/sports-health', { feedUrl: `${feedBase}${path}` });
      const res = await admin<{ message: string[] }>(apps.baseUrl, 'POST', '/v1/newsletters/sports-health/feed/poll');
      expect(res.status).toBe(400);
      return res.body.message.join(' ');
    };
    expect(await poll('/bomb.xml')).toBe('Feed of sports-health failed: the feed is larger than 5 MB');
    expect(bombBytesSent).toBeLessThan(1024 * 1024); // it really was a small body that expands 1000-fold
    expect(await poll('/to-metadata-name')).toBe(
      'Feed of sports-health failed: the feed redirected to an address that is not allowed (cloud metadata service)',
    );
    // Left in place: the scheduled poll below must see this feed fail.
    expect(await poll('/to-metadata')).toBe(
      'Feed of sports-health failed: the feed redirected to an address that is not allowed (cloud metadata service)',
    );
  });

  it('the scheduled poller isolates a broken feed from the others', async () => {
    const feeds = apps.worker!.get(FeedsService);
    const list = await feeds.newslettersWithFeeds();
    expect(list.map((n) => n.slug).sort()).toEqual(['arthritis-health', 'spine-health', 'sports-health']);
    const results = await Promise.allSettled(list.map((n) => feeds.poll(n.id)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
  });
});
