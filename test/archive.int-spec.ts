import 'reflect-metadata';
import type { Browser } from 'playwright-core';
import { SaxesParser } from 'saxes';
import { admin, waitUntil } from './support/admin.js';
import { addAudience } from './support/audience.js';
import {
  axeSeriousFindings,
  describeInBrowser,
  horizontalOverflow,
  launchBrowser,
  newContext,
  PHONE,
} from './support/browser.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';
import { decode } from './support/html.js';

const PUBLIC = 'http://mailroom.test';
const SLUG = 'sports-health';
const READER = 'archive-reader';

/** An element of a parsed XML document: its name, attributes, text and children. */
interface XmlNode {
  name: string;
  attributes: Record<string, string>;
  text: string;
  children: XmlNode[];
}

/** Parses XML with a real (strict, namespace-aware) parser: malformed XML throws. */
function parseXml(xml: string): XmlNode {
  const parser = new SaxesParser({ xmlns: true });
  const root: XmlNode = { name: '#document', attributes: {}, text: '', children: [] };
  const open: XmlNode[] = [root];
  parser.on('error', (err) => {
    throw err;
  });
  parser.on('opentag', (tag) => {
    const attributes: Record<string, string> = {};
    for (const [name, attr] of Object.entries(tag.attributes)) attributes[name] = attr.value;
    const node: XmlNode = { name: tag.name, attributes, text: '', children: [] };
    open[open.length - 1].children.push(node);
    open.push(node);
  });
  parser.on('text', (text) => {
    open[open.length - 1].text += text;
  });
  parser.on('closetag', () => {
    open.pop();
  });
  parser.write(xml).close();
  return root.children[0];
}

const child = (node: XmlNode, name: string) => node.children.find((c) => c.name === name);
const childText = (node: XmlNode, name: string) => child(node, name)?.text ?? null;

/** The value of `<meta property|name="key" content="…">` in a page (Handlebars escapes `=` and quotes). */
function meta(html: string, key: string): string | null {
  const m = new RegExp(
    `<meta (?:property|name)="${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" content="([^"]*)">`,
  ).exec(html);
  return m ? decode(m[1]) : null;
}

/** The canonical address of a page, decoded. */
function canonical(html: string): string | null {
  const m = /<link rel="canonical" href="([^"]*)">/.exec(html);
  return m ? decode(m[1]) : null;
}

/** Every href of a page, decoded. */
const hrefs = (html: string) => [...html.matchAll(/href="([^"]*)"/g)].map((m) => decode(m[1]));

/** Public archive: list, web version and RSS feed of sent digests; nothing personal; 404 when it should be. */
describe('public archive of sent digests', () => {
  const stack = useStack({
    label: 'archive',
    // Many page loads from one test client: the rate limit is checked on an app of its own.
    env: { SEND_RATE_PER_SECOND: '10000', PUBLIC_POSTS_PER_IP_PER_MINUTE: '100000' },
    prepare: async () => {
      await addAudience(stack.db.url, { prefix: READER, count: 2, newsletter: SLUG });
      await addAudience(stack.db.url, { prefix: 'arthritis-reader', count: 1, newsletter: 'arthritis-health' });
    },
  });
  const base = () => stack.apps.baseUrl;
  const get = (path: string, accept = 'text/html') =>
    fetch(`${base()}${path}`, { headers: { accept }, redirect: 'manual' });
  const sent = (id: string) =>
    waitUntil(
      () => admin<{ status: string }>(base(), 'GET', `/v1/digests/${id}`).then((r) => r.body),
      (d) => d.status === 'sent',
      60_000,
      `digest ${id} sent`,
    );

  const ARTICLES = [
    {
      url: `https://www.sports-health.example/archive/hamstring?utm_source=feed&x=1`,
      title: 'Hamstring strains: when to run again & how',
      summary: 'A week-by-week return plan, with the <signs> that say "wait".',
      imageUrl: 'https://images.sports-health.example/hamstring.jpg',
      topics: ['Running', 'Injuries'],
    },
    {
      url: 'https://www.sports-health.example/archive/shoulder',
      title: 'Swimmer’s shoulder, explained',
      summary: 'Why it hurts at the top of the stroke.',
      topics: ['Swimming'],
    },
    {
      url: 'https://www.sports-health.example/archive/knee',
      title: 'Knee taping that works',
      topics: [],
    },
  ];
  const LATER = {
    url: 'https://www.sports-health.example/archive/ankle',
    title: 'Ankle sprains: ice or heat?',
    summary: 'The first 48 hours matter most.',
    topics: ['Injuries'],
  };
  const SUBJECT = 'Back to running: your <hamstring> plan & more';
  const LATER_SUBJECT = 'Ankles, ice and heat';
  const INTRO =
    'Hello from the **editors**.\n\n<script>alert(1)</script> [Our guide](https://www.sports-health.example/guide)';
  let first = '';
  let second = '';
  let scheduled = '';
  let foreign = '';

  const addArticle = (a: object, newsletter = SLUG) =>
    admin(base(), 'POST', '/v1/articles', {
      ...a,
      publishedAt: new Date(Date.now() - 3_600_000).toISOString(),
      newsletters: [newsletter],
    });

  beforeAll(async () => {
    for (const a of [...ARTICLES, LATER]) expect((await addArticle(a)).status).toBeLessThan(300);
    // The order as composed (not by date): the web version must keep it.
    const one = await admin<{ id: string }>(base(), 'POST', `/v1/newsletters/${SLUG}/digests`, {
      subject: SUBJECT,
      intro: INTRO,
      articles: [ARTICLES[1].url, ARTICLES[0].url, ARTICLES[2].url],
    });
    expect(one.status).toBe(201);
    first = one.body.id;
    await sent(first);
    const two = await admin<{ id: string }>(base(), 'POST', `/v1/newsletters/${SLUG}/digests`, {
      subject: LATER_SUBJECT,
      articles: [LATER.url],
    });
    second = two.body.id;
    await sent(second);
    // Not sent (yet): never in the archive.
    const later = await admin<{ id: string; status: string }>(base(), 'POST', `/v1/newsletters/${SLUG}/digests`, {
      sendAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
      articles: [LATER.url],
    });
    expect(later.status).toBe(201);
    scheduled = later.body.id;
    // Another newsletter's sent issue.
    await addArticle(
      { url: 'https://www.arthritis-health.example/archive/hands', title: 'Hands and arthritis' },
      'arthritis-health',
    );
    const other = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/arthritis-health/digests', {
      subject: 'Arthritis news',
      articles: ['https://www.arthritis-health.example/archive/hands'],
    });
    foreign = other.body.id;
    await sent(foreign);
    await stack.smtp.waitFor(() => stack.smtp.messages.filter((m) => m.parsed.subject === SUBJECT).length >= 2, 30_000);
  }, 120_000);

  it('lists only sent issues, newest first, with links to their web versions', async () => {
    const res = await get(`/newsletters/${SLUG}/issues`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    const links = hrefs(html).filter((h) => h.startsWith(`${PUBLIC}/newsletters/${SLUG}/issues/`));
    expect(links).toEqual([
      `${PUBLIC}/newsletters/${SLUG}/issues/${second}`,
      `${PUBLIC}/newsletters/${SLUG}/issues/${first}`,
    ]);
    expect(html).toContain('Back to running: your &lt;hamstring&gt; plan &amp; more');
    expect(html).not.toContain('<hamstring>');
    expect(html).not.toContain(`/issues/${scheduled}"`);
    expect(html).not.toContain(`/issues/${foreign}"`);
    expect(html).not.toContain('Arthritis news');
    expect(hrefs(html)).toContain(`${PUBLIC}/subscribe?newsletter=${SLUG}`);
    // Head: title, description, Open Graph, Twitter, canonical and the feed.
    expect(html).toMatch(/<title>Sports-health archive · Sports-health<\/title>/);
    expect(meta(html, 'description')).toMatch(/^Every issue of Sports-health/);
    expect(meta(html, 'og:type')).toBe('website');
    expect(meta(html, 'og:url')).toBe(`${PUBLIC}/newsletters/${SLUG}/issues`);
    expect(meta(html, 'og:site_name')).toBe('Sports-health');
    expect(meta(html, 'twitter:card')).toBe('summary');
    expect(html).toContain(`<link rel="canonical" href="${PUBLIC}/newsletters/${SLUG}/issues">`);
    expect(html).toMatch(
      new RegExp(
        `<link rel="alternate" type="application/rss\\+xml" title="[^"]+" href="${PUBLIC}/newsletters/${SLUG}/issues.rss">`,
      ),
    );
    // The archive stays in the reader pages' look.
    expect(html).toContain('<span class="brand-name">Sports-health</span>');
    expect(html).not.toContain('noindex');
  });

  it('shows the web version: the issue as sent, articles in order, plain links, nothing personal', async () => {
    const res = await get(`/newsletters/${SLUG}/issues/${first}`);
    expect(res.status).toBe(200);
    const html = await res.text();
    // The subject, escaped, as h1 and title.
    expect(html).toContain('<h1>Back to running: your &lt;hamstring&gt; plan &amp; more</h1>');
    expect(html).toContain('<title>Back to running: your &lt;hamstring&gt; plan &amp; more · Sports-health</title>');
    // The editor's intro: Markdown rendered, raw HTML shown as text.
    expect(html).toContain('<strong>editors</strong>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).not.toMatch(/<script/i);
    expect(html).toMatch(/<a href="https:\/\/www\.sports-health\.example\/guide"[^>]*>Our guide<\/a>/);
    // Articles in the issue's order, the same as in the readers' mail.
    const order = [ARTICLES[1], ARTICLES[0], ARTICLES[2]].map((a) =>
      html.indexOf(`>${a.title.replace(/&/g, '&amp;')}</a></h2>`),
    );
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const mail = stack.smtp.messages.find((m) => m.parsed.subject === SUBJECT)!;
    const mailHtml = mail.parsed.html as string;
    const mailOrder = [ARTICLES[1], ARTICLES[0], ARTICLES[2]].map((a) =>
      mailHtml.indexOf(a.title.replace(/&/g, '&amp;')),
    );
    expect([...mailOrder].sort((a, b) => a - b)).toEqual(mailOrder);
    const positions = await query<{ title: string }>(
      stack.db.url,
      `SELECT a.title FROM digest_articles da JOIN articles a ON a.id = da.article_id WHERE da.digest_id = $1 ORDER BY da.position`,
      [first],
    );
    expect(positions.map((p) => p.title)).toEqual([ARTICLES[1], ARTICLES[0], ARTICLES[2]].map((a) => a.title));
    // Summary, image, topic line, all escaped.
    expect(html).toContain('A week-by-week return plan, with the &lt;signs&gt; that say &quot;wait&quot;.');
    expect(html).toContain('<img src="https://images.sports-health.example/hamstring.jpg" alt="" loading="lazy">');
    expect(html).toContain('<p class="topic-line">Running · Injuries</p>');
    // Article links go straight to the articles: no tracking, no token.
    const articleLinks = hrefs(html).filter((h) => h.includes('sports-health.example/archive/'));
    expect(new Set(articleLinks)).toEqual(new Set(ARTICLES.map((a) => new URL(a.url).toString())));
    for (const h of hrefs(html)) {
      expect(h).not.toMatch(/\/c\/|\/unsubscribe\/|\/confirm\/|\/guides\/|token/i);
    }
    // Nothing of a reader: no address, no name, no greeting, no placeholder.
    expect(html).not.toContain(READER);
    expect(html).not.toMatch(/Reader \d/);
    expect(html).not.toContain('{{');
    expect(html).not.toMatch(/href="[^"]*unsubscribe/i);
    expect(hrefs(html)).toContain(`${PUBLIC}/subscribe?newsletter=${SLUG}`);
    expect(hrefs(html)).toContain(`${PUBLIC}/newsletters/${SLUG}/issues`);
    // Head tags of an article.
    expect(meta(html, 'og:type')).toBe('article');
    expect(meta(html, 'og:title')).toBe(SUBJECT);
    expect(meta(html, 'og:url')).toBe(`${PUBLIC}/newsletters/${SLUG}/issues/${first}`);
    expect(meta(html, 'og:site_name')).toBe('Sports-health');
    expect(meta(html, 'og:description')).toContain('Swimmer’s shoulder, explained');
    expect(meta(html, 'og:image')).toBe('https://images.sports-health.example/hamstring.jpg');
    expect(meta(html, 'twitter:card')).toBe('summary_large_image');
    expect(meta(html, 'description')).toBe(meta(html, 'og:description'));
    expect(html).toContain(`<link rel="canonical" href="${PUBLIC}/newsletters/${SLUG}/issues/${first}">`);
    expect(html).toContain(`href="${PUBLIC}/newsletters/${SLUG}/issues.rss"`);
    // Article pictures are allowed by the page's CSP; scripts are not.
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain('img-src data: https: http:');
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('script-src');
  });

  it('publishes an RSS 2.0 feed of the sent issues, newest first', async () => {
    const res = await get(`/newsletters/${SLUG}/issues.rss`, 'application/rss+xml');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/rss+xml; charset=utf-8');
    const rss = parseXml(await res.text());
    expect(rss.name).toBe('rss');
    expect(rss.attributes.version).toBe('2.0');
    const channel = child(rss, 'channel')!;
    expect(childText(channel, 'title')).toBe('Sports-health');
    expect(childText(channel, 'link')).toBe(`${PUBLIC}/newsletters/${SLUG}/issues`);
    expect(childText(channel, 'description')).toBeTruthy();
    expect(child(channel, 'atom:link')?.attributes).toMatchObject({
      href: `${PUBLIC}/newsletters/${SLUG}/issues.rss`,
      rel: 'self',
    });
    const items = channel.children.filter((c) => c.name === 'item');
    expect(items.map((i) => childText(i, 'title'))).toEqual([LATER_SUBJECT, SUBJECT]);
    const [newest, oldest] = items;
    for (const [item, id] of [
      [newest, second],
      [oldest, first],
    ] as const) {
      const url = `${PUBLIC}/newsletters/${SLUG}/issues/${id}`;
      expect(childText(item, 'link')).toBe(url);
      expect(child(item, 'guid')).toMatchObject({ text: url, attributes: { isPermaLink: 'true' } });
      const pubDate = childText(item, 'pubDate')!;
      expect(pubDate).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
      expect(Math.abs(Date.parse(pubDate) - Date.now())).toBeLessThan(10 * 60_000);
      expect(childText(item, 'description')).toBeTruthy();
    }
    expect(Date.parse(childText(newest, 'pubDate')!)).toBeGreaterThanOrEqual(Date.parse(childText(oldest, 'pubDate')!));
    expect(childText(oldest, 'description')).toContain('Hamstring strains: when to run again & how');
    // Every item's link is one the archive serves.
    expect((await get(new URL(childText(oldest, 'link')!).pathname)).status).toBe(200);
  });

  it('answers 404 for unknown, foreign, unsent and malformed issues, and for unknown newsletters', async () => {
    const cases = [
      `/newsletters/${SLUG}/issues/${scheduled}`,
      `/newsletters/${SLUG}/issues/${foreign}`,
      `/newsletters/arthritis-health/issues/${first}`,
      `/newsletters/${SLUG}/issues/999999`,
      `/newsletters/${SLUG}/issues/abc`,
      `/newsletters/${SLUG}/issues/0${first}`,
      `/newsletters/${SLUG}/issues/-1`,
      `/newsletters/${SLUG}/issues/1.5`,
      `/newsletters/${SLUG}/issues/${'9'.repeat(40)}`,
      `/newsletters/${SLUG}/issues/%00`,
      `/newsletters/${SLUG}/issues/${first}%00`,
      `/newsletters/${SLUG}/issues/%D9%A1`,
      `/newsletters/${SLUG}/issues/%F0%9F%92%A9`,
      '/newsletters/no-such-newsletter/issues',
      '/newsletters/no-such-newsletter/issues/1',
      '/newsletters/no-such-newsletter/issues.rss',
      '/newsletters/SPORTS-HEALTH/issues',
      `/newsletters/sports%00health/issues`,
      `/newsletters/sports%00health/issues.rss`,
      `/newsletters/${'a'.repeat(100)}/issues`,
      `/newsletters/${SLUG}/issues/${'1'.repeat(100)}`,
      `/newsletters/${'a'.repeat(64)}/issues.rss`,
      '/newsletters/%C3%A9t%C3%A9/issues',
      '/newsletters/..%2F..%2Fetc/issues',
    ];
    for (const path of cases) {
      const res = await get(path);
      const body = await res.text();
      expect([path, res.status]).toEqual([path, 404]);
      expect(body).not.toMatch(/\bat [\w.<>]+ \(|Internal server error|node_modules/i);
    }
    // The page says what happened, in the reader pages' look, and is not indexed.
    const page = await (await get(`/newsletters/${SLUG}/issues/${scheduled}`)).text();
    expect(page).toContain('<h1>This issue is not in the archive</h1>');
    expect(page).toContain(`href="${PUBLIC}/newsletters/${SLUG}/issues"`);
    expect(page).toContain('noindex');
    expect(page).not.toContain('og:title');
    const unknown = await (await get('/newsletters/no-such-newsletter/issues')).text();
    expect(unknown).toContain('<h1>No archive here</h1>');
    // Past 100 characters a path segment is the framework's 414 (Fastify's maxParamLength), on every route.
    expect((await get(`/newsletters/${'a'.repeat(5000)}/issues`)).status).toBe(414);
    expect((await get(`/newsletters/${SLUG}/issues/${'1'.repeat(5000)}`)).status).toBe(414);
    // Malformed percent-encoding (or bytes that are no UTF-8) is the framework's 400, never a 500.
    for (const path of [`/newsletters/${SLUG}/issues/%E0%A4%A`, `/newsletters/${SLUG}/issues/%ED%A0%80`]) {
      expect([path, (await get(path)).status]).toEqual([path, 400]);
    }
  });

  it('pages the archive 20 at a time; a page out of range or not a number is a 404', async () => {
    expect((await admin(base(), 'POST', '/v1/newsletters', { slug: 'paged-news', name: 'Paged News' })).status).toBe(
      201,
    );
    // 25 sent issues (and a scheduled and a cancelled one) written directly: sending 25 is not the point here.
    await query(
      stack.db.url,
      `WITH n AS (SELECT id FROM newsletters WHERE slug = 'paged-news'),
       d AS (
         INSERT INTO digests (newsletter_id, status, trigger, send_at, started_at, finished_at, subject)
         SELECT n.id, s.status, 'manual', now() - make_interval(days => g), now() - make_interval(days => g),
                now() - make_interval(days => g), 'Paged issue ' || g
         FROM n, generate_series(1, 27) g,
              LATERAL (SELECT CASE g WHEN 26 THEN 'scheduled' WHEN 27 THEN 'cancelled' ELSE 'sent' END AS status) s
         RETURNING id)
       INSERT INTO digest_articles (digest_id, article_id, position)
       SELECT d.id, (SELECT id FROM articles ORDER BY id LIMIT 1), 1 FROM d`,
    );
    const subjects = (html: string) => [...html.matchAll(/>Paged issue (\d+)<\/a>/g)].map((m) => Number(m[1]));
    const one = await get('/newsletters/paged-news/issues');
    const pageOne = await one.text();
    expect(one.status).toBe(200);
    expect(subjects(pageOne)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(hrefs(pageOne)).toContain(`${PUBLIC}/newsletters/paged-news/issues?page=2`);
    expect(pageOne).toContain('aria-label="Issues, page 1 of 2"');
    const two = await get('/newsletters/paged-news/issues?page=2');
    const pageTwo = await two.text();
    expect(two.status).toBe(200);
    expect(subjects(pageTwo)).toEqual([21, 22, 23, 24, 25]);
    expect(hrefs(pageTwo)).toContain(`${PUBLIC}/newsletters/paged-news/issues`);
    expect(canonical(pageTwo)).toBe(`${PUBLIC}/newsletters/paged-news/issues?page=2`);
    expect((await get('/newsletters/paged-news/issues?page=1')).status).toBe(200);
    for (const q of ['3', '0', '-1', 'abc', '1.5', '01', '2e1', '%00', '9'.repeat(30), '1&page=2', '']) {
      const res = await get(`/newsletters/paged-news/issues?page=${q}`);
      expect([q, res.status]).toEqual([q, 404]);
    }
    // An issue still sending (a local digest's later waves wait): its web version is there for the
    // readers who already have it, and it is not listed until it is sent.
    const [sending] = await query<{ id: string }>(
      stack.db.url,
      `INSERT INTO digests (newsletter_id, status, trigger, send_at, started_at, subject)
       SELECT id, 'sending', 'manual', now(), now(), 'Paged issue still sending' FROM newsletters WHERE slug = 'paged-news'
       RETURNING id`,
    );
    expect((await get(`/newsletters/paged-news/issues/${sending.id}`)).status).toBe(200);
    expect(await (await get('/newsletters/paged-news/issues')).text()).not.toContain('still sending');
    await query(stack.db.url, `UPDATE digests SET status = 'cancelled' WHERE id = $1`, [sending.id]);
    expect((await get(`/newsletters/paged-news/issues/${sending.id}`)).status).toBe(404);
    // The feed holds the newest 50 at most; these are 25.
    const feed = parseXml(await (await get('/newsletters/paged-news/issues.rss')).text());
    const items = child(feed, 'channel')!.children.filter((c) => c.name === 'item');
    expect(items.map((i) => childText(i, 'title'))).toEqual(
      Array.from({ length: 25 }, (_, i) => `Paged issue ${i + 1}`),
    );
    // A newsletter with nothing sent yet: an empty archive and an empty, valid feed.
    expect((await admin(base(), 'POST', '/v1/newsletters', { slug: 'brand-new', name: 'Brand New' })).status).toBe(201);
    const empty = await get('/newsletters/brand-new/issues');
    expect(empty.status).toBe(200);
    expect(await empty.text()).toContain('No issues yet');
    expect((await get('/newsletters/brand-new/issues?page=2')).status).toBe(404);
    const emptyFeed = parseXml(await (await get('/newsletters/brand-new/issues.rss')).text());
    expect(child(emptyFeed, 'channel')!.children.filter((c) => c.name === 'item')).toEqual([]);
  });

  it('archive: false hides all three routes (404) until it is switched back on', async () => {
    const paths = [
      `/newsletters/${SLUG}/issues`,
      `/newsletters/${SLUG}/issues/${first}`,
      `/newsletters/${SLUG}/issues.rss`,
    ];
    const off = await admin<{ archive: boolean }>(base(), 'PATCH', `/v1/newsletters/${SLUG}`, { archive: false });
    expect([off.status, off.body.archive]).toEqual([200, false]);
    for (const path of paths) expect([path, (await get(path)).status]).toEqual([path, 404]);
    expect(await (await get(paths[1])).text()).not.toContain(SUBJECT.slice(0, 10));
    expect((await admin(base(), 'PATCH', `/v1/newsletters/${SLUG}`, { archive: true })).status).toBe(200);
    for (const path of paths) expect([path, (await get(path)).status]).toEqual([path, 200]);
  });

  it('needs no API key and is rate-limited per client IP, at ten times the public POST limit', async () => {
    const limited = await stack.startApps({ worker: false, env: { PUBLIC_POSTS_PER_IP_PER_MINUTE: '3' } });
    const statuses: number[] = [];
    for (let i = 0; i < 32; i += 1) {
      const res = await fetch(`${limited.baseUrl}/newsletters/${SLUG}/issues/${first}`, {
        headers: { accept: 'text/html' },
      });
      await res.text();
      statuses.push(res.status);
    }
    expect(statuses.slice(0, 30)).toEqual(Array.from({ length: 30 }, () => 200));
    expect(statuses.slice(30)).toEqual([429, 429]);
    // A signup from the same address still meets the POST limit of 3.
    const posts: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const res = await fetch(`${limited.baseUrl}/v1/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: `limit${i}@example.com`, newsletters: [SLUG] }),
      });
      await res.text();
      posts.push(res.status);
    }
    expect(posts).toEqual([202, 202, 202, 429]);
    await limited.close();
  });

  describeInBrowser('in a browser', () => {
    let browser: Browser;
    beforeAll(async () => {
      const port = new URL(base()).port;
      // The pages link to PUBLIC_URL; article pictures live on hosts that do not exist here.
      browser = await launchBrowser({ 'mailroom.test': `127.0.0.1:${port}`, '*.example': '~NOTFOUND' });
    });
    afterAll(() => browser?.close());

    it.each([
      ['the archive', () => `/newsletters/${SLUG}/issues`],
      ['an issue', () => `/newsletters/${SLUG}/issues/${first}`],
      ['a missing issue', () => `/newsletters/${SLUG}/issues/${scheduled}`],
    ])('%s has no serious or critical axe-core finding and fits a phone', async (_name, path) => {
      const context = await newContext(browser);
      try {
        const page = await context.newPage();
        await page.goto(`${PUBLIC}${path()}`);
        expect(await axeSeriousFindings(page)).toEqual([]);
        await page.setViewportSize(PHONE);
        expect(await horizontalOverflow(page)).toBe(0);
      } finally {
        await context.close();
      }
    });
  });
});
