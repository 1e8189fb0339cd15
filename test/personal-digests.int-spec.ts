import 'reflect-metadata';
import { MailRenderer } from '#mail/mail-renderer.service.js';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { admin, waitUntil } from './support/admin.js';
import { ADMIN_KEY, type Backend } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

interface Digest {
  id: string;
  status: string;
  sent: number;
  variants: number;
}

const MARKETER = { email: 'personal-marketer@example.com', password: 'marketing-password-1' };

/** The issue, in the order the digest is composed with. */
const ARTICLES = [
  { slug: 'plain', title: 'Winter walking tips', topics: [] as string[] },
  { slug: 'neck', title: 'Neck stretches at your desk', topics: ['Neck Pain'] },
  { slug: 'sciatica', title: 'Sciatica and long drives', topics: ['Sciatica'] },
  { slug: 'both', title: 'When neck pain meets sciatica', topics: ['Neck Pain', 'Sciatica'] },
];
const TITLES = ARTICLES.map((a) => a.title);

/** Readers (prefix → their topics). */
const READERS: Record<string, string[]> = {
  neck: ['Neck Pain'],
  sci: ['sciatica '], // another case and a space: the same topic
  both: ['Sciatica', 'Neck Pain'],
  none: [],
  knee: ['Knee Pain'],
};

describe.each<Backend>(['postgres', 'redis'])('personal digests on the %s queue backend', (backend) => {
  const stack = useStack({
    label: `personal_${backend}`,
    queue: backend,
    env: { SEND_RATE_PER_SECOND: '10000' },
    prepare: async () => {
      for (const [prefix, topics] of Object.entries(READERS)) {
        await addAudience(stack.db.url, { prefix: `p${prefix}-`, count: 2, newsletter: 'spine-health' });
        await query(
          stack.db.url,
          `UPDATE subscriptions s SET topics = $2 FROM subscribers u
           WHERE u.id = s.subscriber_id AND u.email LIKE $1`,
          [`p${prefix}-%`, topics],
        );
      }
    },
  });
  const base = () => stack.apps.baseUrl;
  // Each test sends its own copy of the issue: a reader never gets one article twice.
  const SETS = ['order', 'only', 'off', 'preview'];
  const url = (slug: string, set: string) => `https://www.spine-health.example/personal/${backend}/${set}/${slug}`;

  beforeAll(async () => {
    for (const set of SETS)
      for (const [i, a] of ARTICLES.entries()) {
        const r = await admin(base(), 'POST', '/v1/articles', {
          url: url(a.slug, set),
          title: a.title,
          topics: a.topics,
          publishedAt: new Date(Date.now() - (i + 1) * 3_600_000).toISOString(),
          newsletters: ['spine-health'],
        });
        expect([200, 201]).toContain(r.status);
      }
  });

  /** Sends a digest of the four articles in ARTICLES order; resolves once it is sent. */
  const send = async (subject: string, set: string): Promise<Digest> => {
    const created = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/spine-health/digests', {
      articles: ARTICLES.map((a) => url(a.slug, set)),
      subject,
    });
    expect(created.status).toBe(201);
    const d = await waitUntil(
      () => admin<Digest>(base(), 'GET', `/v1/digests/${created.body.id}`).then((r) => r.body),
      (x) => x.status === 'sent',
      60_000,
      `digest ${created.body.id}`,
    );
    await stack.smtp.waitFor(
      () => stack.smtp.messages.filter((m) => m.parsed.subject === subject).length >= 10,
      30_000,
    );
    return d;
  };
  /** The article titles in the order a reader's copy shows them, and its HTML. */
  const copyOf = (subject: string, prefix: string) => {
    const mail = stack.smtp.messages.find(
      (m) => m.parsed.subject === subject && m.envelope.to[0]?.startsWith(`p${prefix}-`),
    );
    expect(mail).toBeDefined();
    const html = mail!.parsed.html as string;
    const order = TITLES.filter((t) => html.includes(`>${t}<`)).sort(
      (a, b) => html.indexOf(`>${a}<`) - html.indexOf(`>${b}<`),
    );
    return { order, html, text: mail!.parsed.text ?? '' };
  };
  const setMode = async (personalize: string) =>
    expect((await admin(base(), 'PATCH', '/v1/newsletters/spine-health', { personalize })).status).toBe(200);

  it("order (the default): each reader's topics first, one render per distinct set of topics, and copy that says so", async () => {
    const newsletter = await admin<{ personalize: string }>(base(), 'GET', '/v1/newsletters/spine-health');
    expect(newsletter.body.personalize).toBe('order');
    const before = MailRenderer.mjmlCalls;
    const d = await send('Order mode', 'order');
    // Variant 0 (the issue as it is), {neck pain}, {sciatica}, {neck pain, sciatica}; Knee Pain is in no article.
    expect(d.variants).toBe(4);
    expect(MailRenderer.mjmlCalls - before).toBe(4);
    expect(d.sent).toBe(10);

    const neck = copyOf('Order mode', 'neck');
    expect(neck.order).toEqual([TITLES[1], TITLES[3], TITLES[0], TITLES[2]]);
    expect(neck.html).toContain('The articles on Neck Pain, the topics you follow, come first.');
    const sci = copyOf('Order mode', 'sci');
    expect(sci.order).toEqual([TITLES[2], TITLES[3], TITLES[0], TITLES[1]]);
    expect(sci.text).toContain('The articles on Sciatica, the topics you follow, come first.');
    const both = copyOf('Order mode', 'both');
    expect(both.order).toEqual([TITLES[1], TITLES[2], TITLES[3], TITLES[0]]);
    expect(both.html).toContain('The articles on Neck Pain and Sciatica, the topics you follow, come first.');
    for (const prefix of ['none', 'knee']) {
      const plain = copyOf('Order mode', prefix);
      expect(plain.order).toEqual(TITLES);
      expect(plain.html).not.toContain('the topics you follow');
    }
  });

  it('only: just the articles of their topics, the whole issue when none match', async () => {
    await setMode('only');
    const d = await send('Only mode', 'only');
    expect(d.variants).toBe(4);
    const neck = copyOf('Only mode', 'neck');
    expect(neck.order).toEqual([TITLES[1], TITLES[3]]);
    expect(neck.html).toContain('This issue holds only the articles on Neck Pain, the topics you follow.');
    expect(copyOf('Only mode', 'both').order).toEqual([TITLES[1], TITLES[2], TITLES[3]]);
    expect(copyOf('Only mode', 'knee').order).toEqual(TITLES);
    expect(copyOf('Only mode', 'none').order).toEqual(TITLES);
  });

  it('off: one order for all, rendered once', async () => {
    await setMode('off');
    const before = MailRenderer.mjmlCalls;
    const d = await send('Off mode', 'off');
    expect(d.variants).toBe(1);
    expect(MailRenderer.mjmlCalls - before).toBe(1);
    for (const prefix of Object.keys(READERS)) {
      const copy = copyOf('Off mode', prefix);
      expect(copy.order).toEqual(TITLES);
      expect(copy.html).not.toContain('the topics you follow');
    }
    await setMode('order');
  });

  it('previews the variant of a reader with given topics (?topics=), and refuses an unknown mode', async () => {
    const created = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/spine-health/digests', {
      articles: ARTICLES.map((a) => url(a.slug, 'preview')),
      sendAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    const preview = await fetch(
      `${base()}/v1/digests/${created.body.id}/preview?topics=${encodeURIComponent('sciatica,Gardening')}`,
      { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
    );
    expect(preview.status).toBe(200);
    const html = await preview.text();
    expect(html).toContain('The articles on Sciatica, the topics you follow, come first.');
    expect(html.indexOf(`>${TITLES[2]}<`)).toBeLessThan(html.indexOf(`>${TITLES[0]}<`));
    const plain = await fetch(`${base()}/v1/digests/${created.body.id}/preview`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(await plain.text()).not.toContain('the topics you follow');
    expect((await admin(base(), 'POST', `/v1/digests/${created.body.id}/cancel`)).status).toBe(200);

    // The console's digest page: a sent digest lists its variants, each with its preview.
    if (backend === 'postgres') {
      expect((await stack.apps.api.get(StaffUsersService).create({ ...MARKETER, role: 'marketer' })).ok).toBe(true);
      const m = new ConsoleBrowser(base());
      expect((await m.signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
      const [{ id }] = await query<{ id: string }>(
        stack.db.url,
        `SELECT d.id::text FROM digests d WHERE d.subject_given = 'Order mode'`,
      );
      const page = await m.get(`/admin/digests/${id}`);
      expect(page.status).toBe(200);
      expect(page.text).toContain('Readers get one of 4 variants');
      expect(page.text).toMatch(
        /<a href="\/admin\/digests\/\d+\?topics(=|&#x3D;)neck%20pain#preview-heading">neck pain<\/a> <span class="muted">\(2 readers\)/,
      );
      const chosen = await m.get(`/admin/digests/${id}?topics=sciatica`);
      const src = /<iframe src="([^"]+)" title="Preview at desktop width"/
        .exec(chosen.text)![1]
        .replace(/&amp;/g, '&')
        .replace(/&#x3D;/g, '=');
      expect(src).toBe(`/admin/digests/${id}/preview?topics=sciatica`);
      const frame = await m.get(src);
      expect(frame.status).toBe(200);
      expect(frame.text).toContain('The articles on Sciatica, the topics you follow, come first.');
    }
    const bad = await admin(base(), 'PATCH', '/v1/newsletters/spine-health', { personalize: 'sometimes' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('personalize must be one of off, order, only');
  });
});
