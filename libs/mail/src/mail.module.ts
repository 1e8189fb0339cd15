import { Module } from '@nestjs/common';
import { SuppressionsRepository } from '#subscriptions/suppressions.repository.js';
import { DkimKeys } from './dkim/dkim-keys.service.js';
import { DkimKeysRepository } from './dkim/dkim-keys.repository.js';
import { MailRenderer } from './mail-renderer.service.js';
import { MailTransport } from './mail-transport.service.js';
import { MailRepository } from './mail.repository.js';
import { SendRateLimiter } from './send-rate-limiter.service.js';
import { SubscriptionMailService } from './subscription-mail.service.js';

// SuppressionsRepository is stateless SQL: provided here so the mail lib does not import the
// subscriptions module (which the digests and the api build on top of this one).
@Module({
  providers: [
    DkimKeys,
    DkimKeysRepository,
    MailRenderer,
    MailRepository,
    MailTransport,
    SendRateLimiter,
    SubscriptionMailService,
    SuppressionsRepository,
  ],
  exports: [DkimKeys, MailRenderer, MailRepository, MailTransport, SendRateLimiter, SubscriptionMailService],
})
export class MailModule {}
