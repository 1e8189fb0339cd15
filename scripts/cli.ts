import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT_DIR } from '#core/paths.js';
import { ConfigError, loadConfig } from '#config/config.js';
import { ConfigModule } from '#core/config.module.js';
import { DbModule } from '#db/db.module.js';
import { CsvFileError } from '#subscriptions/csv-reader.js';
import { ImportExportService, type ImportReport } from '#subscriptions/import-export.service.js';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { StaffModule } from '#staff/staff.module.js';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { DKIM_USAGE, dkimCli, isDkimCommand } from './cli-dkim.js';
import { isUserCommand, promptHidden, runUserCommand, USER_USAGE } from './cli-users.js';

const USAGE = `Usage:
  npm run cli -- import <newsletter-slug> <file.csv>   import already-consented subscribers
  npm run cli -- export <newsletter-slug>              write a newsletter's subscribers as CSV to stdout
${USER_USAGE}
${DKIM_USAGE}
Needs DATABASE_URL (npm run dev prints the embedded one); import, export and dkim also need the api's APP_SECRET.`;

/** Console users: no APP_SECRET involved (passwords are argon2id hashes, sessions are random). */
async function users(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!isUserCommand(command)) return 64;
  const config = loadConfig(
    {
      NODE_ENV: 'production',
      SMTP_URL: 'smtp://127.0.0.1:1025', // the CLI sends no mail
      ...process.env,
      APP_SECRET: process.env.APP_SECRET ?? randomBytes(32).toString('hex'),
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    { linksUnused: true },
  );
  @Module({ imports: [ConfigModule.forRoot(config), DbModule, StaffModule] })
  class CliUsersModule {}
  const app = await NestFactory.createApplicationContext(CliUsersModule, { logger: ['error', 'warn'] });
  try {
    return await runUserCommand(command, rest, app.get(StaffUsersService), {
      env: process.env,
      promptHidden: process.stdin.isTTY ? promptHidden : undefined,
      out: (line) => console.log(line),
      err: (line) => console.error(`mailroom cli: ${line}`),
    });
  } finally {
    await app.close();
  }
}

/** The api's APP_SECRET (suppression hashes and DKIM keys depend on it): from the environment, or the dev one. */
function appSecretOf(): string {
  let appSecret = process.env.APP_SECRET;
  const devSecrets = join(ROOT_DIR, '.data', 'dev-secrets.json');
  if (!appSecret && existsSync(devSecrets))
    appSecret = (JSON.parse(readFileSync(devSecrets, 'utf8')) as { appSecret: string }).appSecret;
  if (!appSecret) throw new ConfigError('APP_SECRET', 'is required: use the same value as the api and worker');
  return appSecret;
}

/** DKIM keys: sealed with a key derived from APP_SECRET, so the worker that signs can open them. */
async function dkim(argv: string[]): Promise<number> {
  const config = loadConfig(
    {
      NODE_ENV: 'production',
      SMTP_URL: 'smtp://127.0.0.1:1025', // the CLI sends no mail
      ...process.env,
      APP_SECRET: appSecretOf(),
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    { linksUnused: true },
  );
  return dkimCli(argv, config, {
    out: (line) => console.log(line),
    err: (line) => console.error(`mailroom cli: ${line}`),
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, slug, file] = argv;
  if (isUserCommand(command)) return users(argv);
  if (isDkimCommand(command)) return dkim(argv.slice(1));
  if (!command || !['import', 'export'].includes(command) || !slug || (command === 'import' && !file)) {
    console.error(USAGE);
    return 64;
  }
  const appSecret = appSecretOf();
  const config = loadConfig(
    {
      NODE_ENV: 'production',
      SMTP_URL: 'smtp://127.0.0.1:1025', // the CLI sends no mail
      ...process.env,
      APP_SECRET: appSecret,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    { linksUnused: true },
  );
  @Module({ imports: [ConfigModule.forRoot(config), DbModule, SubscriptionsModule] })
  class CliModule {}
  const app = await NestFactory.createApplicationContext(CliModule, { logger: ['error', 'warn'] });
  try {
    const bulk = app.get(ImportExportService);
    if (command === 'import') {
      const started = Date.now();
      // Opened first, so that a missing file is a one-line error rather than an unhandled stream error.
      const input = createReadStream(file);
      await once(input, 'ready');
      let report: ImportReport;
      try {
        report = await bulk.import(slug, input);
      } catch (err) {
        // A file that cannot be parsed: one line naming the file and the line, EX_DATAERR; nothing was written.
        if (!(err instanceof CsvFileError)) throw err;
        console.error(`mailroom cli: ${file}: ${err.message}`);
        return 65;
      }
      const seconds = (Date.now() - started) / 1000;
      console.log(JSON.stringify({ ...report, seconds }, null, 2));
    } else {
      const stream = await bulk.export(slug);
      await new Promise<void>((resolve, reject) => {
        stream.on('end', resolve).on('error', reject);
        stream.pipe(process.stdout, { end: false });
      });
    }
    return 0;
  } finally {
    await app.close();
  }
}

main(process.argv.slice(2))
  .then((code) => process.exit(code))
  .catch((err: unknown) => {
    console.error(
      err instanceof ConfigError
        ? `mailroom cli: ${err.message}`
        : `mailroom cli: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(1);
  });
