import 'reflect-metadata';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { FeedsService } from '#digests/feeds.service.js';
import { admin, waitUntil } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

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

/** A UTF-32 encoding of `s` (Node has no encoder for it). */
function utf32(s: string, le: boolean): Buffer {
  const cps = [...s].map((c) => c.codePointAt(0)!);
  const b = Buffer.alloc(cps.length * 4);
  cps.forEach((cp, i) => (le ? b.writeUInt32LE(cp, i * 4) : b.writeUInt32BE(cp, i * 4)));
  return b;
}

interface FeedPoll {
  status: string;
  items: number;
  created: number;
  updated: number;
  skipped: number;
  invalid: number;
}

interface DigestView {
  id: string;
  status: string;
  articles: { url: string; title: string }[];
}

/** Feeds the tests below change as they go: path → response. */
const routes: Record<string, { body: string | Buffer; type?: string; etag?: string; notModifiedFor?: string }> = {};

describe('articles in: the API and RSS/Atom feeds', () => {
  const stack = useStack({
    label: 'feeds',
    // The test feed server is on loopback, on a random port.
    env: { FEED_TIMEOUT_MS: '2000', FEED_ALLOW_PRIVATE: 'true', FEED_ALLOWED_PORTS: '*', FEED_MAX_ITEMS: '25' },
  });
  let feedServer: Server;
  let feedBase: string;
  const hits: Record<string, { count: number; conditional: number }> = {};
  // 50 MB of zeros, gzipped once before any request (about 50 KB on the wire): compressing it in
  // the request took long enough on a loaded machine to hit the feed timeout before the size limit.
  const BOMB = gzipSync(Buffer.alloc(50 * 1024 * 1024), { level: 9 });
  let bombBytesSent = 0;

  beforeAll(async () => {
    feedServer = createServer((req, res) => {
      const path = req.url ?? '/';
      hits[path] ??= { count: 0, conditional: 0 };
      hits[path].count += 1;
      const route = routes[path];
      if (route) {
        // Apache-style: a 304 for the validator it knows, whatever URL it was first given for.
        if (route.notModifiedFor && req.headers['if-none-match'] === route.notModifiedFor) {
          hits[path].conditional += 1;
          res.writeHead(304).end();
          return;
        }
        const headers: Record<string, string> = { 'content-type': route.type ?? 'application/xml' };
        if (route.etag) headers.etag = route.etag;
        res.writeHead(200, headers).end(route.body);
        return;
      }
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
        bombBytesSent += BOMB.length;
        res.writeHead(200, { 'content-type': 'application/rss+xml', 'content-encoding': 'gzip' }).end(BOMB);
      } else if (path === '/to-metadata')
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' }).end();
      else if (path === '/to-metadata-name')
        res.writeHead(301, { location: 'http://metadata.google.internal/computeMetadata/v1/' }).end();
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => feedServer.listen(0, '127.0.0.1', r));
    feedBase = `http://127.0.0.1:${(feedServer.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
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
    const first = await admin<{ url: string; newsletters: string[] }>(stack.apps.baseUrl, 'POST', '/v1/articles', body);
    expect(first.status).toBe(201);
    expect(first.body.newsletters).toEqual(['spine-health', 'sports-health']);
    const second = await admin<{ title: string; newsletters: string[] }>(stack.apps.baseUrl, 'POST', '/v1/articles', {
      ...body,
      title: 'Early Treatments for Upper Back Pain',
      newsletters: ['spine-health'],
    });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ title: 'Early Treatments for Upper Back Pain', newsletters: ['spine-health'] });
    const list = await admin<{ url: string; publishedAt: string }[]>(
      stack.apps.baseUrl,
      'GET',
      '/v1/articles?newsletter=spine-health&limit=3',
    );
    expect(list.status).toBe(200);
    expect(list.body).toHaveLength(3);
    expect(list.body[0].url).toBe(body.url);
    const times = list.body.map((a) => Date.parse(a.publishedAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect((await admin(stack.apps.baseUrl, 'GET', '/v1/articles?newsletter=nope')).status).toBe(400);
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
    const res = await admin<{ message: string[] }>(stack.apps.baseUrl, 'POST', '/v1/articles', body);
    expect(res.status).toBe(400);
    expect([res.body.message].flat().join(' ')).toMatch(msg);
  });

  it('polls an RSS feed now, then conditionally (ETag → 304)', async () => {
    expect(
      (await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/spine-health', { feedUrl: `${feedBase}/rss.xml` }))
        .status,
    ).toBe(200);
    const polled = await admin<{ status: string; created: number; items: number }>(
      stack.apps.baseUrl,
      'POST',
      '/v1/newsletters/spine-health/feed/poll',
    );
    expect(polled.status).toBe(200);
    expect(polled.body).toMatchObject({ status: 'ok', items: 3, created: 2, updated: 0, skipped: 0 });
    const [a] = await query<{ title: string; image_url: string; topics: string[]; source: string }>(
      stack.db.url,
      `SELECT title, image_url, topics, source FROM articles WHERE url = 'https://www.spine-health.example/rss/causes-upper-back-pain'`,
    );
    expect(a).toEqual({
      title: 'Causes of Upper Back Pain',
      image_url: 'https://images.spine-health.example/causes.jpg',
      topics: ['Upper Back Pain'],
      source: 'feed',
    });
    const again = await admin<{ status: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/feed/poll');
    expect(again.body.status).toBe('not-modified');
    expect(hits['/rss.xml'].conditional).toBe(1);
  });

  it('reads Atom feeds', async () => {
    await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/arthritis-health', { feedUrl: `${feedBase}/atom.xml` });
    const polled = await admin<{ created: number }>(
      stack.apps.baseUrl,
      'POST',
      '/v1/newsletters/arthritis-health/feed/poll',
    );
    expect(polled.body.created).toBe(2);
    const list = await admin<{ title: string; summary: string; url: string }[]>(
      stack.apps.baseUrl,
      'GET',
      '/v1/articles?newsletter=arthritis-health&limit=50',
    );
    const fromFeed = list.body.filter((x) => x.url.includes('/atom/'));
    expect(fromFeed.map((x) => x.title)).toEqual(['Thoracic Discs', 'Thoracic Spinal Nerves']);
    expect(fromFeed[0].summary).toBe('Twelve discs between the thoracic vertebrae.');
  });

  it('reads at most FEED_MAX_ITEMS entries per poll and reports the rest as skipped', async () => {
    await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/sports-health', { feedUrl: `${feedBase}/many.xml` });
    const polled = await admin(stack.apps.baseUrl, 'POST', '/v1/newsletters/sports-health/feed/poll');
    expect(polled.body).toEqual({ status: 'ok', items: 30, created: 25, updated: 0, skipped: 5, invalid: 0 });
    const stored = await query<{ url: string }>(
      stack.db.url,
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
      await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/sports-health', { feedUrl: `${feedBase}${path}` });
      const res = await admin<{ message: string[] }>(
        stack.apps.baseUrl,
        'POST',
        '/v1/newsletters/sports-health/feed/poll',
      );
      expect(res.status).toBe(400);
      expect(res.body.message.join(' ')).toMatch(reason);
      const [n] = await query<{ feed_error: string }>(
        stack.db.url,
        `SELECT feed_error FROM newsletters WHERE slug = 'sports-health'`,
      );
      expect(n.feed_error).toMatch(reason);
    }
  });

  it('without FEED_ALLOW_PRIVATE a loopback feed is refused before any request; so is a port not allowed', async () => {
    // Same database, default feed settings: private addresses refused, ports 80 and 443 only.
    const strict = await stack.startApps({ worker: false });
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
          stack.db.url,
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
      await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/sports-health', { feedUrl: `${feedBase}${path}` });
      const res = await admin<{ message: string[] }>(
        stack.apps.baseUrl,
        'POST',
        '/v1/newsletters/sports-health/feed/poll',
      );
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
    const feeds = stack.apps.worker!.get(FeedsService);
    const list = await feeds.newslettersWithFeeds();
    expect(list.map((n) => n.slug).sort()).toEqual(['arthritis-health', 'spine-health', 'sports-health']);
    const results = await Promise.allSettled(list.map((n) => feeds.poll(n.id)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
  });
  // Runs after the poller test above: the newsletters made here have feeds of their own.
  describe('late articles, bad entries, encodings and changed feed URLs', () => {
    const poll = (slug: string) =>
      admin<FeedPoll & { message?: string[] }>(stack.apps.baseUrl, 'POST', `/v1/newsletters/${slug}/feed/poll`);
    const stored = (prefix: string) =>
      query<{ url: string; title: string; summary: string | null; published_at: Date }>(
        stack.db.url,
        `SELECT url, title, summary, published_at FROM articles WHERE url LIKE $1 ORDER BY url`,
        [`${prefix}%`],
      );
    const newsletter = async (slug: string, extra: Record<string, unknown> = {}) => {
      const res = await admin(stack.apps.baseUrl, 'POST', '/v1/newsletters', { slug, name: slug, ...extra });
      expect(res.status).toBe(201);
    };
    const sendDigest = async (slug: string) => {
      const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', `/v1/newsletters/${slug}/digests`, {});
      expect(created.status).toBe(201);
      return waitUntil(
        async () => (await admin<DigestView>(stack.apps.baseUrl, 'GET', `/v1/digests/${created.body.id}`)).body,
        (d) => !['scheduled', 'sending'].includes(d.status),
        30_000,
        `digest of ${slug}`,
      );
    };
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000);

    it('lookbackDays: 1–365, default 7, in POST, PATCH and GET /v1/newsletters/:slug', async () => {
      await newsletter('lookback-default');
      const got = await admin<{ lookbackDays: number }>(stack.apps.baseUrl, 'GET', '/v1/newsletters/lookback-default');
      expect(got.body.lookbackDays).toBe(7);
      for (const bad of [0, 366, 2.5, '3']) {
        const res = await admin<{ message: string[] }>(
          stack.apps.baseUrl,
          'PATCH',
          '/v1/newsletters/lookback-default',
          {
            lookbackDays: bad,
          },
        );
        expect({ bad, status: res.status }).toEqual({ bad, status: 400 });
        expect(res.body.message.join(' ')).toMatch(/lookbackDays/);
      }
      const ok = await admin<{ lookbackDays: number }>(
        stack.apps.baseUrl,
        'PATCH',
        '/v1/newsletters/lookback-default',
        {
          lookbackDays: 365,
        },
      );
      expect(ok.body.lookbackDays).toBe(365);
      await newsletter('lookback-three', { lookbackDays: 3 });
      expect(
        (await admin<{ lookbackDays: number }>(stack.apps.baseUrl, 'GET', '/v1/newsletters/lookback-three')).body,
      ).toMatchObject({ lookbackDays: 3 });
    });

    it('an article published before the last digest but received after it goes into the next one, within lookbackDays', async () => {
      const base = 'https://late.example/';
      await newsletter('late-news', { lookbackDays: 3, feedUrl: `${feedBase}/late.xml` });
      await addAudience(stack.db.url, { prefix: 'late-reader', count: 2, newsletter: 'late-news' });
      await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
        url: `${base}first`,
        title: 'First',
        publishedAt: hoursAgo(1).toISOString(),
        newsletters: ['late-news'],
      });
      const first = await sendDigest('late-news');
      expect(first).toMatchObject({ status: 'sent', articles: [{ url: `${base}first` }] });
      const [{ started_at: startedAt }] = await query<{ started_at: Date }>(
        stack.db.url,
        `SELECT started_at FROM digests WHERE id = $1`,
        [first.id],
      );

      // Received now, but dated before the digest ran (10 minutes), 2 days ago, and 5 days ago (> 3).
      const item = (slug: string, at: Date) =>
        `<item><title>${slug}</title><link>${base}${slug}</link><pubDate>${at.toUTCString()}</pubDate></item>`;
      routes['/late.xml'] = {
        body: `<rss version="2.0"><channel><title>Late</title>${item('back-dated', new Date(startedAt.getTime() - 600_000))}${item(
          'two-days',
          hoursAgo(48),
        )}${item('five-days', hoursAgo(120))}</channel></rss>`,
      };
      expect((await poll('late-news')).body).toMatchObject({ status: 'ok', created: 3, invalid: 0 });

      // A cancelled digest that carried an article before any mail left does not count as having sent it.
      await admin(stack.apps.baseUrl, 'POST', '/v1/articles', {
        url: `${base}was-cancelled`,
        title: 'Was cancelled',
        publishedAt: hoursAgo(30).toISOString(),
        newsletters: ['late-news'],
      });
      await query(
        stack.db.url,
        `WITH d AS (INSERT INTO digests (newsletter_id, status, trigger, send_at, started_at, finished_at)
           SELECT id, 'cancelled', 'manual', now() - interval '20 hours', now() - interval '20 hours', now() - interval '20 hours'
           FROM newsletters WHERE slug = 'late-news' RETURNING id)
         INSERT INTO digest_articles (digest_id, article_id, position) SELECT d.id, a.id, 1 FROM d, articles a WHERE a.url = $1`,
        [`${base}was-cancelled`],
      );

      const second = await sendDigest('late-news');
      expect(second.status).toBe('sent');
      expect(second.articles.map((a) => a.url)).toEqual([
        `${base}back-dated`,
        `${base}was-cancelled`,
        `${base}two-days`,
      ]);
      // Nothing left: the next digest is skipped rather than repeating anything.
      expect((await sendDigest('late-news')).status).toBe('skipped');
    });

    it('one bad entry is reported and skipped; the entries before and after it land', async () => {
      await newsletter('mixed-feed', { feedUrl: `${feedBase}/mixed.xml` });
      const base = 'https://mixed.example/';
      const entry = (slug: string, title: string, date = '2026-11-20T08:00:00Z') =>
        `<entry><title${title}</title><link href="${base}${slug}"/><id>urn:${slug}</id><published>${date}</published></entry>`;
      routes['/mixed.xml'] = {
        type: 'application/atom+xml',
        body: `<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Mixed</title><id>urn:m</id>
          ${entry('a', '>Before')}
          ${entry('b', ' type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">An <em>XHTML</em> title</div>')}
          ${entry('c', '>Unreadable date', 'sometime soon')}
          ${entry('d', '>Year one', '0001-01-01T00:00:00Z')}
          ${entry('e', '>Far future', '2099-01-01T00:00:00Z')}
          ${entry('f', '>After')}
          <entry><title>No link</title><id>urn:g</id></entry></feed>`,
      };
      const res = await poll('mixed-feed');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: 'ok', items: 7, created: 3, updated: 0, skipped: 0, invalid: 4 });
      expect((await stored(base)).map((a) => [a.url.slice(base.length), a.title])).toEqual([
        ['a', 'Before'],
        ['b', 'An XHTML title'],
        ['f', 'After'],
      ]);
    });

    it('reads titles and summaries as text, in the feed’s own encoding, with relative links and Atom 0.3 dates', async () => {
      await newsletter('encoded-feeds');
      const base = 'https://enc.example/';
      const rss = (encoding: string, title: string) =>
        `<?xml version="1.0" encoding="${encoding}"?><rss version="2.0"><channel><title>t</title>` +
        `<item><title>${title}</title><link>${base}${encoding}</link><pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item></channel></rss>`;
      const cases: [string, { body: Buffer; type: string }, string][] = [
        // “Smart quotes” from windows-1252 bytes, named only by the XML declaration.
        [
          'windows-1252',
          { body: Buffer.from(rss('windows-1252', '\x93Smart\x94 quotes'), 'latin1'), type: 'application/rss+xml' },
          '“Smart” quotes',
        ],
        // KOI8-R, named only by the HTTP charset (the declaration says otherwise).
        [
          'koi8-r',
          {
            body: Buffer.concat([
              Buffer.from(rss('koi8-r', '@@').split('@@')[0].replace('encoding="koi8-r"', 'encoding="utf-8"')),
              Buffer.from([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]),
              Buffer.from(rss('koi8-r', '@@').split('@@')[1]),
            ]),
            type: 'application/rss+xml; charset=KOI8-R',
          },
          'Привет',
        ],
        ['utf-16', { body: Buffer.from(`\ufeff${rss('utf-16', 'Ünïcödé')}`, 'utf16le'), type: 'text/xml' }, 'Ünïcödé'],
        ['utf-32', { body: utf32(`\ufeff${rss('utf-32', 'Вісті 𝄞')}`, false), type: 'text/xml' }, 'Вісті 𝄞'],
        [
          'html-title',
          {
            body: Buffer.from(
              rss('html-title', 'Tips &amp;amp; tricks for &lt;em&gt;lower&lt;/em&gt; back pain').replace(
                'encoding="html-title"',
                'encoding="utf-8"',
              ),
            ),
            type: 'application/rss+xml',
          },
          'Tips & tricks for lower back pain',
        ],
      ];
      for (const [label, route, title] of cases) {
        routes[`/enc-${label}.xml`] = route;
        await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/encoded-feeds', {
          feedUrl: `${feedBase}/enc-${label}.xml`,
        });
        const res = await poll('encoded-feeds');
        expect({ label, body: res.body }).toMatchObject({ label, body: { status: 'ok', created: 1, invalid: 0 } });
        const [a] = await query<{ title: string }>(stack.db.url, `SELECT title FROM articles WHERE url = $1`, [
          `${base}${label}`,
        ]);
        expect({ label, title: a?.title }).toEqual({ label, title });
      }

      // Atom 0.3: relative links under xml:base and against the feed URL, base64 content, issued/modified dates.
      routes['/atom03.xml'] = {
        type: 'application/atom+xml',
        body: `<?xml version="1.0"?><feed version="0.3" xmlns="http://purl.org/atom/ns#" xml:base="https://enc.example/blog/">
          <title>Old Atom</title>
          <entry xml:base="2026/"><title mode="escaped" type="text/html">Relative &lt;b&gt;one&lt;/b&gt;</title>
            <link rel="alternate" type="text/html" href="one.html"/><issued>2026-11-22T08:00:00Z</issued>
            <content type="text/html" mode="base64">${Buffer.from('<p>Decoded &amp; <b>plain</b></p>').toString('base64')}</content></entry>
          <entry><title>Root relative</title><link rel="alternate" type="text/html" href="/two.html"/><modified>2026-11-21T08:00:00Z</modified></entry>
        </feed>`,
      };
      await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/encoded-feeds', { feedUrl: `${feedBase}/atom03.xml` });
      expect((await poll('encoded-feeds')).body).toMatchObject({ status: 'ok', items: 2, created: 2, invalid: 0 });
      const atom03 = await stored('https://enc.example/');
      expect(
        atom03
          .filter((a) => a.url.endsWith('.html'))
          .map((a) => ({ url: a.url, title: a.title, summary: a.summary, at: a.published_at.toISOString() })),
      ).toEqual([
        {
          url: 'https://enc.example/blog/2026/one.html',
          title: 'Relative one',
          summary: 'Decoded & plain',
          at: '2026-11-22T08:00:00.000Z',
        },
        { url: 'https://enc.example/two.html', title: 'Root relative', summary: null, at: '2026-11-21T08:00:00.000Z' },
      ]);
    });

    it('a changed feed URL drops the old feed’s validators and error', async () => {
      routes['/validators-old.xml'] = { body: manyItems(1), type: 'application/rss+xml', etag: '"same-etag"' };
      // An Apache-style server: the same validator answers 304 at another URL too.
      routes['/validators-new.xml'] = {
        body: `<rss version="2.0"><channel><title>n</title><item><title>New feed</title><link>https://new-feed.example/a</link>
          <pubDate>Mon, 23 Nov 2026 08:00:00 GMT</pubDate></item></channel></rss>`,
        type: 'application/rss+xml',
        notModifiedFor: '"same-etag"',
      };
      await newsletter('moving-feed', { feedUrl: `${feedBase}/validators-old.xml` });
      expect((await poll('moving-feed')).body.status).toBe('ok');
      const validators = () =>
        query<{ feed_etag: string | null; feed_last_modified: string | null; feed_error: string | null }>(
          stack.db.url,
          `SELECT feed_etag, feed_last_modified, feed_error FROM newsletters WHERE slug = 'moving-feed'`,
        ).then((r) => r[0]);
      expect((await validators()).feed_etag).toBe('"same-etag"');
      // The same URL again keeps them.
      await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/moving-feed', {
        feedUrl: `${feedBase}/validators-old.xml`,
      });
      expect((await validators()).feed_etag).toBe('"same-etag"');

      await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/moving-feed', {
        feedUrl: `${feedBase}/validators-new.xml`,
      });
      expect(await validators()).toEqual({ feed_etag: null, feed_last_modified: null, feed_error: null });
      expect((await poll('moving-feed')).body).toMatchObject({ status: 'ok', created: 1 });
      expect(hits['/validators-new.xml'].conditional).toBe(0);

      // A failing feed's error goes with it too.
      await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/moving-feed', { feedUrl: `${feedBase}/error.xml` });
      expect((await poll('moving-feed')).status).toBe(400);
      expect((await validators()).feed_error).toMatch(/HTTP 500/);
      await admin(stack.apps.baseUrl, 'PATCH', '/v1/newsletters/moving-feed', {
        feedUrl: `${feedBase}/validators-old.xml`,
      });
      expect((await validators()).feed_error).toBeNull();
    });
  });
});
