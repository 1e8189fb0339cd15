import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { ApiKeysRepository } from './api-keys.repository.js';
import { apiKeyHash } from './tokens.js';

@Injectable()
export class ApiKeysService implements OnApplicationBootstrap {
  private readonly logger = new Logger(ApiKeysService.name);

  constructor(
    private readonly keys: ApiKeysRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** ADMIN_API_KEY bootstraps (or rotates) the key named "bootstrap". */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.adminApiKey) {
      this.logger.log('ADMIN_API_KEY is not set: only keys already in the database open the admin API');
      return;
    }
    await this.keys.upsert('bootstrap', apiKeyHash(this.config.adminApiKey));
  }

  async verify(key: string): Promise<boolean> {
    return this.keys.touch(apiKeyHash(key));
  }
}
