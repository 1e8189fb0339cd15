import 'reflect-metadata';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { createApi } from '../apps/api/src/bootstrap.js';
import { createWorker } from '../apps/worker/src/bootstrap.js';
import { ConfigError, loadConfig } from '../libs/config/src/config.js';
import { ROOT_DIR } from '../libs/core/src/paths.js';
import { dataSourceOptions, migrate } from '../libs/db/src/data-source.js';
import { seed } from '../libs/db/src/seed.js';
import { startEmbeddedPostgres, startMailCatcher, type EmbeddedDb, type MailCatcher } from './dev-services.js';

/**
 * npm run dev: everything on one machine with nothing else installed. Embedded PostgreSQL under
 * .data/ (unless DATABASE_URL is set), queues on PostgreSQL (unless REDIS_URL is set), a mail
 * catcher with a web inbox (unless SMTP_URL is set); migrates, seeds, runs the api and the worker.
 */
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
      }),
      { mode: 0o600 },
    );
  }
  const secrets = JSON.parse(readFileSync(secretsFile, 'utf8')) as { appSecret: string; adminApiKey: string };

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

  const base = `http://localhost:${config.port}`;
  const lines = [
    '',
    'Mailroom is running (development)',
    `  Signup page   ${base}/subscribe?newsletter=spine-health`,
    `  Mail inbox    ${catcher ? catcher.webUrl : `(your SMTP server: ${new URL(config.smtp.url).host})`}`,
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
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(`mailroom dev: ${err.message}`);
  else console.error('mailroom dev failed to start:', err);
  process.exit(1);
});
