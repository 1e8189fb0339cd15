import type { RouteOptions } from 'fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppConfig } from '#config/config.js';
import { type Backend, type RunningApps, startApps, testConfig } from './apps.js';
import { createTestDatabase, seedDatabase } from './db.js';
import { ThrowawayRedis, freePort } from './redis-server.js';
import { TestSmtp } from './smtp.js';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

type Env = Record<string, string>;

export interface DatabaseOptions {
  /** Names the database (`mr_<label>_<random>`): each file gets its own, so files run in parallel. */
  label: string;
  /** Seeds newsletters, guides and articles (default true). */
  seed?: boolean;
  /** Runs once the database is ready (and, in a stack, SMTP and config too), before the apps start. */
  prepare?: () => Promise<unknown> | void;
}

export interface StackOptions extends DatabaseOptions {
  /** The queue backend (default 'postgres'); 'redis' uses the shared test Redis under this stack's prefix. */
  queue?: Backend;
  /** Starts the in-process worker with the api (default true). */
  worker?: boolean;
  /** Starts the apps before the tests (default true); with false the tests call stack.startApps(). */
  start?: boolean;
  /** Options of the SMTP sink: `parse: false` keeps envelopes only. */
  smtp?: { parse?: boolean };
  /** Environment over testConfig's defaults; a function is called when the config is built. */
  env?: Env | (() => Env);
  /** A Redis server of this stack's own, to stop and start under the apps (implies queue 'redis'). */
  ownRedis?: { appendOnly?: boolean; started?: boolean };
  /** Sees every route the api registers. */
  onRoute?: (route: RouteOptions) => void;
}

export interface Stack extends DatabaseHandle {
  readonly smtp: TestSmtp;
  /** The config the apps started with (fresh QUEUE_PREFIX and APP_SECRET per stack). */
  readonly config: AppConfig;
  /** The api (and worker) started before the tests. */
  readonly apps: RunningApps;
  /** This stack's own Redis (`ownRedis` only). */
  readonly redis: ThrowawayRedis;
  /** A fresh config on this stack's database, SMTP sink and queue backend. */
  testConfig(opts?: { env?: Env; queue?: Backend; dbUrl?: string }): AppConfig;
  /** Starts another api (and worker unless worker: false), on a fresh config unless given one; closed at teardown. */
  startApps(opts?: {
    config?: AppConfig;
    env?: Env;
    worker?: boolean;
    onRoute?: (route: RouteOptions) => void;
  }): Promise<RunningApps>;
  /** The environment of a worker process joining this stack (same database, SMTP, queue and secret). */
  processEnv(): Env;
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is not set up (yet): use it in a hook or test`);
  return value;
}

/** Runs every step even when one fails, then throws the first failure: nothing stays open. */
async function runAll(steps: (() => Promise<unknown> | unknown)[]): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

export interface DatabaseHandle {
  readonly db: TestDatabase;
  /** Runs `fn` at teardown before anything is closed (the last registered first). */
  onTeardown(fn: () => Promise<unknown> | unknown): void;
}

/** A database of its own (created, migrated, seeded in beforeAll; dropped in afterAll unless KEEP_DB is set). */
export function useTestDatabase(opts: DatabaseOptions): DatabaseHandle {
  let db: TestDatabase | undefined;
  const teardown: (() => Promise<unknown> | unknown)[] = [];
  beforeAll(async () => {
    db = await createTestDatabase(opts.label);
    if (opts.seed !== false) await seedDatabase(db.url);
    await opts.prepare?.();
  });
  afterAll(() => runAll([...teardown.reverse(), () => dropDatabase(db)]));
  return {
    get db() {
      return required(db, 'the test database');
    },
    onTeardown(fn) {
      teardown.push(fn);
    },
  };
}

async function dropDatabase(db: TestDatabase | undefined): Promise<void> {
  if (process.env.KEEP_DB && db) console.log('kept', db.url);
  else await db?.drop();
}

/**
 * The integration stack of a describe block: database, SMTP sink, config and in-process apps,
 * set up in beforeAll and closed in reverse order in afterAll. Hooks the spec declares before
 * this call run before it; its afterAll runs before those the spec declares after it.
 */
export function useStack(opts: StackOptions): Stack {
  const queue: Backend = opts.ownRedis ? 'redis' : (opts.queue ?? 'postgres');
  let db: TestDatabase | undefined;
  let smtp: TestSmtp | undefined;
  let redis: ThrowawayRedis | undefined;
  let redisDir: string | undefined;
  let config: AppConfig | undefined;
  let apps: RunningApps | undefined;
  let env: Env = {};
  const started: RunningApps[] = [];
  const teardown: (() => Promise<unknown> | unknown)[] = [];

  const stack: Stack = {
    get db() {
      return required(db, 'the test database');
    },
    get smtp() {
      return required(smtp, 'the SMTP sink');
    },
    get config() {
      return required(config, 'the config');
    },
    get apps() {
      return required(apps, 'the apps');
    },
    get redis() {
      return required(redis, 'the own Redis (ownRedis)');
    },
    testConfig(o = {}) {
      return testConfig({
        dbUrl: o.dbUrl ?? stack.db.url,
        smtpUrl: stack.smtp.url,
        backend: o.queue ?? queue,
        redisUrl: redis?.url,
        env: o.env,
      });
    },
    async startApps(o = {}) {
      const running = await startApps(o.config ?? stack.testConfig({ env: o.env }), {
        worker: o.worker,
        onRoute: o.onRoute,
      });
      started.push(running);
      return running;
    },
    processEnv() {
      const c = stack.config;
      return {
        NODE_ENV: 'test',
        DATABASE_URL: stack.db.url,
        SMTP_URL: stack.smtp.url,
        ...(c.queue.redisUrl ? { REDIS_URL: c.queue.redisUrl } : {}),
        QUEUE_PREFIX: c.queue.prefix,
        APP_SECRET: c.appSecret,
        PUBLIC_URL: 'http://mailroom.test',
        ...env,
      };
    },
    onTeardown(fn) {
      teardown.push(fn);
    },
  };

  beforeAll(async () => {
    db = await createTestDatabase(opts.label);
    if (opts.seed !== false) await seedDatabase(db.url);
    smtp = await new TestSmtp(opts.smtp).start();
    if (opts.ownRedis) {
      if (opts.ownRedis.appendOnly) redisDir = mkdtempSync(join(tmpdir(), 'mailroom-redis-'));
      redis = new ThrowawayRedis(await freePort(), { appendOnlyDir: redisDir });
      if (opts.ownRedis.started !== false) await redis.start();
    }
    env = typeof opts.env === 'function' ? opts.env() : (opts.env ?? {});
    config = stack.testConfig({ env });
    await opts.prepare?.();
    if (opts.start !== false) {
      apps = await startApps(config, { worker: opts.worker, onRoute: opts.onRoute });
      started.push(apps);
    }
  });

  afterAll(() =>
    runAll([
      ...teardown.reverse(),
      // A clean close needs the queue to answer.
      async () => {
        if (redis && started.length > 0) await redis.start().catch(() => undefined);
      },
      ...started.reverse().map((a) => () => a.close()),
      () => redis?.stop(),
      () => redisDir && rmSync(redisDir, { recursive: true, force: true }),
      () => smtp?.stop(),
      () => dropDatabase(db),
    ]),
  );

  return stack;
}
