import { Module } from '@nestjs/common';
import { DigestsAdminModule } from '#digests/digests.module.js';
import { AudienceCountRepository } from '#subscriptions/audience-count.repository.js';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { ConsoleArticlesController } from './console-articles.controller.js';
import { ConsoleDigestsController } from './console-digests.controller.js';
import { ConsoleModule } from './console.module.js';
import { ConsoleNewslettersController } from './console-newsletters.controller.js';
import { StaffGuard } from './staff.guard.js';

/**
 * The console's content sections: newsletters (details and weekly schedule), articles (and feed
 * status), digests (compose, preview, test, send, cancel, progress). Static routes, so they take
 * precedence over the overview's `/admin/:section` placeholder.
 */
@Module({
  imports: [ConsoleModule, SubscriptionsModule, DigestsAdminModule],
  controllers: [ConsoleNewslettersController, ConsoleArticlesController, ConsoleDigestsController],
  providers: [StaffGuard, AudienceCountRepository],
})
export class ConsoleContentModule {}
