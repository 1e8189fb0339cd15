/**
 * The one job contract. Queue names, job names and event types are persisted data (in the outbox
 * and in the queue backend): never rename one without a migration.
 * Payloads carry ids, never entities or Dates.
 */
export const MAIL_QUEUE = 'mail';

export type MailJob =
  | { name: 'send-confirmation'; data: { subscriberId: string; newsletterIds: number[] } }
  | { name: 'send-guide'; data: { subscriptionId: string } };

export type MailJobName = MailJob['name'];
export type MailJobData<N extends MailJobName> = Extract<MailJob, { name: N }>['data'];

/** Domain events written to the outbox in the same transaction as the change they describe. */
export type DomainEvent =
  | { type: 'subscription.requested'; payload: { subscriberId: string; newsletterIds: number[] } }
  | { type: 'subscription.confirmed'; payload: { subscriptionId: string } };

export type DomainEventType = DomainEvent['type'];

/** What each event asks the workers to do. */
export function jobForEvent(event: DomainEvent): MailJob {
  switch (event.type) {
    case 'subscription.requested':
      return { name: 'send-confirmation', data: event.payload };
    case 'subscription.confirmed':
      return { name: 'send-guide', data: event.payload };
  }
}

export function isDomainEvent(type: string, payload: unknown): boolean {
  return (type === 'subscription.requested' || type === 'subscription.confirmed') && typeof payload === 'object';
}
