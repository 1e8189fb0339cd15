import { Module } from '@nestjs/common';
import { MailRenderer } from './mail-renderer.service.js';
import { MailTransport } from './mail-transport.service.js';
import { MailRepository } from './mail.repository.js';
import { SendRateLimiter } from './send-rate-limiter.service.js';
import { SubscriptionMailService } from './subscription-mail.service.js';

@Module({
  providers: [MailRenderer, MailRepository, MailTransport, SendRateLimiter, SubscriptionMailService],
  exports: [MailRenderer, MailRepository, MailTransport, SendRateLimiter, SubscriptionMailService],
})
export class MailModule {}
