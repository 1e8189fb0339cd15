import { Module } from '@nestjs/common';
import { MailRenderer } from './mail-renderer.service.js';
import { MailTransport } from './mail-transport.service.js';
import { SubscriptionMailService } from './subscription-mail.service.js';

@Module({
  providers: [MailRenderer, MailTransport, SubscriptionMailService],
  exports: [MailRenderer, MailTransport, SubscriptionMailService],
})
export class MailModule {}
