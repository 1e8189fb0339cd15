import { Module } from '@nestjs/common';
import { ApiKeysService } from './api-keys.service.js';
import { GuidesService } from './guides.service.js';
import { ImportExportService } from './import-export.service.js';
import { SubscriberAdminService } from './subscriber-admin.service.js';
import { SubscriberDirectoryService } from './subscriber-directory.service.js';
import { SuppressionsService } from './suppressions.service.js';
import { WebhooksService } from './webhooks.service.js';
import { NewsletterCatalog } from './newsletter-catalog.service.js';
import { NewslettersService } from './newsletters.service.js';
import { PreparedPg } from '#db/prepared-pg.service.js';
import { SignupWriter } from './signup-writer.repository.js';
import { SubscribersService } from './subscribers.service.js';
import { SubscriptionsRepository } from './subscriptions.repository.js';
import { SubscriptionsService } from './subscriptions.service.js';

const PROVIDERS = [
  ApiKeysService,
  GuidesService,
  ImportExportService,
  NewsletterCatalog,
  NewslettersService,
  PreparedPg,
  SubscriberAdminService,
  SubscriberDirectoryService,
  SignupWriter,
  SuppressionsService,
  WebhooksService,
  SubscribersService,
  SubscriptionsRepository,
  SubscriptionsService,
];

@Module({ providers: PROVIDERS, exports: PROVIDERS })
export class SubscriptionsModule {}
