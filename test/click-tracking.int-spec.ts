import 'reflect-metadata';
import Handlebars from 'handlebars';
import { articlePart, clickKey, readerPart } from '#digests/click-tokens.js';
import { ClickRecorder } from '../apps/api/src/clicks/click-recorder.service.js';
import { admin, waitUntil } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { query } from './support/db.js';
import { sleep } from './support/http.js';
import { useStack } from './support/stack.js';

const BROWSER =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';
const METRICS_TOKEN = 'metrics-token-clicks-0123456789';

interface Click {
  subscriber: string;
  article: string;
  verdict: string;
  reason: string | null;
}

describe('tracked links (/c/:token)', () => {
  const stack = useStack({
    label: 'clicks',
    queue: 'postgres',
    env: { SEND_RATE_PER_SECOND: '10000', METRICS_TOKEN },
    prepare: () => addAudience(stack.db.url, { prefix: 'clk', count: 4, newsletter: 'spine-health' }),
  });
  const base = () => stack.apps.baseUrl;
  let n = 0;
  const addArticle = async (title: string) => {
    const url = `https://www.spine-health.example/clicks/${(n += 1)}?utm=a&b=c`;
    const res = await admin<{ id: string }>(base(), 'POST', '/v1/articles', {
      url,
      title,
      publishedAt: new Date(Date.now() - 3_600_000).toISOString(),
      newsletters: ['spine-health'],
    });
    expect(res.status).toBe(201);
    pending.push(url);
    return url;
  };
  /** Articles added since the last digest: the next one carries exactly these, in this order. */
  const pending: string[] = [];
  const sendDigest = async () => {
    const created = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/spine-health/digests', {
      articles: pending.splice(0),
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const d = await waitUntil(
      () => admin<{ status: string; subject: string }>(base(), 'GET', `/v1/digests/${id}`).then((r) => r.body),
      (x) => x.status === 'sent',
      60_000,
      `digest ${id}`,
    );
    await stack.smtp.waitFor(() => mailsOf(d.subject).length >= 4, 30_000);
    return { id, subject: d.subject };
  };
  const mailsOf = (subject: string) =>
    stack.smtp.messages.filter((m) => m.parsed.subject === subject && m.envelope.to[0]?.startsWith('clk'));
  const mailTo = (subject: string, prefix: string) =>
    mailsOf(subject).find((m) => m.envelope.to[0]?.startsWith(prefix))!;
  /** The distinct tracked links of a mail's HTML, in order. */
  const trackedLinks = (html: string) => [
    ...new Set([...html.matchAll(/href="http:\/\/mailroom\.test(\/c\/[^"]+)"/g)].map((m) => m[1])),
  ];
  /** A request, then every click it queued written (clicks are written behind the answer). */
  const get = async (path: string, headers: Record<string, string> = { 'user-agent': BROWSER }, method = 'GET') => {
    const res = await fetch(`${base()}${path}`, { method, headers, redirect: 'manual' });
    await written();
    return res;
  };
  const written = () =>
    waitUntil(
      async () => stack.apps.api.get(ClickRecorder).pending,
      (n) => n === 0,
      10_000,
      'clicks written',
    );
  const clicks = (digest: string) =>
    query<Click>(
      stack.db.url,
      `SELECT s.email AS subscriber, a.url AS article, c.verdict, c.reason FROM link_clicks c
       JOIN subscribers s ON s.id = c.subscriber_id JOIN articles a ON a.id = c.article_id
       WHERE c.digest_id = $1 ORDER BY c.id`,
      [digest],
    );
  /** As if the mail had been delivered long ago: no click counts as early. */
  const deliveredLongAgo = (digest: string) =>
    query(stack.db.url, `UPDATE deliveries SET finished_at = now() - interval '1 hour' WHERE digest_id = $1`, [digest]);

  let digest: { id: string; subject: string };
  let urls: string[];

  beforeAll(async () => {
    urls = [await addArticle('Sciatica: what helps in the first week'), await addArticle('Desk stretches')];
    digest = await sendDigest();
  }, 120_000);

  it('links every article through /c/:token in the HTML and the text, and the web version at the top', async () => {
    const mail = mailTo(digest.subject, 'clk1');
    const html = mail.parsed.html as string;
    const links = trackedLinks(html);
    expect(links).toHaveLength(2);
    // No article is linked straight: the only way to it is the tracked link.
    expect(html).not.toContain('href="https://www.spine-health.example/clicks/');
    for (const l of links) expect(mail.parsed.text).toContain(`http://mailroom.test${l}`);
    expect(html).toContain(`href="http://mailroom.test/newsletters/spine-health/issues/${digest.id}"`);
    expect(html).toContain('View in your browser');
    // One reader's links differ from another's in the reader half only.
    const other = trackedLinks(mailTo(digest.subject, 'clk2').parsed.html as string);
    expect(other).not.toEqual(links);
    expect(other.map((l) => l.split('.').slice(0, 3).join('.'))).toEqual(
      links.map((l) => l.split('.').slice(0, 3).join('.')),
    );
  });

  it('counts a click within seconds of delivery as a machine, later ones by a browser as human', async () => {
    const [first] = trackedLinks(mailTo(digest.subject, 'clk1').parsed.html as string);
    const early = await get(first);
    expect(early.status).toBe(302);
    expect(early.headers.get('location')).toBe(urls[0]);
    await deliveredLongAgo(digest.id);
    const res = await get(first);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(urls[0]);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(await clicks(digest.id)).toEqual([
      { subscriber: 'clk1@example.com', article: urls[0], verdict: 'machine', reason: 'early' },
      { subscriber: 'clk1@example.com', article: urls[0], verdict: 'human', reason: null },
    ]);
  });

  it('answers HEAD without counting; prefetch and scanners count as machines', async () => {
    const [, second] = trackedLinks(mailTo(digest.subject, 'clk1').parsed.html as string);
    const before = (await clicks(digest.id)).length;
    const head = await get(second, { 'user-agent': BROWSER }, 'HEAD');
    expect(head.status).toBe(302);
    expect(head.headers.get('location')).toBe(urls[1]);
    expect(await clicks(digest.id)).toHaveLength(before);

    const [link] = trackedLinks(mailTo(digest.subject, 'clk2').parsed.html as string);
    for (const headers of [
      { 'user-agent': BROWSER, 'sec-purpose': 'prefetch;prerender' },
      { 'user-agent': BROWSER, purpose: 'prefetch' },
      { 'user-agent': 'Mozilla/5.0 (compatible; Barracuda Sentinel (EE))' },
      { 'user-agent': 'python-requests/2.31.0' },
      { 'user-agent': '' },
    ] as Record<string, string>[]) {
      const res = await get(link, headers);
      expect(res.status).toBe(302);
    }
    const mine = (await clicks(digest.id)).filter((c) => c.subscriber === 'clk2@example.com');
    expect(mine.map((c) => [c.verdict, c.reason])).toEqual([
      ['machine', 'prefetch'],
      ['machine', 'prefetch'],
      ['machine', 'scanner'],
      ['machine', 'scanner'],
      ['machine', 'scanner'],
    ]);
  });

  it('counts every link of a mail clicked within seconds as a burst, also the clicks already recorded', async () => {
    // One by one: the first is recorded human, then turned into a burst by the second.
    const [a, b] = trackedLinks(mailTo(digest.subject, 'clk3').parsed.html as string);
    await get(a);
    expect((await clicks(digest.id)).filter((c) => c.subscriber === 'clk3@example.com')).toEqual([
      { subscriber: 'clk3@example.com', article: urls[0], verdict: 'human', reason: null },
    ]);
    await get(b);
    expect((await clicks(digest.id)).filter((c) => c.subscriber === 'clk3@example.com').map((c) => c.reason)).toEqual([
      'burst',
      'burst',
    ]);
    // At once: both go in one statement.
    const [c, d] = trackedLinks(mailTo(digest.subject, 'clk4').parsed.html as string);
    await Promise.all([
      fetch(`${base()}${c}`, { redirect: 'manual', headers: { 'user-agent': BROWSER } }),
      fetch(`${base()}${d}`, { redirect: 'manual', headers: { 'user-agent': BROWSER } }),
    ]);
    await written();
    expect((await clicks(digest.id)).filter((x) => x.subscriber === 'clk4@example.com').map((x) => x.reason)).toEqual([
      'burst',
      'burst',
    ]);
    // A reader who comes back to the other article later is a reader again.
    await sleep(11_000);
    await get(c);
    expect((await clicks(digest.id)).filter((x) => x.subscriber === 'clk4@example.com').map((x) => x.verdict)).toEqual([
      'machine',
      'machine',
      'human',
    ]);
  }, 30_000);

  it('answers 404 for a tampered, foreign or unknown token, and never redirects elsewhere', async () => {
    const [link] = trackedLinks(mailTo(digest.subject, 'clk1').parsed.html as string);
    const token = link.slice('/c/'.length);
    const parts = token.split('.');
    const key = clickKey(stack.config.appSecret);
    const before = (await clicks(digest.id)).length;
    for (const bad of [
      [parts[0], parts[1], parts[2], '2', parts[4]].join('.'),
      [parts[0], String(Number(parts[1]) + 1), parts[2], parts[3], parts[4]].join('.'),
      `${token}x`,
      'not-a-token',
      encodeURIComponent('https://evil.example/'),
      `${articlePart(clickKey('another-secret-0123456789abcdef'), digest.id, parts[1])}.${parts[3]}.${parts[4]}`,
      // Well signed, for a digest that does not exist.
      `${articlePart(key, '999999', parts[1])}.${readerPart(key, '999999', parts[3])}`,
    ]) {
      const res = await get(`/c/${bad}`);
      expect(res.status).toBe(404);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.get('content-type')).toContain('text/html');
      expect(await res.text()).toContain('This link is not valid');
    }
    expect(await get(`/c/${token}?url=https://evil.example/`).then((r) => r.headers.get('location'))).toBe(urls[0]);
    expect((await clicks(digest.id)).length).toBe(before + 1);
    // A click changes no subscription.
    const subs = await query<{ status: string }>(
      stack.db.url,
      `SELECT DISTINCT s.status FROM subscriptions s JOIN subscribers r ON r.id = s.subscriber_id WHERE r.email LIKE 'clk%'`,
    );
    expect(subs).toEqual([{ status: 'active' }]);
  });

  it('writes every click it answered before the api shuts down', async () => {
    const second = await stack.startApps({ config: stack.apps.config, worker: false });
    const [link] = trackedLinks(mailTo(digest.subject, 'clk2').parsed.html as string);
    const before = (await clicks(digest.id)).length;
    const answers = await Promise.all(
      Array.from({ length: 200 }, () =>
        fetch(`${second.baseUrl}${link}`, { redirect: 'manual', headers: { 'user-agent': BROWSER } }),
      ),
    );
    expect(answers.every((r) => r.status === 302)).toBe(true);
    // Closed at once: the clicks still queued behind the answers are written on the way out.
    const recorder = second.api.get(ClickRecorder);
    await second.close();
    expect(recorder.pending).toBe(0);
    expect((await clicks(digest.id)).length).toBe(before + 200);
  });

  it("links a preview's articles through tokens of nobody: they work and count nothing", async () => {
    const res = await admin<string>(base(), 'GET', `/v1/digests/${digest.id}/preview`);
    const links = trackedLinks(String(res.body));
    expect(links).toHaveLength(2);
    const before = (await clicks(digest.id)).length;
    const go = await get(links[0]);
    expect(go.status).toBe(302);
    expect((await clicks(digest.id)).length).toBe(before);
  });

  it('exposes the clicks as a Prometheus counter', async () => {
    const text = await fetch(`${base()}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } }).then((r) =>
      r.text(),
    );
    const rows = await query<{ verdict: string; reason: string; n: number }>(
      stack.db.url,
      `SELECT verdict, COALESCE(reason, '') AS reason, count(*)::int AS n FROM link_clicks GROUP BY 1, 2`,
    );
    expect(rows.length).toBeGreaterThan(2);
    for (const r of rows)
      expect(text).toContain(
        `mailroom_link_clicks_total{newsletter="spine-health",verdict="${r.verdict}",reason="${r.reason}"} ${r.n}`,
      );
  });

  it('with tracking off links straight to the articles; with the archive off leaves out the web version', async () => {
    const off = await admin<{ tracking: boolean; archive: boolean }>(base(), 'PATCH', '/v1/newsletters/spine-health', {
      tracking: false,
      archive: false,
    });
    expect(off.body).toMatchObject({ tracking: false, archive: false });
    const url = await addArticle('Walking for back pain');
    const plain = await sendDigest();
    const html = mailTo(plain.subject, 'clk1').parsed.html as string;
    expect(trackedLinks(html)).toEqual([]);
    expect(html).toContain(`href="${Handlebars.escapeExpression(url)}"`);
    expect(html).not.toContain('View in your browser');
    const [row] = await query<{ tracking: boolean }>(stack.db.url, `SELECT tracking FROM digests WHERE id = $1`, [
      plain.id,
    ]);
    expect(row.tracking).toBe(false);
    await admin(base(), 'PATCH', '/v1/newsletters/spine-health', { tracking: true, archive: true });
  }, 90_000);
});
