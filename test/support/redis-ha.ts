import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './redis-server.js';

/**
 * Real local Redis topologies for the high-availability tests: a three-master Cluster and a
 * master + replica watched by three sentinels, each process on free loopback ports with its
 * files in a temp dir. `stop()` kills every process and removes the dir, and a process exit
 * kills whatever is still running, so a failed test leaves nothing behind.
 */

const run = promisify(execFile);
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** One redis-server process (a data node or, with `sentinel`, a sentinel) from a config file. */
export class RedisProcess {
  private proc?: ChildProcess;

  constructor(
    readonly port: number,
    private readonly conf: string,
    private readonly sentinel = false,
  ) {}

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts the process and waits until it answers PING. */
  async start(): Promise<void> {
    const proc = spawn('redis-server', [this.conf, ...(this.sentinel ? ['--sentinel'] : [])], { stdio: 'ignore' });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    this.proc = proc;
    await waitFor(
      async () => (await this.client(async (r) => r.ping())) === 'PONG',
      10_000,
      `redis-server on ${this.port}`,
    );
  }

  /** Kills the process at once (SIGKILL: no shutdown, no last write) and waits for its exit. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
      // A frozen process dies of SIGKILL too; SIGCONT only in case the platform waits for it.
      p.kill('SIGCONT');
    });
  }

  /** Freezes the process (SIGSTOP): it keeps its sockets but answers nothing until `thaw()`. */
  freeze(): void {
    this.proc?.kill('SIGSTOP');
  }

  thaw(): void {
    this.proc?.kill('SIGCONT');
  }

  /** Runs `fn` on a short-lived connection; undefined when the process does not answer. */
  async client<T>(fn: (r: Redis) => Promise<T>): Promise<T | undefined> {
    const r = new Redis({
      host: '127.0.0.1',
      port: this.port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1000,
    });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return await fn(r);
    } catch {
      return undefined;
    } finally {
      r.disconnect();
    }
  }
}

async function waitFor(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready within ${ms} ms`);
}

/** The lines of an INFO section as a map. */
export function infoFields(info: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of info.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return fields;
}

/** A field of a flat [name, value, name, value…] reply. */
function fieldOf(flat: string[], name: string): string {
  const i = flat.indexOf(name);
  return i >= 0 && i % 2 === 0 ? (flat[i + 1] ?? '') : '';
}

/** Settings every data node shares: loopback only, nothing kept on disk between runs. */
function dataNodeConf(dir: string, port: number, extra: string[] = []): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'redis.conf');
  writeFileSync(
    file,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      'save ""',
      'appendonly no',
      'maxmemory-policy noeviction',
      ...extra,
    ].join('\n') + '\n',
  );
  return file;
}

abstract class Topology {
  protected readonly dir = mkdtempSync(join(tmpdir(), 'mailroom-redis-ha-'));
  protected readonly processes: RedisProcess[] = [];

  /** Kills every process and removes the files. Safe to call twice, or after a failed start. */
  async stop(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Three masters with every slot assigned (no replicas): `REDIS_CLUSTER_NODES` of the apps. */
export class LocalRedisCluster extends Topology {
  readonly nodes: RedisProcess[] = [];

  /** `host:port,…` as REDIS_CLUSTER_NODES takes it. */
  get nodeList(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  }

  async start(masters = 3): Promise<this> {
    for (let i = 0; i < masters; i += 1) {
      const port = await freePort();
      // The cluster bus gets a free port of its own (port + 10000 may be taken or out of range).
      const busPort = await freePort();
      const conf = dataNodeConf(join(this.dir, `node-${i}`), port, [
        'cluster-enabled yes',
        'cluster-config-file nodes.conf',
        `cluster-port ${busPort}`,
        'cluster-node-timeout 2000',
      ]);
      const node = new RedisProcess(port, conf);
      this.processes.push(node);
      this.nodes.push(node);
      await node.start();
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...this.nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitFor(
      async () => {
        const states = await Promise.all(
          this.nodes.map((n) => n.client(async (r) => infoFields(String(await r.cluster('INFO'))))),
        );
        return states.every(
          (s) => s?.get('cluster_state') === 'ok' && s.get('cluster_known_nodes') === String(masters),
        );
      },
      20_000,
      'the cluster',
    );
    return this;
  }

  /** How many keys each master holds (SCAN per node: each node has only its own slots). */
  async keysPerNode(match: string): Promise<number[]> {
    return Promise.all(this.nodes.map(async (n) => (await n.client(async (r) => (await r.keys(match)).length)) ?? 0));
  }
}

/** A master, one replica and three sentinels (quorum 2) that fail over within a few seconds. */
export class LocalRedisSentinel extends Topology {
  readonly name = 'mailroom-master';
  master!: RedisProcess;
  replica!: RedisProcess;
  readonly sentinels: RedisProcess[] = [];

  /** `host:port,…` as REDIS_SENTINELS takes it. */
  get sentinelList(): string {
    return this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
  }

  async start(): Promise<this> {
    const masterPort = await freePort();
    this.master = new RedisProcess(masterPort, dataNodeConf(join(this.dir, 'master'), masterPort));
    this.processes.push(this.master);
    await this.master.start();
    const replicaPort = await freePort();
    this.replica = new RedisProcess(
      replicaPort,
      dataNodeConf(join(this.dir, 'replica'), replicaPort, [`replicaof 127.0.0.1 ${masterPort}`]),
    );
    this.processes.push(this.replica);
    await this.replica.start();
    await waitFor(
      async () =>
        infoFields((await this.replica.client((r) => r.info('replication'))) ?? '').get('master_link_status') === 'up',
      10_000,
      'the replica',
    );
    for (let i = 0; i < 3; i += 1) {
      const port = await freePort();
      const dir = join(this.dir, `sentinel-${i}`);
      mkdirSync(dir, { recursive: true });
      const conf = join(dir, 'sentinel.conf');
      // Sentinel rewrites its own config file as it learns the topology: it must be writable.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${this.name} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${this.name} 1000`,
          `sentinel failover-timeout ${this.name} 5000`,
          `sentinel parallel-syncs ${this.name} 1`,
        ].join('\n') + '\n',
      );
      const sentinel = new RedisProcess(port, conf, true);
      this.processes.push(sentinel);
      this.sentinels.push(sentinel);
      await sentinel.start();
    }
    // A failover needs each sentinel to know the replica and the other two (hello messages, ~2 s).
    await this.waitForTopology();
    return this;
  }

  /** What one sentinel knows of the master group (SENTINEL MASTER), as a map. */
  async masterView(sentinel: RedisProcess): Promise<Map<string, string> | undefined> {
    return sentinel.client(async (r) => {
      const flat = (await r.call('SENTINEL', 'MASTER', this.name)) as string[];
      const m = new Map<string, string>();
      for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i], flat[i + 1]);
      return m;
    });
  }

  /** Waits until every sentinel names `port` as the master (a failover has completed). */
  async waitForMaster(port: number, ms = 30_000): Promise<void> {
    await waitFor(
      async () => {
        const views = await Promise.all(this.sentinels.map((s) => this.masterView(s)));
        return views.every(
          (v) => v?.get('port') === String(port) && !/o_down|s_down|failover/.test(v.get('flags') ?? ''),
        );
      },
      ms,
      `master on ${port}`,
    );
  }

  /**
   * Starts a killed data node again. It comes back empty and as a master of its own; the sentinels
   * turn it into a replica of the current master. Resolves once it has synced and they count it.
   */
  async rejoin(node: RedisProcess): Promise<void> {
    await node.start();
    await waitFor(
      async () =>
        infoFields((await node.client((r) => r.info('replication'))) ?? '').get('master_link_status') === 'up',
      30_000,
      `${node.port} replicating`,
    );
    await this.waitForTopology();
  }

  /** Every sentinel knows one healthy replica and the two other sentinels. */
  private async waitForTopology(): Promise<void> {
    await waitFor(
      async () => {
        const views = await Promise.all(this.sentinels.map((s) => this.masterView(s)));
        if (!views.every((v) => v?.get('num-slaves') === '1' && v.get('num-other-sentinels') === '2')) return false;
        const replicas = await Promise.all(
          this.sentinels.map((s) =>
            s.client(async (r) => (await r.call('SENTINEL', 'REPLICAS', this.name)) as string[][]),
          ),
        );
        return replicas.every((list) => list?.length === 1 && !/s_down|disconnected/.test(fieldOf(list[0], 'flags')));
      },
      30_000,
      'the sentinels',
    );
  }

  /** The master's port as the sentinels name it now (it changes with a failover). */
  async masterPort(): Promise<number | undefined> {
    for (const s of this.sentinels) {
      const addr = await s.client(
        async (r) => (await r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name)) as string[],
      );
      if (addr) return Number(addr[1]);
    }
    return undefined;
  }
}
