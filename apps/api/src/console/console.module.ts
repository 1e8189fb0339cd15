import { Module } from '@nestjs/common';
import { StaffModule } from '#staff/staff.module.js';
import { AudienceStatsRepository } from '#subscriptions/audience-stats.repository.js';
import { SubscriptionStatsRepository } from '#subscriptions/subscription-stats.repository.js';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { DkimModule } from '#mail/dkim/dkim.module.js';
import { WebhooksOutModule } from '#subscriptions/webhooks-out/webhooks-out.module.js';
import { ConsoleAuthController } from './console-auth.controller.js';
import { ConsoleDkimController } from './console-dkim.controller.js';
import { ConsoleFunnelController } from './console-funnel.controller.js';
import { ConsoleOverviewController } from './console-overview.controller.js';
import { ConsoleSubscribersController } from './console-subscribers.controller.js';
import { ConsoleSuppressionsController } from './console-suppressions.controller.js';
import { ConsolePagesService } from './console-pages.service.js';
import { ConsoleUsersController } from './console-users.controller.js';
import { ConsoleWebhooksController } from './console-webhooks.controller.js';
import { StaffGuard } from './staff.guard.js';

/**
 * The staff console under /admin: server-rendered pages, session sign-in, CSRF-checked forms.
 * (bull-board at /admin/queues is mounted on Fastify directly: see queue-board.ts.)
 * The auth and users controllers come before the overview's `/admin/:section` catch-all.
 */
@Module({
  imports: [StaffModule, SubscriptionsModule, DkimModule, WebhooksOutModule],
  controllers: [
    ConsoleAuthController,
    ConsoleUsersController,
    ConsoleSubscribersController,
    ConsoleSuppressionsController,
    ConsoleDkimController,
    ConsoleWebhooksController,
    ConsoleFunnelController,
    ConsoleOverviewController,
  ],
  providers: [ConsolePagesService, StaffGuard, SubscriptionStatsRepository, AudienceStatsRepository],
  exports: [StaffModule, ConsolePagesService],
})
export class ConsoleModule {}
