import { Module } from '@nestjs/common';
import { LedgerPg } from '#db/ledger-pg.service.js';
import { MailModule } from '#mail/mail.module.js';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { ArticlesService } from './articles.service.js';
import { DigestRenderer } from './digest-renderer.service.js';
import { DigestSender } from './digest-sender.service.js';
import { DigestsRepository } from './digests.repository.js';
import { DigestsService } from './digests.service.js';
import { Revocations } from './revocations.service.js';
import { FeedsService } from './feeds.service.js';
import { SchedulesService } from './schedules.service.js';

const PROVIDERS = [
  ArticlesService,
  DigestRenderer,
  DigestSender,
  DigestsRepository,
  DigestsService,
  FeedsService,
  SchedulesService,
];

@Module({
  imports: [MailModule, SubscriptionsModule],
  providers: [...PROVIDERS, LedgerPg, Revocations],
  exports: PROVIDERS,
})
export class DigestsModule {}

/** What the api needs: no sender, no scheduler (the api never sends mail). */
const ADMIN_PROVIDERS = [ArticlesService, DigestRenderer, DigestsRepository, DigestsService, FeedsService];

@Module({ imports: [SubscriptionsModule], providers: ADMIN_PROVIDERS, exports: ADMIN_PROVIDERS })
export class DigestsAdminModule {}
