/**
 * The events an endpoint may listen to. The names are persisted data (endpoint rows, delivery
 * rows, the triggers of migration WebhookEndpoints1765610000000): never rename one without a migration.
 */
export const WEBHOOK_EVENTS = [
  'subscription.confirmed',
  'subscription.unsubscribed',
  'subscriber.suppressed',
  'digest.sent',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

export function isWebhookEvent(v: unknown): v is WebhookEventType {
  return typeof v === 'string' && (WEBHOOK_EVENTS as readonly string[]).includes(v);
}

/** A delivery's state: pending until a 2xx (delivered) or the end of the retry window (failed). */
export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed';
