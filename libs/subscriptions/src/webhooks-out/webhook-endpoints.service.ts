import { BadRequestException, Inject, Injectable, Logger, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { WebhookDeliveriesRepository, type WebhookAttemptRow } from './webhook-deliveries.repository.js';
import { type WebhookEndpointRow, WebhookEndpointsRepository } from './webhook-endpoints.repository.js';
import type { WebhookDeliveryStatus, WebhookEventType } from './webhook-events.js';
import { EndpointRefused, checkEndpoint } from './webhook-post.js';
import { newWebhookSecret, sealSecret } from './webhook-signing.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ATTEMPTS_SHOWN = 20;

export interface WebhookEndpointView {
  id: string;
  url: string;
  events: WebhookEventType[];
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  /** Deliveries still being tried, and those given up on after the retry window. */
  pendingDeliveries: number;
  failedDeliveries: number;
}

export interface WebhookAttemptView {
  at: Date;
  /** The endpoint's HTTP status, or null when there was none (refused, timeout, connection). */
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** The first few hundred bytes of the answer. */
  response: string | null;
}

export interface WebhookDeliveryView {
  /** The `webhook-id` header: the same on every attempt and replay. */
  id: string;
  type: WebhookEventType;
  status: WebhookDeliveryStatus;
  createdAt: Date;
  attemptCount: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  payload: unknown;
  /** The latest attempts, newest first. */
  attempts: WebhookAttemptView[];
}

/** Staff's side of outgoing webhooks: endpoints, their secrets, deliveries and replays. */
@Injectable()
export class WebhookEndpointsService {
  private readonly logger = new Logger('WebhookEndpoints');

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly endpoints: WebhookEndpointsRepository,
    private readonly deliveries: WebhookDeliveriesRepository,
  ) {}

  /** Registers an endpoint; the secret is returned here (and on rotation) only. */
  async create(url: string, events: WebhookEventType[], by: string): Promise<WebhookEndpointView & { secret: string }> {
    const checked = await this.checkUrl(url);
    const id = randomUUID();
    const secret = newWebhookSecret();
    await this.endpoints.insert(this.ds, {
      id,
      url: checked,
      events: [...new Set(events)],
      sealed: sealSecret(this.config.appSecret, secret),
    });
    this.logger.log(`Webhook endpoint ${id} registered by ${by} for ${[...new Set(events)].join(', ')}`);
    return { ...(await this.get(id)), secret };
  }

  async list(): Promise<WebhookEndpointView[]> {
    return (await this.endpoints.list(this.ds)).map(view);
  }

  async get(id: string): Promise<WebhookEndpointView> {
    const row = UUID.test(id) ? await this.endpoints.byId(this.ds, id) : null;
    if (!row) throw new NotFoundException(`no webhook endpoint ${id}`);
    return view(row);
  }

  async update(
    id: string,
    change: { url?: string; events?: WebhookEventType[]; enabled?: boolean },
    by: string,
  ): Promise<WebhookEndpointView> {
    await this.get(id);
    const url = change.url === undefined ? undefined : await this.checkUrl(change.url);
    const events = change.events === undefined ? undefined : [...new Set(change.events)];
    if (!(await this.endpoints.update(this.ds, id, { url, events, enabled: change.enabled })))
      throw new NotFoundException(`no webhook endpoint ${id}`);
    this.logger.log(`Webhook endpoint ${id} changed by ${by}`);
    return this.get(id);
  }

  /** A new secret at once; the old one stops signing immediately. */
  async rotateSecret(id: string, by: string): Promise<{ id: string; secret: string }> {
    await this.get(id);
    const secret = newWebhookSecret();
    if (!(await this.endpoints.update(this.ds, id, { sealed: sealSecret(this.config.appSecret, secret) })))
      throw new NotFoundException(`no webhook endpoint ${id}`);
    this.logger.log(`Webhook endpoint ${id}: secret rotated by ${by}`);
    return { id, secret };
  }

  async remove(id: string, by: string): Promise<void> {
    if (!UUID.test(id) || !(await this.endpoints.delete(this.ds, id)))
      throw new NotFoundException(`no webhook endpoint ${id}`);
    this.logger.log(`Webhook endpoint ${id} deleted by ${by}`);
  }

  /** One page of an endpoint's deliveries, newest first, each with its latest attempts. */
  async deliveriesOf(
    id: string,
    opts: { before?: string; limit?: number } = {},
  ): Promise<{ items: WebhookDeliveryView[]; next: string | null }> {
    await this.get(id);
    const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
    let before: string | null = null;
    if (opts.before !== undefined) {
      if (!UUID.test(opts.before)) throw new BadRequestException(['before must be a delivery id']);
      before = opts.before;
    }
    const found = await this.deliveries.page(this.ds, id, before, limit + 1);
    const page = found.slice(0, limit);
    const attempts = await this.deliveries.attemptsOf(
      this.ds,
      page.map((d) => d.id),
      ATTEMPTS_SHOWN,
    );
    const byDelivery = new Map<string, WebhookAttemptRow[]>();
    for (const a of attempts) byDelivery.set(a.delivery_id, [...(byDelivery.get(a.delivery_id) ?? []), a]);
    return {
      items: page.map((d) => ({
        id: d.id,
        type: d.type,
        status: d.status,
        createdAt: d.created_at,
        attemptCount: d.attempts,
        lastStatusCode: d.last_status_code,
        lastError: d.last_error,
        nextAttemptAt: d.status === 'pending' ? d.next_attempt_at : null,
        deliveredAt: d.delivered_at,
        payload: d.payload,
        attempts: (byDelivery.get(d.id) ?? []).map((a) => ({
          at: a.attempted_at,
          statusCode: a.status_code,
          error: a.error,
          durationMs: a.duration_ms,
          response: a.response_excerpt,
        })),
      })),
      next: found.length > limit ? page[page.length - 1].id : null,
    };
  }

  /** Queues a delivery again (same webhook-id, fresh retry window). */
  async replay(id: string, deliveryId: string, by: string): Promise<{ id: string; status: 'pending' }> {
    await this.get(id);
    if (!UUID.test(deliveryId) || !(await this.deliveries.replay(this.ds, id, deliveryId)))
      throw new NotFoundException(`no delivery ${deliveryId} for webhook endpoint ${id}`);
    this.logger.log(`Webhook delivery ${deliveryId} replayed by ${by}`);
    return { id: deliveryId, status: 'pending' };
  }

  /** The URL as it will be stored, once it and its host's addresses pass the guard; 400 otherwise. */
  private async checkUrl(raw: string): Promise<string> {
    try {
      const { url } = await checkEndpoint(raw.trim(), { allowPrivate: this.config.feeds.allowPrivate });
      return url.toString();
    } catch (err) {
      if (err instanceof EndpointRefused) throw new BadRequestException([`url: ${err.message}`]);
      throw err;
    }
  }
}

function view(r: WebhookEndpointRow): WebhookEndpointView {
  return {
    id: r.id,
    url: r.url,
    events: r.events,
    enabled: r.enabled,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    pendingDeliveries: r.pending,
    failedDeliveries: r.failed,
  };
}
