import 'reflect-metadata';
import { migrate } from '#db/data-source.js';

/** npm run migrate: applies every migration to DATABASE_URL (and BullMQ's schema when REDIS_URL is unset). */
const url = process.env.DATABASE_URL;
if (!url) {
  console.error('mailroom migrate: DATABASE_URL is required');
  process.exit(78);
}
migrate(url, { queueSchema: !process.env.REDIS_URL })
  .then((applied) => {
    console.log(applied.length ? `Applied migrations: ${applied.join(', ')}` : 'Database is up to date');
  })
  .catch((err: unknown) => {
    console.error(`mailroom migrate failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
