import 'reflect-metadata';
import { runMain } from '#core/run-main.js';
import { createApi } from './bootstrap.js';

runMain('api', async (config) => {
  const app = await createApi(config);
  app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
  await app.listen(config.port, '0.0.0.0');
  return app;
});
