import { Module } from '@nestjs/common';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { AdminAuthModule } from '../admin/admin-auth.module.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsGuard } from './metrics.guard.js';
import { MetricsRepository } from './metrics.repository.js';
import { MetricsService } from './metrics.service.js';

/** GET /metrics for Prometheus. Needs the global config, database and queue modules. */
@Module({
  imports: [SubscriptionsModule, AdminAuthModule],
  controllers: [MetricsController],
  providers: [MetricsGuard, MetricsRepository, MetricsService],
})
export class MetricsModule {}
