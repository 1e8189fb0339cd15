import { type DynamicModule, Module } from '@nestjs/common';
import type { AppConfig } from '#config/config.js';
import { ConfigModule } from '#core/config.module.js';
import { LoggerModule } from '#core/logger.module.js';
import { DbModule } from '#db/db.module.js';
import { DigestsModule } from '#digests/digests.module.js';
import { BounceIntake } from '#mail/bounces/bounce-intake.service.js';
import { BounceReportsRepository } from '#mail/bounces/bounce-reports.repository.js';
import { MailModule } from '#mail/mail.module.js';
import { OutboxRepository } from '#queue/outbox.repository.js';
import { QueueModule } from '#queue/queue.module.js';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { BounceListener } from './bounces/bounce-listener.service.js';
import { WebhooksOutModule } from '#subscriptions/webhooks-out/webhooks-out.module.js';
import { OutboxRelayService } from './outbox/outbox-relay.service.js';
import { ReconcilerService } from './outbox/reconciler.service.js';
import { DigestProcessor } from './processors/digest.processor.js';
import { MailProcessor } from './processors/mail.processor.js';
import { WebhookDelivererService } from './webhooks/webhook-deliverer.service.js';

@Module({})
export class WorkerModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot(config, 'mailroom-worker'),
        DbModule,
        QueueModule.forRoot(config),
        MailModule,
        DigestsModule,
        SubscriptionsModule,
        WebhooksOutModule,
      ],
      providers: [
        OutboxRepository,
        OutboxRelayService,
        ReconcilerService,
        MailProcessor,
        DigestProcessor,
        // Delivery reports by SMTP (VERP), when BOUNCE_DOMAIN is set.
        BounceReportsRepository,
        BounceIntake,
        BounceListener,
        WebhookDelivererService,
      ],
    };
  }
}
