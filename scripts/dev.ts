import 'reflect-metadata';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { createApi } from '../apps/api/src/bootstrap.js';
import { createWorker } from '../apps/worker/src/bootstrap.js';
import { ConfigError, loadConfig } from '#config/config.js';
import { ROOT_DIR } from '#core/paths.js';
import { dataSourceOptions, migrate } from '#db/data-source.js';
import { seed } from '#db/seed.js';
import { StaffUsersService } from '#staff/staff-users.service.js';
import {
  DevServiceError,
  startEmbeddedPostgres,
  startMailCatcher,
  type EmbeddedDb,
  type MailCatcher,
} from './dev-services.js';

/**
 * npm run dev: everything on one machine with nothing else installed. Embedded PostgreSQL under
 * .data/ (unless DATABASE_URL is set), queues on PostgreSQL (unless REDIS_URL, REDIS_SENTINELS or
 * REDIS_CLUSTER_NODES is set), a mail catcher with a web inbox (unless SMTP_URL is set); migrates,
 * seeds, runs the api and the worker.
 */
const DEV_ADMIN = 'admin@mailroom.localhost';
/** How long one app may take to close before the next step of the stop goes ahead anyway. */
const APP_STOP_MS = 30_000;

/** What dev started, in order; stopping goes backwards: worker, api, then the catcher, then the database. */
const started: { name: string; stop: () => Promise<void> }[] = [];
/** The service being started right now: a stop waits for it, so nothing started is left behind. */
let starting: Promise<unknown> = Promise.resolve();
let stopping: Promise<void> | undefined;

/** Starts a service and records it for the stop, before anyone else sees it started. */
function track<T>(name: string, start: Promise<T>, stop: (service: T) => Promise<void>): Promise<T> {
  starting = start.then(
    (service) => void started.push({ name, stop: () => stop(service) }),
    () => undefined,
  );
  return start;
}

/** Stops everything started, apps first and the database last, then exits with `code`. */
function shutdown(code: number, why?: string): Promise<void> {
  return (stopping ??= (async () => {
    if (why) console.error(why);
    if (code === 0) console.log('Stopping…');
    await starting;
    for (const service of started.reverse()) {
      await Promise.race([service.stop().catch(() => undefined), delay(APP_STOP_MS, undefined, { ref: false })]);
    }
    process.exit(code);
  })());
}

/** Whether `pid` is still our parent (Linux: /proc shows the reparenting; elsewhere: the pid still exists). */
function parentAlive(pid: number): boolean {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
  } catch {
    try {
      process.kill(pid, 0); // no /proc: signal 0 only checks that the pid exists
      return true;
    } catch {
      return false;
    }
  }
}

function watchForStops(): void {
  // Ctrl-C, `kill`, a closed terminal: stop in order. Repeats while stopping change nothing.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(0));
  // npm (our parent) killed outright sends no signal here: notice it, or dev and PostgreSQL live on.
  const parent = process.ppid;
  setInterval(() => {
    if (!parentAlive(parent)) void shutdown(0, 'mailroom dev: the parent process ended; stopping.');
  }, 1000).unref();
  // A closed terminal or pipe must not crash the stop with EPIPE.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  // A crash would otherwise leave the detached PostgreSQL behind.
  process.on('uncaughtException', (err) => void shutdown(1, `mailroom dev crashed: ${err.stack ?? err.message}`));
  process.on('unhandledRejection', (err) => void shutdown(1, `mailroom dev crashed: ${String(err)}`));
}

async function main(): Promise<void> {
  watchForStops();
  const dataDir = join(ROOT_DIR, '.data');
  mkdirSync(dataDir, { recursive: true });
  const secretsFile = join(dataDir, 'dev-secrets.json');
  if (!existsSync(secretsFile)) {
    writeFileSync(
      secretsFile,
      JSON.stringify({
        appSecret: randomBytes(32).toString('hex'),
        adminApiKey: `dev-${randomBytes(24).toString('base64url')}`,
        consolePassword: randomBytes(12).toString('base64url'),
      }),
      { mode: 0o600 },
    );
  }
  const secrets = JSON.parse(readFileSync(secretsFile, 'utf8')) as {
    appSecret: string;
    adminApiKey: string;
    consolePassword?: string;
  };
  // Secrets files from before the console get a console password too.
  if (!secrets.consolePassword) {
    secrets.consolePassword = randomBytes(12).toString('base64url');
    writeFileSync(secretsFile, JSON.stringify(secrets), { mode: 0o600 });
  }

  const env: Record<string, string | undefined> = { NODE_ENV: 'development', ...process.env };
  env.APP_SECRET ??= secrets.appSecret;
  env.ADMIN_API_KEY ??= secrets.adminApiKey;

  let db: EmbeddedDb | undefined;
  let catcher: MailCatcher | undefined;
  if (!env.DATABASE_URL) {
    db = await track('postgres', startEmbeddedPostgres(join(dataDir, 'pg')), (d) => d.stop());
    env.DATABASE_URL = db.url;
    // PostgreSQL stopped by something else (kill, crash): the apps cannot go on without it.
    void db.lost.then(() => shutdown(1, 'mailroom dev: the embedded PostgreSQL stopped; stopping the rest.'));
  }
  if (stopping) return;
  if (!env.SMTP_URL) {
    catcher = await track('maildev', startMailCatcher(), (c) => c.stop());
    env.SMTP_URL = catcher.smtpUrl;
  }
  if (stopping) return;
  const config = loadConfig(env);

  await migrate(config.db.url, { queueSchema: config.queue.backend === 'postgres' });
  const ds = new DataSource(dataSourceOptions(config.db.url));
  await ds.initialize();
  await seed(ds);
  await ds.destroy();
  if (stopping) return;

  const api = await track('api', createApi(config), (a) => a.close());
  await api.listen(config.port, '127.0.0.1').catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    throw new DevServiceError(
      `Port ${config.port} on 127.0.0.1 is in use (another \`npm run dev\`?): stop that, or set PORT to another port.`,
    );
  });
  if (stopping) return;
  const worker = await track('worker', createWorker(config), (w) => w.close());
  await worker.init();
  if (stopping) return;

  // A console admin for this machine, created once (the password lives in .data/dev-secrets.json).
  const users = api.get(StaffUsersService, { strict: false });
  if (!(await users.findByEmail(DEV_ADMIN))) {
    const created = await users.create({ email: DEV_ADMIN, role: 'admin', password: secrets.consolePassword });
    if (!created.ok)
      console.warn(`Could not create the dev console admin: ${Object.values(created.errors).join('; ')}`);
  }

  const base = `http://localhost:${config.port}`;
  const dbDir = db && (db.dataDir.startsWith(ROOT_DIR) ? relative(ROOT_DIR, db.dataDir) : db.dataDir);
  const lines = [
    '',
    'Mailroom is running (development)',
    `  Signup page   ${base}/subscribe?newsletter=spine-health`,
    `  Mail inbox    ${catcher ? catcher.webUrl : `(your SMTP server: ${new URL(config.smtp.url).host})`}`,
    `  Console       ${base}/admin   sign in as ${DEV_ADMIN} / ${secrets.consolePassword}`,
    `  API docs      ${base}/docs`,
    `  Health        ${base}/health`,
    `  Admin API key ${config.adminApiKey ?? '(none)'}   e.g. curl -H "Authorization: Bearer $KEY" ${base}/v1/newsletters`,
    `  Database      ${dbDir ? `embedded PostgreSQL in ${dbDir}` : 'DATABASE_URL'}; queues on ${config.queue.backend === 'redis' ? 'Redis' : 'PostgreSQL'}`,
    '  Press Ctrl-C to stop.',
    '',
  ];
  console.log(lines.join('\n'));
}

main().catch((err: unknown) => {
  if (stopping) return; // a failure caused by the stop itself (the database went away)
  const message =
    err instanceof DevServiceError || err instanceof ConfigError
      ? `mailroom dev: ${err.message}`
      : `mailroom dev failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
  void shutdown(1, message);
});
