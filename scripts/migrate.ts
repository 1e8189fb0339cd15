import 'reflect-metadata';
import { migrate } from '#db/data-source.js';

/**
 * npm run migrate: applies every migration to DATABASE_URL (and BullMQ's schema when no Redis is
 * configured: REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES all unset).
 */
const url = process.env.DATABASE_URL;
if (!url) {
  console.error('mailroom migrate: DATABASE_URL is required');
  process.exit(78);
}
const redis = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'].some((v) => !!process.env[v]?.trim());
migrate(url, { queueSchema: !redis })
  .then((applied) => {
    console.log(applied.length ? `Applied migrations: ${applied.join(', ')}` : 'Database is up to date');
  })
  .catch((err: unknown) => {
    console.error(`mailroom migrate failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
