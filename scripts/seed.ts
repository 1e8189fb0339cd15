import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '#db/data-source.js';
import { seed } from '#db/seed.js';

/** npm run seed: the sample newsletters, the guide and sample articles (idempotent). */
const url = process.env.DATABASE_URL;
if (!url) {
  console.error('mailroom seed: DATABASE_URL is required');
  process.exit(78);
}
const ds = new DataSource(dataSourceOptions(url));
ds.initialize()
  .then(async () => {
    await seed(ds);
    await ds.destroy();
    console.log('Seeded: spine-health (default, with the guide), arthritis-health, sports-health, sample articles');
  })
  .catch((err: unknown) => {
    console.error(`mailroom seed failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
