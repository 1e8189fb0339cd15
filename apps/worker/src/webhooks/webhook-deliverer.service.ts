import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { WebhookSender } from '#subscriptions/webhooks-out/webhook-sender.service.js';

/** POSTs one worker has in flight at most; each runs on its own, so a slow endpoint holds one slot. */
const MAX_IN_FLIGHT = 16;
/** How often old finished deliveries are pruned (WEBHOOK_KEEP_DAYS). */
const PRUNE_EVERY_MS = 3_600_000;

/**
 * Sends outgoing webhooks: every WEBHOOK_POLL_MS (and at once when a POST ends while there is
 * work) it claims as many due deliveries as it has free slots, at most 4 in flight per endpoint,
 * and starts each POST without waiting for the others, so one failing or slow endpoint does not
 * delay the rest. State lives in PostgreSQL (webhook_deliveries), so nothing is lost across
 * restarts: a delivery claimed by a worker that died is tried again when its claim runs out.
 */
@Injectable()
export class WebhookDelivererService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(WebhookDelivererService.name);
  private readonly inFlight = new Set<Promise<unknown>>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private prunedAt = 0;

  constructor(
    private readonly sender: WebhookSender,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
      });
    }, ms);
  }

  private async tick(): Promise<void> {
    let found = false;
    try {
      const free = MAX_IN_FLIGHT - this.inFlight.size;
      if (free > 0) {
        const claimed = await this.sender.claim(free);
        found = claimed.length > 0;
        for (const d of claimed) {
          const p: Promise<unknown> = this.sender
            .deliver(d)
            .catch((err: unknown) =>
              this.logger.warn(
                `Webhook delivery ${d.id} could not be recorded (tried again later): ${err instanceof Error ? err.message : String(err)}`,
              ),
            )
            .finally(() => {
              this.inFlight.delete(p);
              // While there is work, a freed slot looks for more at once rather than after WEBHOOK_POLL_MS.
              if (found && !this.stopped && !this.running) {
                clearTimeout(this.timer);
                this.schedule(0);
              }
            });
          this.inFlight.add(p);
        }
      }
      if (Date.now() - this.prunedAt >= PRUNE_EVERY_MS) {
        this.prunedAt = Date.now();
        const pruned = await this.sender.prune();
        if (pruned > 0) this.logger.log(`Pruned ${pruned} finished webhook deliveries`);
      }
    } catch (err) {
      this.logger.warn(
        `Webhook deliveries could not be claimed (will retry): ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    this.schedule(this.config.webhooksOut.pollMs);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    // POSTs under way finish (each within WEBHOOK_TIMEOUT_MS) and are recorded before the pool closes.
    await Promise.all([...this.inFlight]);
  }
}
