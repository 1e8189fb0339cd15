import { type ConnectionOptions, RedisConnection, type RedisOptions, createIORedisClient } from 'bullmq';
import { Cluster, type ClusterOptions, Redis } from 'ioredis';
import type { HostPort, RedisTarget } from '#config/config.js';

/**
 * How Mailroom connects BullMQ to Redis in each of the three modes: one server (REDIS_URL), a
 * master found through Sentinel (REDIS_SENTINELS), or a Cluster (REDIS_CLUSTER_NODES). Every
 * Queue and Worker (and each worker's blocking connection) gets the same options and opens and
 * closes its own connection with them.
 */

/** Reconnect forever, at most 3 s apart: BullMQ's default backs off to 20 s, which would leave
 * the queue idle for up to that long after Redis is back. */
const retryStrategy = (times: number): number => Math.min(times * 250, 3000);

/**
 * A demoted master (a failover while it was up) answers writes with READONLY: reconnect, which
 * asks the sentinels (or the cluster) where the master is now, and resend the command.
 */
function reconnectOnReadonly(err: Error): 2 | false {
  return err.message.startsWith('READONLY') ? 2 : false;
}

/** What every data connection shares: commands wait while Redis is away instead of failing. */
const waitingCommands = {
  // BullMQ requires this for workers; for producers it means an add waits for Redis to come back.
  maxRetriesPerRequest: null,
  retryStrategy,
  reconnectOnError: reconnectOnReadonly,
} as const;

/** ioredis options from a redis:// or rediss:// URL. */
export function redisOptions(url: string): ConnectionOptions {
  const u = new URL(url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    ...waitingCommands,
  };
}

/**
 * ioredis options for a master watched by Sentinel. ioredis asks the sentinels for the master's
 * address on every (re)connect. A master that dies drops its connections; one demoted while up has
 * them closed by the sentinels (CLIENT KILL when they reconfigure it), and a write it still gets
 * answers READONLY, which reconnects too. ioredis' `failoverDetector` is left off: its sentinel
 * subscriptions can outlive a closed connection and keep reconnecting forever.
 */
export function sentinelOptions(target: Extract<RedisTarget, { mode: 'sentinel' }>): ConnectionOptions {
  return {
    sentinels: target.sentinels,
    name: target.name,
    role: 'master',
    sentinelPassword: target.sentinelPassword,
    username: target.username,
    password: target.password,
    db: target.db,
    // With rediss: both the data nodes (enableTLSForSentinelMode) and the sentinels speak TLS.
    tls: target.tls ? {} : undefined,
    enableTLSForSentinelMode: target.tls,
    sentinelTLS: target.tls ? {} : undefined,
    sentinelRetryStrategy: retryStrategy,
    ...waitingCommands,
  };
}

/** The mark on connection options that makes `clusterClientFactory` build a Cluster client. */
const CLUSTER_NODES = 'mailroomClusterNodes';

/**
 * Options for a Redis Cluster. BullMQ builds a plain ioredis client from options, so they carry
 * the seed nodes under a mark of our own and the client factory below builds a `Cluster` from them.
 */
export function clusterConnectionOptions(target: Extract<RedisTarget, { mode: 'cluster' }>): ConnectionOptions {
  return {
    [CLUSTER_NODES]: target.nodes,
    username: target.username,
    password: target.password,
    tls: target.tls ? {} : undefined,
    ...waitingCommands,
  };
}

/** The ioredis Cluster for options made by `clusterConnectionOptions`. */
export function createCluster(opts: RedisOptions): Cluster {
  const nodes = opts[CLUSTER_NODES] as HostPort[];
  // Cluster-wide settings stay out of the per-node options; the cluster reconnects nodes itself.
  const { [CLUSTER_NODES]: _nodes, host: _host, port: _port, retryStrategy: _retry, url: _url, ...node } = opts;
  const options: ClusterOptions = {
    redisOptions: node,
    clusterRetryStrategy: retryStrategy,
    enableOfflineQueue: true,
    lazyConnect: opts.lazyConnect === true,
    // Slots move during a failover: follow MOVED/ASK and retry while the cluster is down.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    // TLS certificates name the nodes' host names, while CLUSTER SLOTS answers with addresses.
    dnsLookup: opts.tls ? (address, callback) => callback(null, address) : undefined,
  };
  return new Cluster(nodes, options);
}

/**
 * BullMQ's process-wide client factory: a Cluster client for cluster options, otherwise what
 * BullMQ itself would build (a plain ioredis client). Installed once, it leaves the other modes as
 * they were, so apps in several modes can share a process (as the tests do).
 */
function clusterClientFactory(opts: RedisOptions): ReturnType<NonNullable<typeof RedisConnection.clientFactory>> {
  if (opts[CLUSTER_NODES]) return createIORedisClient(createCluster(opts));
  const { url, ...rest } = opts;
  return createIORedisClient(typeof url === 'string' ? new Redis(url, rest) : new Redis(rest));
}

/** Lets BullMQ connect to a Redis Cluster (see `clusterConnectionOptions`). Idempotent. */
export function installClusterFactory(): void {
  RedisConnection.clientFactory = clusterClientFactory;
}

/** The BullMQ connection options for a Redis target. */
export function redisConnectionOptions(target: RedisTarget): ConnectionOptions {
  switch (target.mode) {
    case 'standalone':
      return redisOptions(target.url);
    case 'sentinel':
      return sentinelOptions(target);
    case 'cluster':
      installClusterFactory();
      return clusterConnectionOptions(target);
  }
}
