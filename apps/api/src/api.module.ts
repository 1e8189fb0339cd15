import { type DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { ThrottlerModule } from '@nestjs/throttler';
import { ClickRecorder } from './clicks/click-recorder.service.js';
import type { AppConfig } from '#config/config.js';
import { ConfigModule } from '#core/config.module.js';
import { LoggerModule } from '#core/logger.module.js';
import { DbModule } from '#db/db.module.js';
import { QueueModule } from '#queue/queue.module.js';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { WebhooksOutModule } from '#subscriptions/webhooks-out/webhooks-out.module.js';
import { DigestsAdminModule } from '#digests/digests.module.js';
import { ArticlesController } from './articles/articles.controller.js';
import { DigestsController } from './digests/digests.controller.js';
import { FunnelController } from './admin/funnel.controller.js';
import { NewslettersController } from './admin/newsletters.controller.js';
import { SubscribersController } from './admin/subscribers.controller.js';
import { SubscriberRecordsController } from './admin/subscriber-records.controller.js';
import { SuppressionsController } from './admin/suppressions.controller.js';
import { WebhooksController } from './webhooks/webhooks.controller.js';
import { WebhookEndpointsController } from './webhook-endpoints/webhook-endpoints.controller.js';
import { AllExceptionsFilter } from './common/all-exceptions.filter.js';
import { SlidingLogThrottlerStorage, throttlerKey } from './common/throttler-storage.js';
import { ConfirmController } from './confirm/confirm.controller.js';
import { GuidesController } from './guides/guides.controller.js';
import { HealthController } from './health/health.controller.js';
import { PagesService } from './pages/pages.service.js';
import { SubscriptionsController } from './subscriptions/subscriptions.controller.js';
import { UnsubscribeController } from './unsubscribe/unsubscribe.controller.js';
import { AdminAuthModule } from './admin/admin-auth.module.js';
import { ConsoleModule } from './console/console.module.js';
import { ConsoleContentModule } from './console/console-content.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { ArchiveModule } from './archive/archive.module.js';

@Module({})
export class ApiModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: ApiModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot(config, 'mailroom-api'),
        DbModule,
        QueueModule.forRoot(config),
        SubscriptionsModule,
        WebhooksOutModule,
        DigestsAdminModule,
        TerminusModule.forRoot({ errorLogStyle: 'pretty', logger: false }),
        // Per client IP, on the public POST routes (guards are applied there).
        ThrottlerModule.forRoot({
          throttlers: [{ ttl: 60_000, limit: config.abuse.publicPostsPerMinute }],
          storage: new SlidingLogThrottlerStorage(),
          generateKey: throttlerKey,
        }),
        ConsoleModule,
        ConsoleContentModule,
        AdminAuthModule,
        MetricsModule,
        ArchiveModule,
      ],
      controllers: [
        SubscriptionsController,
        ConfirmController,
        UnsubscribeController,
        GuidesController,
        HealthController,
        NewslettersController,
        FunnelController,
        SubscribersController,
        ArticlesController,
        DigestsController,
        SubscriberRecordsController,
        SuppressionsController,
        WebhooksController,
        WebhookEndpointsController,
      ],
      providers: [PagesService, ClickRecorder, { provide: APP_FILTER, useClass: AllExceptionsFilter }],
    };
  }
}
