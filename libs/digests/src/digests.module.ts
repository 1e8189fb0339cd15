import { Module } from '@nestjs/common';
import { LedgerPg } from '#db/ledger-pg.service.js';
import { MailModule } from '#mail/mail.module.js';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { ArticlesRepository } from './articles.repository.js';
import { ArticlesService } from './articles.service.js';
import { BatchQueue } from './batch-queue.service.js';
import { DigestRenderer } from './digest-renderer.service.js';
import { DigestStatsRepository } from './digest-stats.repository.js';
import { DigestWaves } from './digest-waves.service.js';
import { DigestWavesRepository } from './digest-waves.repository.js';
import { DeliveriesRepository } from './deliveries.repository.js';
import { DigestPlanner } from './digest-planner.service.js';
import { DigestSender } from './digest-sender.service.js';
import { DigestsRepository } from './digests.repository.js';
import { DigestsService } from './digests.service.js';
import { RevocationNoticesRepository } from './revocation-notices.repository.js';
import { Revocations } from './revocations.service.js';
import { FeedsRepository } from './feeds.repository.js';
import { FeedsService } from './feeds.service.js';
import { SchedulesRepository } from './schedules.repository.js';
import { SchedulesService } from './schedules.service.js';
import { TestCopySender } from './test-copy.service.js';

const PROVIDERS = [
  ArticlesRepository,
  ArticlesService,
  BatchQueue,
  DigestRenderer,
  DigestPlanner,
  DigestWaves,
  DigestWavesRepository,
  DigestSender,
  DigestsRepository,
  DigestsService,
  FeedsRepository,
  FeedsService,
  SchedulesRepository,
  SchedulesService,
  TestCopySender,
];

@Module({
  imports: [MailModule, SubscriptionsModule],
  providers: [...PROVIDERS, DeliveriesRepository, LedgerPg, RevocationNoticesRepository, Revocations],
  exports: PROVIDERS,
})
export class DigestsModule {}

/** What the api needs: no sender, no scheduler (the api never sends mail). */
const ADMIN_PROVIDERS = [
  ArticlesRepository,
  ArticlesService,
  DigestRenderer,
  DigestStatsRepository,
  DigestWavesRepository,
  DigestsRepository,
  DigestsService,
  FeedsRepository,
  FeedsService,
  SchedulesRepository,
];

@Module({ imports: [SubscriptionsModule], providers: ADMIN_PROVIDERS, exports: ADMIN_PROVIDERS })
export class DigestsAdminModule {}
