import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { DIGEST_QUEUE } from '#queue/jobs.js';
import { admin, waitUntil } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { query } from './support/db.js';
import { postJson, sleep } from './support/http.js';
import { LocalRedisSentinel, infoFields } from './support/redis-ha.js';
import { useStack } from './support/stack.js';

/**
 * BullMQ on a real Sentinel setup (REDIS_SENTINELS): a master, one replica and three sentinels.
 * The master is SIGKILLed while a digest is being sent; the sentinels promote the replica, the
 * apps follow, and the digest completes with every reader mailed exactly once. Replication is
 * asynchronous, so a failover can lose the master's last writes: the second case makes sure it
 * does (the replica is frozen for a while first) and the ledger in PostgreSQL still holds.
 */
const READERS = 300;
const figures: Record<string, unknown> = {};
function record(name: string, value: unknown): void {
  figures[name] = value;
  mkdirSync('artifacts', { recursive: true });
  writeFileSync('artifacts/redis-sentinel.json', JSON.stringify(figures, null, 2));
}

const group = new LocalRedisSentinel();

beforeAll(() => group.start(), 60_000);

describe('BullMQ on Redis Sentinel, master killed mid-digest', () => {
  const stack = useStack({
    label: 'redis_sentinel',
    smtp: { parse: false },
    env: () => ({
      REDIS_SENTINELS: group.sentinelList,
      REDIS_SENTINEL_NAME: group.name,
      // Slow enough that the digest is still sending when the master dies.
      SEND_RATE_PER_SECOND: '40',
      DIGEST_BATCH_SIZE: '25',
      // Lost work is looked for often, so a job the failover lost is rebuilt within seconds.
      RECONCILE_INTERVAL_MS: '300',
      RECONCILE_AFTER_MS: '3000',
      DELIVERY_STALE_SECONDS: '30',
      JOB_LOCK_MS: '2000',
    }),
    prepare: async () => {
      await addAudience(stack.db.url, { prefix: 'sentinel-a', count: READERS, newsletter: 'spine-health' });
      await addAudience(stack.db.url, { prefix: 'sentinel-b', count: READERS, newsletter: 'arthritis-health' });
    },
  });

  /** Sends a digest, runs `failover` once a quarter of its readers have mail, and checks the outcome. */
  async function digestThroughFailover(
    newsletter: string,
    prefix: string,
    failover: () => Promise<Record<string, unknown>>,
  ): Promise<Record<string, unknown>> {
    const created = await admin<{ id: string }>(
      stack.apps.baseUrl,
      'POST',
      `/v1/newsletters/${newsletter}/digests`,
      {},
    );
    expect(created.status).toBe(201);
    const mailed = () => stack.smtp.messages.filter((m) => m.envelope.to.some((t) => t.startsWith(prefix))).length;
    await stack.smtp.waitFor(() => mailed() >= READERS / 4, 60_000);
    const atKill = mailed();
    const killedAt = Date.now();
    const details = await failover();
    const digest = await waitUntil(
      () => admin<{ status: string; sent: number }>(stack.apps.baseUrl, 'GET', `/v1/digests/${created.body.id}`),
      (r) => r.body.status === 'sent',
      120_000,
      'the digest sent after the failover',
    );
    const per = new Map<string, number>();
    for (const m of stack.smtp.messages)
      for (const t of m.envelope.to) if (t.startsWith(prefix)) per.set(t, (per.get(t) ?? 0) + 1);
    const [{ sent }] = await query<{ sent: number }>(
      stack.db.url,
      `SELECT count(*)::int AS sent FROM deliveries WHERE digest_id = $1 AND status = 'sent'`,
      [created.body.id],
    );
    expect(atKill).toBeLessThan(READERS);
    expect(per.size).toBe(READERS);
    expect([...per.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(sent).toBe(READERS);
    expect(digest.body.sent).toBe(READERS);
    // What the new master knows of the digest's batch jobs: those started more than once were
    // re-run after the failover (a lock that lapsed, or a completion the failover lost).
    const jobs = await stack.apps
      .worker!.get<Queue>(getQueueToken(DIGEST_QUEUE))
      .getJobs(['completed', 'failed', 'active', 'wait', 'delayed']);
    const batches = jobs.filter((j) => j?.id?.startsWith(`digest-${created.body.id}-`));
    return {
      readers: READERS,
      mailedBeforeKill: atKill,
      secondsFromKillToLastMail: Math.round((Date.now() - killedAt) / 100) / 10,
      mailedTwice: [...per.values()].filter((n) => n > 1).length,
      batchJobsOnNewMaster: batches.length,
      batchJobsStartedMoreThanOnce: batches.filter((j) => j.attemptsStarted > 1).length,
      ...details,
    };
  }

  it('the sentinels promote the replica and the digest completes, each reader mailed once', async () => {
    const oldMaster = group.master;
    const newMaster = group.replica;
    const result = await digestThroughFailover('spine-health', 'sentinel-a', async () => {
      const killedAt = Date.now();
      await oldMaster.kill();
      await group.waitForMaster(newMaster.port);
      return { secondsToPromotion: Math.round((Date.now() - killedAt) / 100) / 10 };
    });
    record('masterKilled', result);
    expect(await group.masterPort()).toBe(newMaster.port);
    // After the failover the api's queue answers again and a signup is confirmed through it.
    expect((await fetch(`${stack.apps.baseUrl}/health`)).status).toBe(200);
    const res = await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'after-failover@example.com' });
    expect(res.status).toBe(202);
    await stack.smtp.waitFor(() => stack.smtp.to('after-failover@example.com').length >= 1, 30_000);
    expect(stack.smtp.to('after-failover@example.com')).toHaveLength(1);
  });

  it('a failover that loses the last writes still mails each reader once (the ledger, not Redis, decides)', async () => {
    // The killed master comes back empty; the sentinels make it the replica of the new master.
    const master = group.replica;
    const replica = group.master;
    await group.rejoin(replica);
    const result = await digestThroughFailover('arthritis-health', 'sentinel-b', async () => {
      // The replica is cut off for 2.5 s (frozen, its link closed by the master) while the master
      // goes on writing: those writes are only on the master when it dies.
      replica.freeze();
      await master.client((r) => r.call('CLIENT', 'KILL', 'TYPE', 'replica'));
      await sleep(2500);
      const masterOffset = Number(
        infoFields((await master.client((r) => r.info('replication'))) ?? '').get('master_repl_offset'),
      );
      const killedAt = Date.now();
      await master.kill();
      replica.thaw();
      await group.waitForMaster(replica.port);
      // A promoted replica's second_repl_offset is one past the last byte it had from the old master.
      const replicaOffset =
        Number(infoFields((await replica.client((r) => r.info('replication'))) ?? '').get('second_repl_offset')) - 1;
      return {
        secondsToPromotion: Math.round((Date.now() - killedAt) / 100) / 10,
        replicationBytesLost: masterOffset - replicaOffset,
      };
    });
    record('masterKilledWithLostWrites', result);
    // The failover really lost writes the master had acknowledged.
    expect(result.replicationBytesLost).toBeGreaterThan(0);
  });
});

afterAll(() => group.stop());
