import { Module } from '@nestjs/common';
import { StaffModule } from '#staff/staff.module.js';
import { SubscriptionsModule } from '#subscriptions/subscriptions.module.js';
import { ApiKeyAuth, ApiKeyGuard } from './api-key.guard.js';

/** API-key checks shared by the admin routes and /metrics: one count of wrong keys per process. */
@Module({
  imports: [StaffModule, SubscriptionsModule],
  providers: [ApiKeyAuth, ApiKeyGuard],
  exports: [ApiKeyAuth, ApiKeyGuard],
})
export class AdminAuthModule {}
