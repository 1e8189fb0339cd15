import { ApiKey } from './api-key.entity.js';
import { ConsentRecord } from './consent-record.entity.js';
import { Guide } from './guide.entity.js';
import { MailLog } from './mail-log.entity.js';
import { Newsletter } from './newsletter.entity.js';
import { OutboxEvent } from './outbox-event.entity.js';
import { StaffSession } from './staff-session.entity.js';
import { StaffUser } from './staff-user.entity.js';
import { Subscriber } from './subscriber.entity.js';
import { Subscription } from './subscription.entity.js';
import { Suppression } from './suppression.entity.js';
import { Token } from './token.entity.js';

export {
  ApiKey,
  ConsentRecord,
  Guide,
  MailLog,
  Newsletter,
  OutboxEvent,
  StaffSession,
  StaffUser,
  Subscriber,
  Subscription,
  Suppression,
  Token,
};
export type { SubscriberStatus } from './subscriber.entity.js';
export type { SubscriptionStatus } from './subscription.entity.js';
export type { ConsentAction } from './consent-record.entity.js';
export type { StaffRole } from './staff-user.entity.js';

export const ENTITIES = [
  ApiKey,
  ConsentRecord,
  Guide,
  MailLog,
  Newsletter,
  OutboxEvent,
  StaffSession,
  StaffUser,
  Subscriber,
  Subscription,
  Suppression,
  Token,
];
