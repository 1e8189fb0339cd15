import 'reflect-metadata';
import { DigestPlanner } from '#digests/digest-planner.service.js';
import { admin, waitUntil } from './support/admin.js';
import type { Backend } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

interface Digest {
  id: string;
  status: string;
  recipients: number;
  sent: number;
  skipped: number;
  variants: number;
}

/** Readers: of both newsletters, of Spine-health only, of Sports-health only (2 each). */
const BOTH = 'twice-both-';
const SPINE = 'twice-spine-';
const SPORTS = 'twice-sports-';

describe.each<Backend>(['postgres', 'redis'])('never the same article twice, on the %s queue backend', (backend) => {
  const stack = useStack({
    label: `twice_${backend}`,
    queue: backend,
    env: { SEND_RATE_PER_SECOND: '10000' },
    prepare: async () => {
      // Plain article links: the mails are read for which articles each reader got.
      await query(stack.db.url, `UPDATE newsletters SET tracking = false`);
      await addAudience(stack.db.url, { prefix: BOTH, count: 2, newsletter: 'spine-health' });
      await query(
        stack.db.url,
        `INSERT INTO subscriptions (subscriber_id, newsletter_id, status, confirmed_at)
         SELECT u.id, (SELECT id FROM newsletters WHERE slug = 'sports-health'), 'active', now()
         FROM subscribers u WHERE u.email LIKE $1`,
        [`${BOTH}%`],
      );
      await addAudience(stack.db.url, { prefix: SPINE, count: 2, newsletter: 'spine-health' });
      await addAudience(stack.db.url, { prefix: SPORTS, count: 2, newsletter: 'sports-health' });
    },
  });
  const base = () => stack.apps.baseUrl;
  const url = (slug: string) => `https://www.spine-health.example/twice/${backend}/${slug}`;

  /** An article filed under the given newsletters. */
  const article = async (slug: string, title: string, newsletters: string[]) => {
    const r = await admin(base(), 'POST', '/v1/articles', {
      url: url(slug),
      title,
      publishedAt: new Date(Date.now() - 3_600_000).toISOString(),
      newsletters,
    });
    expect([200, 201]).toContain(r.status);
  };
  const create = async (newsletter: string, slugs: string[], subject: string): Promise<string> => {
    const created = await admin<{ id: string }>(base(), 'POST', `/v1/newsletters/${newsletter}/digests`, {
      articles: slugs.map(url),
      subject,
    });
    expect(created.status).toBe(201);
    return created.body.id;
  };
  const finished = (id: string) =>
    waitUntil(
      () => admin<Digest>(base(), 'GET', `/v1/digests/${id}`).then((r) => r.body),
      (x) => x.status === 'sent',
      60_000,
      `digest ${id}`,
    );
  const mailTo = (subject: string, prefix: string) =>
    stack.smtp.messages.filter((m) => m.parsed.subject === subject && m.envelope.to[0]?.startsWith(prefix));
  /** Every (reader, article) pair the SMTP sink saw: each must appear once. */
  const received = () =>
    stack.smtp.messages.flatMap((m) => {
      const html = (m.parsed.html || '') as string;
      // An article is linked more than once in a mail (title, "read more"): counted once per mail.
      const slugs = new Set([...html.matchAll(new RegExp(`/twice/${backend}/([a-z0-9-]+)`, 'g'))].map((x) => x[1]));
      return [...slugs].map((s) => `${m.envelope.to[0]} ${s}`);
    });

  beforeAll(async () => {
    await article('shared', 'Stretches for runners with sciatica', ['spine-health', 'sports-health']);
    await article('spine-only', 'Sleeping positions for a sore back', ['spine-health']);
    await article('sports-only', 'Returning to tennis after a sprain', ['sports-health']);
    await article('shared-2', 'Warming up a stiff neck', ['spine-health', 'sports-health']);
    await article('shared-3', 'Ice or heat after a workout', ['spine-health', 'sports-health']);
  });

  it('an article filed under two newsletters reaches a reader of both once, and the copy says what was left out', async () => {
    const spine = await finished(await create('spine-health', ['shared', 'spine-only'], 'Spine issue'));
    expect(spine.sent).toBe(4);
    await stack.smtp.waitFor(() => stack.smtp.messages.filter((m) => m.parsed.subject === 'Spine issue').length >= 4);

    const sports = await finished(await create('sports-health', ['shared', 'sports-only'], 'Sports issue'));
    // Readers of both get the sports-only article alone; readers of sports alone get both.
    expect(sports.sent).toBe(4);
    expect(sports.variants).toBe(2);
    await stack.smtp.waitFor(() => stack.smtp.messages.filter((m) => m.parsed.subject === 'Sports issue').length >= 4);
    for (const m of mailTo('Sports issue', BOTH)) {
      expect(m.parsed.html).not.toContain(url('shared'));
      expect(m.parsed.html).toContain(url('sports-only'));
      expect(m.parsed.html).toContain('One article we already sent you is left out.');
    }
    for (const m of mailTo('Sports issue', SPORTS)) {
      expect(m.parsed.html).toContain(url('shared'));
      expect(m.parsed.html).not.toContain('already sent you');
    }

    // The same article composed into a later digest of the same newsletter: nobody gets it again.
    const again = await finished(await create('spine-health', ['shared'], 'Spine again'));
    expect(again.sent).toBe(0);
    expect(again.skipped).toBe(4);
    const [row] = await query<{ detail: string }>(
      stack.db.url,
      `SELECT detail FROM deliveries WHERE digest_id = $1 LIMIT 1`,
      [again.id],
    );
    expect(row.detail).toContain('already sent');
    expect(mailTo('Spine again', '')).toHaveLength(0);

    // A retried plan (a redelivered job) changes nothing: the ledger is what was sent.
    await stack.apps.worker!.get(DigestPlanner).plan(sports.id);
    const pairs = received();
    expect(new Set(pairs).size).toBe(pairs.length);
  });

  it('two newsletters planned at the same moment still send a shared article once per reader', async () => {
    const [a, b] = await Promise.all([
      create('spine-health', ['shared-2', 'shared-3'], 'Same moment spine'),
      create('sports-health', ['shared-2', 'shared-3'], 'Same moment sports'),
    ]);
    const [da, db] = await Promise.all([finished(a), finished(b)]);
    // Readers of both got the two articles in one of the two digests only.
    expect(da.sent + db.sent).toBe(2 + 2 + 2);
    expect(da.skipped + db.skipped).toBe(2);
    const pairs = received();
    expect(new Set(pairs).size).toBe(pairs.length);
    for (const prefix of [BOTH, SPINE, SPORTS]) {
      const got = pairs.filter((p) => p.startsWith(prefix) && / shared-[23]$/.test(p));
      expect(got).toHaveLength(4);
    }
  });
});
