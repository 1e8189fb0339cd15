import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { apiKeyHash } from './tokens.js';
import { rows } from '#db/sql.js';

@Injectable()
export class ApiKeysService implements OnApplicationBootstrap {
  private readonly logger = new Logger(ApiKeysService.name);

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** ADMIN_API_KEY bootstraps (or rotates) the key named "bootstrap". */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.adminApiKey) {
      this.logger.log('ADMIN_API_KEY is not set: only keys already in the database open the admin API');
      return;
    }
    await this.ds.query(
      `INSERT INTO api_keys (name, key_hash) VALUES ('bootstrap', $1)
       ON CONFLICT (name) DO UPDATE SET key_hash = EXCLUDED.key_hash`,
      [apiKeyHash(this.config.adminApiKey)],
    );
  }

  async verify(key: string): Promise<boolean> {
    const found = await rows(this.ds, `UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1 RETURNING id`, [
      apiKeyHash(key),
    ]);
    return found.length > 0;
  }
}
