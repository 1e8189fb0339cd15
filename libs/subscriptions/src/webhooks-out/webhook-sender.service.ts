import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { type ClaimedDelivery, WebhookDeliveriesRepository } from './webhook-deliveries.repository.js';
import { postWebhook } from './webhook-post.js';
import { nextRetry } from './webhook-retry.js';
import { openSecret, signWebhook } from './webhook-signing.js';

/** POSTs in flight to one endpoint at most, across all workers: one that hangs cannot take every slot. */
export const MAX_IN_FLIGHT_PER_ENDPOINT = 4;

/**
 * How long a claim holds a delivery: twice the POST's deadline plus a margin for recording the
 * outcome. Past it, a worker that died mid-POST has its delivery tried again by another.
 */
export function claimLeaseSeconds(timeoutMs: number): number {
  return Math.ceil((2 * timeoutMs) / 1000) + 5;
}

/**
 * The worker's side of outgoing webhooks: claims due deliveries and POSTs each one signed,
 * recording every attempt and settling the delivery (delivered, retry later, or failed).
 */
@Injectable()
export class WebhookSender {
  private readonly logger = new Logger('WebhookSender');

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly deliveries: WebhookDeliveriesRepository,
  ) {}

  async claim(limit: number): Promise<ClaimedDelivery[]> {
    return this.deliveries.claimDue(
      this.ds,
      limit,
      MAX_IN_FLIGHT_PER_ENDPOINT,
      claimLeaseSeconds(this.config.webhooksOut.timeoutMs),
    );
  }

  /** Drops finished deliveries older than WEBHOOK_KEEP_DAYS, a page at a time; returns how many. */
  async prune(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.deliveries.prune(this.ds, this.config.webhooksOut.keepDays, 5000);
      total += n;
      if (n < 5000) return total;
    }
  }

  /** One attempt at one claimed delivery; never throws for the endpoint's faults. */
  async deliver(d: ClaimedDelivery): Promise<'delivered' | 'retry' | 'failed'> {
    const cfg = this.config.webhooksOut;
    const body = JSON.stringify(d.payload);
    const timestamp = Math.floor(Date.now() / 1000);
    let outcome: Awaited<ReturnType<typeof postWebhook>>;
    try {
      const secret = openSecret(this.config.appSecret, d.secret_sealed);
      outcome = await postWebhook(
        d.url,
        {
          'webhook-id': d.id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook(secret, d.id, timestamp, body),
        },
        body,
        { allowPrivate: this.config.feeds.allowPrivate, timeoutMs: cfg.timeoutMs },
      );
    } catch (err) {
      outcome = { ok: false, error: err instanceof Error ? err.message : String(err), durationMs: 0 };
    }
    const statusCode = outcome.statusCode ?? null;
    const error = outcome.error ?? (outcome.ok ? null : `the endpoint answered ${statusCode}`);
    const step = outcome.ok
      ? null
      : nextRetry({
          attempts: d.attempts,
          now: new Date(),
          windowStart: new Date(d.window_start),
          baseMs: cfg.retryBaseMs,
          windowSeconds: cfg.retryWindowSeconds,
        });
    const status = outcome.ok ? 'delivered' : step?.kind === 'retry' ? 'pending' : 'failed';
    await this.ds.transaction(async (em) => {
      await this.deliveries.recordAttempt(em, {
        deliveryId: d.id,
        statusCode,
        error: outcome.error ?? null,
        durationMs: outcome.durationMs,
        excerpt: outcome.excerpt ?? null,
      });
      await this.deliveries.settle(em, d.id, {
        status,
        retryAt: step?.kind === 'retry' ? step.at : undefined,
        statusCode,
        error,
      });
    });
    if (status === 'failed')
      this.logger.warn(
        `Webhook delivery ${d.id} to endpoint ${d.endpoint_id} failed for good after ${d.attempts} attempts`,
      );
    return status === 'pending' ? 'retry' : status;
  }
}
