import { Module } from '@nestjs/common';
import { SuppressionsRepository } from '#subscriptions/suppressions.repository.js';
import { DkimModule } from './dkim/dkim.module.js';
import { MailRenderer } from './mail-renderer.service.js';
import { MailTransport } from './mail-transport.service.js';
import { MailRepository } from './mail.repository.js';
import { SendRateLimiter } from './send-rate-limiter.service.js';
import { SubscriptionMailService } from './subscription-mail.service.js';

// SuppressionsRepository is stateless SQL: provided here so the mail lib does not import the
// subscriptions module (which the digests and the api build on top of this one).
@Module({
  imports: [DkimModule],
  providers: [
    MailRenderer,
    MailRepository,
    MailTransport,
    SendRateLimiter,
    SubscriptionMailService,
    SuppressionsRepository,
  ],
  exports: [DkimModule, MailRenderer, MailRepository, MailTransport, SendRateLimiter, SubscriptionMailService],
})
export class MailModule {}
