import pg from 'pg';
import { runMigrations as runQueueMigrations } from 'bullmq';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { ENTITIES } from './entities/index.js';
import { Init1764000000000 } from './migrations/1764000000000-init.js';
import { Digests1764100000000 } from './migrations/1764100000000-digests.js';
import { DigestResumed1764200000000 } from './migrations/1764200000000-digest-resumed.js';
import { Staff1764500000000 } from './migrations/1764500000000-staff.js';
import { SubscriberEmailSearch1764600000000 } from './migrations/1764600000000-subscriber-email-search.js';
import { SubscribeFunction1764700000000 } from './migrations/1764700000000-subscribe-function.js';
import { RevocationNotices1764800000000 } from './migrations/1764800000000-revocation-notices.js';
import { SubscribeRehearsal1764900000000 } from './migrations/1764900000000-subscribe-rehearsal.js';
import { NewsletterLookback1765000000000 } from './migrations/1765000000000-newsletter-lookback.js';
import { OutboxAdd1765100000000 } from './migrations/1765100000000-outbox-add.js';
import { DigestVoice1765200000000 } from './migrations/1765200000000-digest-voice.js';
import { DigestVariants1765300000000 } from './migrations/1765300000000-digest-variants.js';
import { DigestWaves1765400000000 } from './migrations/1765400000000-digest-waves.js';
import { WhatWorked1765500000000 } from './migrations/1765500000000-what-worked.js';
import { GuideDownloads1765510000000 } from './migrations/1765510000000-guide-downloads.js';
import { DkimKeys1765600000000 } from './migrations/1765600000000-dkim-keys.js';
import { WebhookEndpoints1765610000000 } from './migrations/1765610000000-webhook-endpoints.js';
import { SmtpRoutes1765620000000 } from './migrations/1765620000000-smtp-routes.js';
import { BounceReports1765630000000 } from './migrations/1765630000000-bounce-reports.js';

export const MIGRATIONS = [
  Init1764000000000,
  Digests1764100000000,
  DigestResumed1764200000000,
  Staff1764500000000,
  SubscriberEmailSearch1764600000000,
  SubscribeFunction1764700000000,
  RevocationNotices1764800000000,
  SubscribeRehearsal1764900000000,
  NewsletterLookback1765000000000,
  OutboxAdd1765100000000,
  DigestVoice1765200000000,
  DigestVariants1765300000000,
  DigestWaves1765400000000,
  WhatWorked1765500000000,
  GuideDownloads1765510000000,
  DkimKeys1765600000000,
  WebhookEndpoints1765610000000,
  SmtpRoutes1765620000000,
  BounceReports1765630000000,
];

export function dataSourceOptions(url: string): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTransactionMode: 'each',
    synchronize: false,
    extra: { max: 10 },
  };
}

/**
 * Applies every pending migration (idempotent). With `queueSchema`, also creates or upgrades
 * BullMQ's own PostgreSQL schema, used when no REDIS_URL is configured.
 */
export async function migrate(url: string, opts: { queueSchema: boolean }): Promise<string[]> {
  const ds = new DataSource(dataSourceOptions(url));
  await ds.initialize();
  try {
    const applied = await ds.runMigrations();
    if (opts.queueSchema) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await runQueueMigrations(client);
      } finally {
        await client.end();
      }
    }
    return applied.map((m) => m.name);
  } finally {
    await ds.destroy();
  }
}
