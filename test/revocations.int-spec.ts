import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '#db/data-source.js';
import { RevocationNoticesRepository } from '#digests/revocation-notices.repository.js';
import { Revocations } from '#digests/revocations.service.js';
import { waitUntil } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { query } from './support/db.js';
import { useTestDatabase } from './support/stack.js';

/**
 * The revocation notices the digest sender relies on to claim rows ahead: every way a claimed
 * delivery becomes unsendable is heard, and a lost listening connection is seen (a new epoch) and
 * mended.
 */
describe('revocation notices', () => {
  const testDb = useTestDatabase({
    label: 'revocations',
    prepare: () => addAudience(testDb.db.url, { prefix: 'rev', count: 6, newsletter: 'spine-health' }),
  });
  let ds: DataSource;
  let revocations: Revocations;
  let people: { subscriber_id: string; subscription_id: string }[];

  beforeAll(async () => {
    ds = new DataSource(dataSourceOptions(testDb.db.url));
    await ds.initialize();
    people = await query(
      testDb.db.url,
      `SELECT s.subscriber_id::text, s.id::text AS subscription_id FROM subscriptions s
       JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email LIKE 'rev%' ORDER BY s.id`,
    );
    revocations = new Revocations(new RevocationNoticesRepository(ds));
    await revocations.start();
  });

  // Before the database is dropped.
  testDb.onTeardown(async () => {
    await revocations?.onApplicationShutdown();
    await ds?.destroy();
  });

  const heard = (key: string) =>
    waitUntil(
      () => Promise.resolve(revocations.since(key, 0)),
      (x) => x,
      5_000,
      `notice ${key}`,
    );

  it('hears an unsubscribe, a bounce, an erasure and a digest that stops sending, once committed', async () => {
    expect(revocations.live).toBe(true);
    const [a, b, c] = people;

    // Inside a transaction, nothing is heard until it commits.
    const client = await ds.createQueryRunner();
    await client.startTransaction();
    await client.query(`UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1`, [a.subscription_id]);
    await new Promise((r) => setTimeout(r, 200));
    expect(revocations.since(`n:${a.subscription_id}`, 0)).toBe(false);
    await client.commitTransaction();
    await client.release();
    await heard(`n:${a.subscription_id}`);

    await query(testDb.db.url, `UPDATE subscribers SET status = 'bounced' WHERE id = $1`, [b.subscriber_id]);
    await heard(`s:${b.subscriber_id}`);

    await query(testDb.db.url, `DELETE FROM subscribers WHERE id = $1`, [c.subscriber_id]);
    await heard(`s:${c.subscriber_id}`);
    await heard(`n:${c.subscription_id}`);

    const [{ id }] = await query<{ id: string }>(
      testDb.db.url,
      `INSERT INTO digests (newsletter_id, status, send_at, trigger) SELECT id, 'sending', now(), 'manual' FROM newsletters
       WHERE slug = 'spine-health' RETURNING id::text`,
    );
    await query(testDb.db.url, `UPDATE digests SET status = 'cancelled' WHERE id = $1`, [id]);
    await heard(`d:${id}`);
  });

  it('says nothing of changes that leave a delivery sendable', async () => {
    const [, , , d, e] = people;
    await query(testDb.db.url, `UPDATE subscriptions SET topics = ARRAY['Neck Pain'] WHERE id = $1`, [
      d.subscription_id,
    ]);
    await query(testDb.db.url, `UPDATE subscribers SET name = 'Renamed' WHERE id = $1`, [e.subscriber_id]);
    // A change that is heard, after the two above: once it is, they would have been too.
    await query(testDb.db.url, `UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1`, [e.subscription_id]);
    await heard(`n:${e.subscription_id}`);
    expect(revocations.since(`n:${d.subscription_id}`, 0)).toBe(false);
    expect(revocations.since(`s:${e.subscriber_id}`, 0)).toBe(false);
  });

  it('holds a notice only against claims taken before it: a reader who comes back is mailable', async () => {
    const [a] = people;
    expect(revocations.since(`n:${a.subscription_id}`, 0)).toBe(true);
    await query(testDb.db.url, `UPDATE subscriptions SET status = 'active' WHERE id = $1`, [a.subscription_id]);
    const mark = revocations.mark;
    expect(revocations.since(`n:${a.subscription_id}`, mark)).toBe(false);
    await query(testDb.db.url, `UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1`, [a.subscription_id]);
    await waitUntil(
      () => Promise.resolve(revocations.since(`n:${a.subscription_id}`, mark)),
      (x) => x,
      5_000,
      'second unsubscribe heard',
    );
  });

  it('marks a lost listening connection with a new epoch, and listens again', async () => {
    const before = revocations.epoch;
    const killed = await query<{ pid: number }>(
      testDb.db.url,
      `SELECT pg_terminate_backend(pid) AS ok, pid FROM pg_stat_activity
       WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`,
    );
    expect(killed).toHaveLength(1);
    await waitUntil(
      () => Promise.resolve(revocations.live),
      (live) => !live,
      5_000,
      'listener down',
    );
    expect(revocations.epoch).toBeGreaterThan(before);
    const down = revocations.epoch;
    await waitUntil(
      () => Promise.resolve(revocations.live),
      (live) => live,
      10_000,
      'listener back',
    );
    expect(revocations.epoch).toBeGreaterThan(down);
    const [, , , , , f] = people;
    await query(testDb.db.url, `UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1`, [f.subscription_id]);
    await heard(`n:${f.subscription_id}`);
  });
});
