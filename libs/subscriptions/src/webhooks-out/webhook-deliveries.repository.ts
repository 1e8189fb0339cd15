import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';
import type { WebhookDeliveryStatus, WebhookEventType } from './webhook-events.js';

type Db = EntityManager | DataSource;

/** A delivery claimed by a worker, with what it needs to POST it. */
export interface ClaimedDelivery {
  id: string;
  endpoint_id: string;
  url: string;
  secret_sealed: string;
  /** `{ type, timestamp, data }` as written by the trigger. */
  payload: unknown;
  /** Attempts so far, this one included. */
  attempts: number;
  window_start: Date;
}

export interface WebhookDeliveryRow {
  id: string;
  type: WebhookEventType;
  status: WebhookDeliveryStatus;
  attempts: number;
  payload: unknown;
  created_at: Date;
  next_attempt_at: Date;
  delivered_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
}

export interface WebhookAttemptRow {
  delivery_id: string;
  attempted_at: Date;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  response_excerpt: string | null;
}

/** Delivery rows (one per event and endpoint, written by the triggers) and their attempts. */
@Injectable()
export class WebhookDeliveriesRepository {
  /**
   * Claims up to `limit` due deliveries of enabled endpoints, at most `perEndpoint` in flight per
   * endpoint (so one endpoint that hangs cannot take every slot): other workers skip them, and
   * their next attempt moves `leaseSeconds` ahead, so a worker that dies mid-POST leaves them to be
   * tried again after that lease rather than lost. The claim counts as an attempt.
   */
  async claimDue(db: Db, limit: number, perEndpoint: number, leaseSeconds: number): Promise<ClaimedDelivery[]> {
    return rows<ClaimedDelivery>(
      db,
      `WITH due AS (
         SELECT c.id FROM webhook_endpoints e
         CROSS JOIN LATERAL (
           SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
            WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at
            LIMIT greatest($2 - (SELECT count(*) FROM webhook_deliveries b
                                  WHERE b.endpoint_id = e.id AND b.claimed_until > now()), 0)
            FOR UPDATE SKIP LOCKED) c
         WHERE e.enabled
         ORDER BY c.next_attempt_at LIMIT $1)
       UPDATE webhook_deliveries d
          SET next_attempt_at = now() + make_interval(secs => $3::float8),
              claimed_until = now() + make_interval(secs => $3::float8),
              attempts = d.attempts + 1
         FROM due, webhook_endpoints e
        WHERE d.id = due.id AND e.id = d.endpoint_id
       RETURNING d.id, d.endpoint_id, e.url, e.secret_sealed, d.payload, d.attempts, d.window_start`,
      [limit, perEndpoint, leaseSeconds],
    );
  }

  async recordAttempt(
    em: EntityManager,
    a: {
      deliveryId: string;
      statusCode: number | null;
      error: string | null;
      durationMs: number;
      excerpt: string | null;
    },
  ): Promise<void> {
    await em.query(
      `INSERT INTO webhook_attempts (delivery_id, status_code, error, duration_ms, response_excerpt)
       VALUES ($1, $2, $3, $4, $5)`,
      [a.deliveryId, a.statusCode, a.error, a.durationMs, a.excerpt],
    );
  }

  /** The outcome of an attempt: delivered, failed for good, or pending until `retryAt`. */
  async settle(
    em: EntityManager,
    id: string,
    outcome: { status: WebhookDeliveryStatus; retryAt?: Date; statusCode: number | null; error: string | null },
  ): Promise<void> {
    await em.query(
      `UPDATE webhook_deliveries SET
         status = $2,
         next_attempt_at = coalesce($3, next_attempt_at),
         claimed_until = NULL,
         delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END,
         last_status_code = $4,
         last_error = $5
       WHERE id = $1 AND status = 'pending'`,
      [id, outcome.status, outcome.retryAt ?? null, outcome.statusCode, outcome.error],
    );
  }

  /** One endpoint's deliveries, newest first, older than the delivery `before` (keyset). */
  async page(db: Db, endpointId: string, before: string | null, limit: number): Promise<WebhookDeliveryRow[]> {
    return rows<WebhookDeliveryRow>(
      db,
      `SELECT id, type, status, attempts, payload, created_at, next_attempt_at, delivered_at, last_status_code, last_error
         FROM webhook_deliveries
        WHERE endpoint_id = $1
          AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM webhook_deliveries WHERE id = $2::uuid))
        ORDER BY created_at DESC, id DESC LIMIT $3`,
      [endpointId, before, limit],
    );
  }

  /** The latest attempts of these deliveries (at most `perDelivery` each), newest first. */
  async attemptsOf(db: Db, deliveryIds: string[], perDelivery: number): Promise<WebhookAttemptRow[]> {
    if (deliveryIds.length === 0) return [];
    return rows<WebhookAttemptRow>(
      db,
      `SELECT a.delivery_id, a.attempted_at, a.status_code, a.error, a.duration_ms, a.response_excerpt
         FROM unnest($1::uuid[]) AS x(id)
         CROSS JOIN LATERAL (
           SELECT * FROM webhook_attempts w WHERE w.delivery_id = x.id ORDER BY w.id DESC LIMIT $2) a
        ORDER BY a.id DESC`,
      [deliveryIds, perDelivery],
    );
  }

  /**
   * Sends a delivery again, with the same webhook-id (receivers deduplicate on it): pending now,
   * with a fresh retry window. One whose POST is under way is left to that attempt (never two at
   * once). False when the endpoint has no such delivery.
   */
  async replay(db: Db, endpointId: string, deliveryId: string): Promise<boolean> {
    const r = await rows<{ id: string }>(
      db,
      `UPDATE webhook_deliveries SET status = 'pending', window_start = now(),
              next_attempt_at = CASE WHEN claimed_until > now() THEN next_attempt_at ELSE now() END
        WHERE id = $1 AND endpoint_id = $2 RETURNING id`,
      [deliveryId, endpointId],
    );
    return r.length > 0;
  }

  /** Deletes delivered and failed deliveries (with their attempts) created before `days` ago; returns how many. */
  async prune(db: Db, days: number, limit: number): Promise<number> {
    const r = await rows<{ id: string }>(
      db,
      `DELETE FROM webhook_deliveries WHERE id IN (
         SELECT id FROM webhook_deliveries
          WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1) LIMIT $2)
       RETURNING id`,
      [days, limit],
    );
    return r.length;
  }
}
