import 'reflect-metadata';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DIGEST_QUEUE, MAIL_QUEUE } from '#queue/jobs.js';
import { admin, waitUntil } from './support/admin.js';
import { addAudience } from './support/audience.js';
import { TEST_REDIS_URL, query } from './support/db.js';
import { postJson } from './support/http.js';
import { LocalRedisCluster } from './support/redis-ha.js';
import { useStack } from './support/stack.js';

/**
 * BullMQ on a real three-master Redis Cluster (REDIS_CLUSTER_NODES): the api and the worker queue
 * and run confirmations and a whole digest through it, every queue key under the prefix's hash tag.
 */
const READERS = 300;
const cluster = new LocalRedisCluster();

beforeAll(() => cluster.start(3), 60_000);

describe('BullMQ on Redis Cluster', () => {
  const stack = useStack({
    label: 'redis_cluster',
    smtp: { parse: false },
    env: () => ({ REDIS_CLUSTER_NODES: cluster.nodeList, DIGEST_BATCH_SIZE: '40', SEND_RATE_PER_SECOND: '1000' }),
    prepare: () => addAudience(stack.db.url, { prefix: 'cluster', count: READERS, newsletter: 'spine-health' }),
  });

  it('runs on the cluster, with the queue prefix in a hash tag', async () => {
    expect(stack.config.queue.redis?.mode).toBe('cluster');
    expect(stack.config.queue.prefix).toMatch(/^\{mrtest-[0-9a-f]+\}$/);
    const health = await fetch(`${stack.apps.baseUrl}/health`);
    expect(health.status).toBe(200);
    const counts = await stack.apps.worker!.get<Queue>(getQueueToken(MAIL_QUEUE)).getJobCounts('waiting', 'failed');
    expect(counts).toEqual({ waiting: 0, failed: 0 });
  });

  it('a signup gets its confirmation through the cluster', async () => {
    const res = await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email: 'cluster-signup@example.com' });
    expect(res.status).toBe(202);
    await stack.smtp.waitFor(() => stack.smtp.to('cluster-signup@example.com').length >= 1, 30_000);
    expect(stack.smtp.to('cluster-signup@example.com')).toHaveLength(1);
  });

  it(`a digest reaches each of ${READERS} readers exactly once`, async () => {
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    expect(created.status).toBe(201);
    await waitUntil(
      () => admin<{ status: string }>(stack.apps.baseUrl, 'GET', `/v1/digests/${created.body.id}`),
      (r) => r.body.status === 'sent',
      90_000,
      'the digest sent',
    );
    const per = new Map<string, number>();
    for (const m of stack.smtp.messages)
      for (const t of m.envelope.to) if (t.startsWith('cluster')) per.set(t, (per.get(t) ?? 0) + 1);
    per.delete('cluster-signup@example.com');
    expect(per.size).toBe(READERS);
    expect([...per.values()].filter((n) => n !== 1)).toEqual([]);
    const [{ sent }] = await query<{ sent: number }>(
      stack.db.url,
      `SELECT count(*)::int AS sent FROM deliveries WHERE digest_id = $1 AND status = 'sent'`,
      [created.body.id],
    );
    expect(sent).toBe(READERS);
    // The batches went through the digest queue on the cluster.
    const digests = stack.apps.worker!.get<Queue>(getQueueToken(DIGEST_QUEUE));
    expect(await digests.getCompletedCount()).toBeGreaterThanOrEqual(READERS / 40);
  });

  it('keeps every queue key in one hash slot, on one master', async () => {
    const perNode = await cluster.keysPerNode(`${stack.config.queue.prefix}*`);
    expect(perNode.filter((n) => n > 0)).toHaveLength(1);
    expect(perNode.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    // Nothing went to the shared test Redis (the standalone default) instead.
    const standalone = new Redis(TEST_REDIS_URL);
    try {
      expect(await standalone.keys(`${stack.config.queue.prefix}*`)).toEqual([]);
    } finally {
      await standalone.quit();
    }
  });
});

afterAll(() => cluster.stop());
