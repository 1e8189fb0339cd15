import 'reflect-metadata';
import { admin } from './support/admin.js';
import { useStack } from './support/stack.js';

/**
 * At shutdown @nestjs/bullmq closes queues and workers together: a schedule sync still running
 * then met a closed PostgreSQL queue and waited forever, and the worker's close with it. The
 * digest processor now stops its worker first (see DigestProcessor.beforeApplicationShutdown).
 */
describe('shutdown while a schedule sync runs (postgres queue backend)', () => {
  const stack = useStack({ label: 'shutdown_sync', queue: 'postgres', start: false });

  it('closes within seconds right after schedule changes', async () => {
    for (let round = 0; round < 3; round++) {
      const apps = await stack.startApps();
      for (const slug of ['spine-health', 'arthritis-health', 'sports-health']) {
        const r = await admin(apps.baseUrl, 'PUT', `/v1/newsletters/${slug}/schedule`, {
          cron: `${round} 9 * * 2`,
          timezone: 'America/Chicago',
          delivery: round % 2 ? 'local' : 'newsletter',
        });
        expect(r.status).toBe(200);
      }
      const t0 = Date.now();
      await apps.close();
      expect(Date.now() - t0).toBeLessThan(20_000);
    }
  });
});
