import { Module } from '@nestjs/common';
import { WebhookDeliveriesRepository } from './webhook-deliveries.repository.js';
import { WebhookEndpointsRepository } from './webhook-endpoints.repository.js';
import { WebhookEndpointsService } from './webhook-endpoints.service.js';
import { WebhookSender } from './webhook-sender.service.js';

const PROVIDERS = [WebhookEndpointsRepository, WebhookDeliveriesRepository, WebhookEndpointsService, WebhookSender];

/** Outgoing webhooks, for the api (endpoints, deliveries) and the worker (sending). */
@Module({ providers: PROVIDERS, exports: PROVIDERS })
export class WebhooksOutModule {}
