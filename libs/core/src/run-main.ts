import { ConfigError, loadConfig, type AppConfig } from '#config/config.js';

/** Loads the configuration (a bad variable stops the process with its name) and starts an app. */
export function runMain(name: string, start: (config: AppConfig) => Promise<unknown>): void {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`mailroom ${name}: ${err.message}`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  start(config).catch((err: unknown) => {
    console.error(`mailroom ${name} failed to start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
