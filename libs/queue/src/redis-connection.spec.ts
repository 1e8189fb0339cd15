import { RedisConnection, type RedisOptions } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { loadConfig } from '#config/config.js';
import { createCluster, redisConnectionOptions } from './redis-connection.js';

const BASE = { NODE_ENV: 'test', DATABASE_URL: 'postgres://x@localhost/x', SMTP_URL: 'smtp://localhost:25' };

function target(env: Record<string, string>) {
  const redis = loadConfig({ ...BASE, ...env }).queue.redis;
  if (!redis) throw new Error('no Redis target');
  return redis;
}

describe('redisConnectionOptions', () => {
  it('standalone: the URL split into ioredis options; commands wait for Redis', () => {
    const opts = redisConnectionOptions(target({ REDIS_URL: 'rediss://u:p%20w@cache.example:6380/2' })) as RedisOptions;
    expect(opts).toMatchObject({
      host: 'cache.example',
      port: 6380,
      username: 'u',
      password: 'p w',
      db: 2,
      tls: {},
      maxRetriesPerRequest: null,
    });
  });

  it('sentinel: the sentinels and the group name, the master role, credentials for both', () => {
    const opts = redisConnectionOptions(
      target({
        REDIS_SENTINELS: '10.0.0.1:26379,10.0.0.2:26380',
        REDIS_SENTINEL_NAME: 'mymaster',
        REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
        REDIS_URL: 'redis://:data-pw@unused/1',
      }),
    ) as RedisOptions;
    expect(opts).toMatchObject({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
      ],
      name: 'mymaster',
      role: 'master',
      sentinelPassword: 'sentinel-pw',
      password: 'data-pw',
      db: 1,
      maxRetriesPerRequest: null,
    });
    expect(opts.host).toBeUndefined();
    expect(opts.tls).toBeUndefined();
    const tls = redisConnectionOptions(
      target({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm', REDIS_URL: 'rediss://x' }),
    ) as RedisOptions;
    expect(tls).toMatchObject({ tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} });
    expect(opts.failoverDetector).toBeUndefined();
  });

  it('reconnects and resends a write that a demoted master answers with READONLY, and nothing else', () => {
    const opts = redisConnectionOptions(
      target({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' }),
    ) as RedisOptions;
    const decide = opts.reconnectOnError as (err: Error) => unknown;
    expect(decide(new Error("READONLY You can't write against a read only replica."))).toBe(2);
    expect(decide(new Error('ERR unknown command'))).toBe(false);
  });

  it('cluster: BullMQ is given a client factory that builds an ioredis Cluster from the seed nodes', () => {
    const opts = redisConnectionOptions(
      target({ REDIS_CLUSTER_NODES: '127.0.0.1:7000,127.0.0.1:7001', REDIS_URL: 'redis://:pw@x' }),
    ) as RedisOptions;
    expect(RedisConnection.clientFactory).toBeDefined();
    const cluster = createCluster({ ...opts, lazyConnect: true, connectionName: 'bull:abc' });
    try {
      expect(cluster).toBeInstanceOf(Cluster);
      expect(cluster.isCluster).toBe(true);
      expect(cluster.options.redisOptions).toMatchObject({
        password: 'pw',
        maxRetriesPerRequest: null,
        connectionName: 'bull:abc',
      });
      // Cluster-wide settings do not leak into every node's options.
      expect(cluster.options.redisOptions).not.toHaveProperty('host');
      expect(cluster.options.redisOptions).not.toHaveProperty('retryStrategy');
    } finally {
      cluster.disconnect();
    }
    // Other options still get a plain client from the factory.
    const plain = RedisConnection.clientFactory!({ host: '127.0.0.1', port: 1, lazyConnect: true });
    try {
      expect((plain as unknown as { isCluster?: boolean }).isCluster).toBeFalsy();
      expect(plain).toBeInstanceOf(Redis);
    } finally {
      (plain as unknown as Redis).disconnect();
    }
  });
});
