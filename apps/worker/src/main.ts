import 'reflect-metadata';
import { runMain } from '#core/run-main.js';
import { createWorker } from './bootstrap.js';

runMain('worker', async (config) => {
  const app = await createWorker(config);
  app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
  await app.init();
  return app;
});
