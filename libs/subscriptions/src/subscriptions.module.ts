import { Module } from '@nestjs/common';
import { ApiKeysService } from './api-keys.service.js';
import { GuidesService } from './guides.service.js';
import { NewslettersService } from './newsletters.service.js';
import { SubscribersService } from './subscribers.service.js';
import { SubscriptionsRepository } from './subscriptions.repository.js';
import { SubscriptionsService } from './subscriptions.service.js';

const PROVIDERS = [
  ApiKeysService,
  GuidesService,
  NewslettersService,
  SubscribersService,
  SubscriptionsRepository,
  SubscriptionsService,
];

@Module({ providers: PROVIDERS, exports: PROVIDERS })
export class SubscriptionsModule {}
