/**
 * The one job contract. Queue names, job names and event types are persisted data (in the outbox
 * and in the queue backend): never rename one without a migration.
 * Payloads carry ids, never entities or Dates.
 */
export const MAIL_QUEUE = 'mail';
export const DIGEST_QUEUE = 'digest';
export const QUEUES = [MAIL_QUEUE, DIGEST_QUEUE] as const;
export type QueueName = (typeof QUEUES)[number];

/** Transactional mail: small, urgent, never stuck behind a digest. */
export type MailJob =
  | { name: 'send-confirmation'; data: { subscriberId: string; newsletterIds: number[] } }
  | { name: 'send-guide'; data: { subscriptionId: string } }
  | { name: 'send-digest-test'; data: { digestId: string; to: string } };

/** Digests and feeds: planning, fan-out batches, schedules, feed polling. */
export type DigestJob =
  | { name: 'plan-digest'; data: { digestId: string } }
  | {
      name: 'send-digest-batch';
      /** `waves`, `variants`: only the rows of these (due waves, variants rendered so far); all when absent. */
      data: {
        digestId: string;
        fromSubscriberId: string;
        toSubscriberId: string;
        waves?: number[];
        variants?: number[];
      };
    }
  | { name: 'send-digest-wave'; data: { digestId: string; wave: number } }
  | { name: 'scheduled-digest'; data: { newsletterId: number; local?: boolean } }
  | { name: 'sync-schedules'; data: Record<string, never> }
  | { name: 'poll-feeds'; data: Record<string, never> }
  | { name: 'poll-feed'; data: { newsletterId: number } };

export type MailJobName = MailJob['name'];
export type DigestJobName = DigestJob['name'];

/**
 * Job ids from the domain: retries and double clicks land on the same job. BullMQ 6 refuses ':'
 * in custom ids (it is its key separator), so the parts are joined with '-'.
 */
export const jobIds = {
  digestBatch: (digestId: string, fromSubscriberId: string) => `digest-${digestId}-from-${fromSubscriberId}`,
  digestWave: (digestId: string, wave: number) => `digest-${digestId}-wave-${wave}`,
  feed: (newsletterId: number, slot: number) => `feed-${newsletterId}-${slot}`,
  scheduler: (slug: string) => `schedule-${slug}`,
  feedScheduler: 'feeds-poll',
  syncSchedules: (at: number) => `sync-schedules-${at}`,
};

/** Domain events written to the outbox in the same transaction as the change they describe. */
export type DomainEvent =
  | { type: 'subscription.requested'; payload: { subscriberId: string; newsletterIds: number[] } }
  | { type: 'subscription.confirmed'; payload: { subscriptionId: string } }
  | { type: 'digest.requested'; payload: { digestId: string; sendAt: string } }
  | { type: 'digest.test-requested'; payload: { digestId: string; to: string } }
  | { type: 'schedule.changed'; payload: { newsletterId: number } };

export type DomainEventType = DomainEvent['type'];

export type QueuedJob =
  | { queue: typeof MAIL_QUEUE; job: MailJob; delayMs?: number }
  | { queue: typeof DIGEST_QUEUE; job: DigestJob; delayMs?: number };

/** What each event asks the workers to do. */
export function jobForEvent(event: DomainEvent, now = Date.now()): QueuedJob {
  switch (event.type) {
    case 'subscription.requested':
      return { queue: MAIL_QUEUE, job: { name: 'send-confirmation', data: event.payload } };
    case 'subscription.confirmed':
      return { queue: MAIL_QUEUE, job: { name: 'send-guide', data: event.payload } };
    case 'digest.test-requested':
      return { queue: MAIL_QUEUE, job: { name: 'send-digest-test', data: event.payload } };
    case 'digest.requested':
      return {
        queue: DIGEST_QUEUE,
        job: { name: 'plan-digest', data: { digestId: event.payload.digestId } },
        delayMs: Math.max(0, Date.parse(event.payload.sendAt) - now),
      };
    case 'schedule.changed':
      return { queue: DIGEST_QUEUE, job: { name: 'sync-schedules', data: {} } };
  }
}
