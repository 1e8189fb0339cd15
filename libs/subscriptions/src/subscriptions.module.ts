import { Module } from '@nestjs/common';
import { OutboxRepository } from '#queue/outbox.repository.js';
import { ApiKeysRepository } from './api-keys.repository.js';
import { ApiKeysService } from './api-keys.service.js';
import { FunnelRepository } from './funnel.repository.js';
import { FunnelService } from './funnel.service.js';
import { GuidesRepository } from './guides.repository.js';
import { GuidesService } from './guides.service.js';
import { ImportExportRepository } from './import-export.repository.js';
import { ImportExportService } from './import-export.service.js';
import { SubscriberAdminService } from './subscriber-admin.service.js';
import { SubscriberDirectoryService } from './subscriber-directory.service.js';
import { SuppressionsRepository } from './suppressions.repository.js';
import { SuppressionsService } from './suppressions.service.js';
import { WebhooksService } from './webhooks.service.js';
import { NewsletterCatalog } from './newsletter-catalog.service.js';
import { NewslettersRepository } from './newsletters.repository.js';
import { NewslettersService } from './newsletters.service.js';
import { PreparedPg } from '#db/prepared-pg.service.js';
import { SignupWriter } from './signup-writer.repository.js';
import { SubscriberRecordsRepository } from './subscriber-records.repository.js';
import { SubscribersRepository } from './subscribers.repository.js';
import { SubscribersService } from './subscribers.service.js';
import { SubscriptionsRepository } from './subscriptions.repository.js';
import { SubscriptionsService } from './subscriptions.service.js';

const PROVIDERS = [
  ApiKeysRepository,
  ApiKeysService,
  FunnelRepository,
  FunnelService,
  GuidesRepository,
  GuidesService,
  ImportExportRepository,
  ImportExportService,
  NewsletterCatalog,
  NewslettersRepository,
  NewslettersService,
  OutboxRepository,
  PreparedPg,
  SubscriberAdminService,
  SubscriberDirectoryService,
  SubscriberRecordsRepository,
  SubscribersRepository,
  SignupWriter,
  SuppressionsRepository,
  SuppressionsService,
  WebhooksService,
  SubscribersService,
  SubscriptionsRepository,
  SubscriptionsService,
];

@Module({ providers: PROVIDERS, exports: PROVIDERS })
export class SubscriptionsModule {}
