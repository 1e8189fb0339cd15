import type { INestApplicationContext } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { RouteOptions } from 'fastify';
import { randomBytes } from 'node:crypto';
import { createApi } from '../../apps/api/src/bootstrap.js';
import { createWorker } from '../../apps/worker/src/bootstrap.js';
import { type AppConfig, loadConfig } from '#config/config.js';
import { TEST_REDIS_URL } from './db.js';

export type Backend = 'postgres' | 'redis';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export function testConfig(opts: {
  dbUrl: string;
  smtpUrl: string;
  backend: Backend;
  /** A Redis of the test's own (redis backend only); the shared test Redis otherwise. */
  redisUrl?: string;
  env?: Record<string, string>;
}): AppConfig {
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: opts.dbUrl,
    SMTP_URL: opts.smtpUrl,
    REDIS_URL: opts.backend === 'redis' ? (opts.redisUrl ?? TEST_REDIS_URL) : undefined,
    QUEUE_PREFIX: `mrtest-${randomBytes(4).toString('hex')}`,
    APP_SECRET: randomBytes(32).toString('hex'),
    ADMIN_API_KEY: ADMIN_KEY,
    PUBLIC_URL: 'http://mailroom.test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    OUTBOX_POLL_MS: '50',
    JOB_BACKOFF_MS: '100',
    JOB_ATTEMPTS: '5',
    ...opts.env,
  });
}

export interface RunningApps {
  api: NestFastifyApplication;
  worker?: INestApplicationContext;
  baseUrl: string;
  config: AppConfig;
  /** Starts the in-process worker, with the api's config unless given another one. */
  startWorker(workerConfig?: AppConfig): Promise<void>;
  stopWorker(): Promise<void>;
  /** Closes worker and api; a second call waits for the first and does nothing more. */
  close(): Promise<void>;
}

/** Boots the api (listening on a free port) and, unless told not to, the worker, both in-process. */
export async function startApps(
  config: AppConfig,
  opts: { worker?: boolean; onRoute?: (route: RouteOptions) => void } = {},
): Promise<RunningApps> {
  const api = await createApi(config);
  // Routes are added when the app initialises (in listen): a hook added now sees every one.
  if (opts.onRoute) api.getHttpAdapter().getInstance().addHook('onRoute', opts.onRoute);
  await api.listen(0, '127.0.0.1');
  const addr = api.getHttpServer().address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  let closing: Promise<void> | undefined;
  const running: RunningApps = {
    api,
    baseUrl: `http://127.0.0.1:${port}`,
    config,
    async startWorker(workerConfig = config) {
      const w = await createWorker(workerConfig);
      await w.init();
      running.worker = w;
    },
    async stopWorker() {
      await running.worker?.close();
      running.worker = undefined;
    },
    close() {
      closing ??= (async () => {
        await running.stopWorker();
        await api.close();
      })();
      return closing;
    },
  };
  if (opts.worker !== false) await running.startWorker();
  return running;
}

/** Pulls the first link that starts with `prefix` out of a mail's text or HTML. */
export function linkFrom(text: string, prefix: string): string {
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`${escaped}[^\\s"'<>\\]]+`).exec(text);
  if (!m) throw new Error(`No link starting with ${prefix} in:\n${text.slice(0, 2000)}`);
  return m[0];
}

/** The header section of a raw message, unfolded: one header per line. */
export function headerBlock(raw: string): string {
  const end = raw.search(/\r?\n\r?\n/);
  return (end < 0 ? raw : raw.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ').replace(/\r/g, '');
}
