import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';
import type { WebhookEventType } from './webhook-events.js';

type Db = EntityManager | DataSource;

export interface WebhookEndpointRow {
  id: string;
  url: string;
  events: WebhookEventType[];
  secret_sealed: string;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
  /** Deliveries still being tried, and those given up on. */
  pending: number;
  failed: number;
}

const COLUMNS = `e.id, e.url, e.events, e.secret_sealed, e.enabled, e.created_at, e.updated_at,
  (SELECT count(*)::int FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') AS pending,
  (SELECT count(*)::int FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'failed') AS failed`;

/** Registered receivers of outgoing webhooks. */
@Injectable()
export class WebhookEndpointsRepository {
  async insert(db: Db, e: { id: string; url: string; events: WebhookEventType[]; sealed: string }): Promise<void> {
    await db.query(`INSERT INTO webhook_endpoints (id, url, events, secret_sealed) VALUES ($1, $2, $3::text[], $4)`, [
      e.id,
      e.url,
      e.events,
      e.sealed,
    ]);
  }

  async list(db: Db): Promise<WebhookEndpointRow[]> {
    return rows<WebhookEndpointRow>(db, `SELECT ${COLUMNS} FROM webhook_endpoints e ORDER BY e.created_at, e.id`);
  }

  async byId(db: Db, id: string): Promise<WebhookEndpointRow | null> {
    const r = await rows<WebhookEndpointRow>(db, `SELECT ${COLUMNS} FROM webhook_endpoints e WHERE e.id = $1`, [id]);
    return r[0] ?? null;
  }

  /** Changes the given fields; false when there is no such endpoint. */
  async update(
    db: Db,
    id: string,
    change: { url?: string; events?: WebhookEventType[]; enabled?: boolean; sealed?: string },
  ): Promise<boolean> {
    const r = await rows<{ id: string }>(
      db,
      `UPDATE webhook_endpoints SET
         url = coalesce($2, url),
         events = coalesce($3::text[], events),
         enabled = coalesce($4, enabled),
         secret_sealed = coalesce($5, secret_sealed),
         updated_at = now()
       WHERE id = $1 RETURNING id`,
      [id, change.url ?? null, change.events ?? null, change.enabled ?? null, change.sealed ?? null],
    );
    return r.length > 0;
  }

  /** Deletes the endpoint with its deliveries and their attempts; false when there is none. */
  async delete(db: Db, id: string): Promise<boolean> {
    const r = await rows<{ id: string }>(db, `DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id`, [id]);
    return r.length > 0;
  }
}
