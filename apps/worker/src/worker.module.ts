import { type DynamicModule, Module } from '@nestjs/common';
import type { AppConfig } from '../../../libs/config/src/config.js';
import { ConfigModule } from '../../../libs/core/src/config.module.js';
import { LoggerModule } from '../../../libs/core/src/logger.module.js';
import { DbModule } from '../../../libs/db/src/db.module.js';
import { DigestsModule } from '../../../libs/digests/src/digests.module.js';
import { MailModule } from '../../../libs/mail/src/mail.module.js';
import { OutboxRepository } from '../../../libs/queue/src/outbox.repository.js';
import { QueueModule } from '../../../libs/queue/src/queue.module.js';
import { OutboxRelayService } from './outbox/outbox-relay.service.js';
import { ReconcilerService } from './outbox/reconciler.service.js';
import { DigestProcessor } from './processors/digest.processor.js';
import { MailProcessor } from './processors/mail.processor.js';

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
      ],
      providers: [OutboxRepository, OutboxRelayService, ReconcilerService, MailProcessor, DigestProcessor],
    };
  }
}
