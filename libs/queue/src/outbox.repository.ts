import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';
import type { DomainEvent } from './jobs.js';

export interface PendingEvent {
  id: string;
  event: DomainEvent;
}

/**
 * The outbox. Events are added only through the `mailroom_outbox_add` function (migration
 * OutboxAdd1765100000000), which the subscribe functions call too: one way in, from TypeScript
 * and from PL/pgSQL alike.
 */
@Injectable()
export class OutboxRepository {
  /** Writes an event in the caller's transaction; returns its id (the job id it will get). */
  async add(em: EntityManager, event: DomainEvent): Promise<string> {
    const id = randomUUID();
    await em.query(`SELECT mailroom_outbox_add($1::uuid, $2, $3::jsonb)`, [
      id,
      event.type,
      JSON.stringify(event.payload),
    ]);
    return id;
  }

  /** Locks a page of undispatched events; other relays skip them. */
  async lockPending(em: EntityManager, limit: number): Promise<PendingEvent[]> {
    const found: { id: string; type: DomainEvent['type']; payload: DomainEvent['payload'] }[] = await em.query(
      `SELECT id, type, payload FROM outbox WHERE dispatched_at IS NULL
       ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit],
    );
    return found.map((r) => ({ id: r.id, event: { type: r.type, payload: r.payload } as DomainEvent }));
  }

  async markDispatched(em: EntityManager, ids: string[]): Promise<void> {
    await em.query(`UPDATE outbox SET dispatched_at = now() WHERE id = ANY($1::uuid[])`, [ids]);
  }

  async isHandled(em: EntityManager, id: string): Promise<boolean> {
    const found: { handled_at: Date | null }[] = await em.query(`SELECT handled_at FROM outbox WHERE id = $1`, [id]);
    return found.length > 0 && found[0].handled_at !== null;
  }

  async markHandled(em: EntityManager, id: string): Promise<void> {
    await em.query(`UPDATE outbox SET handled_at = now() WHERE id = $1`, [id]);
  }

  /**
   * Events dispatched more than `afterMs` ago and never handled go back to the relay. A digest
   * planned for later is waiting by design, not lost. Returns how many.
   */
  async redispatchUnhandled(db: EntityManager | DataSource, afterMs: number): Promise<number> {
    const found = await rows(
      db,
      `UPDATE outbox SET dispatched_at = NULL
       WHERE handled_at IS NULL AND dispatched_at < now() - make_interval(secs => $1::float8 / 1000)
         AND NOT (type = 'digest.requested' AND (payload->>'sendAt')::timestamptz > now())
       RETURNING id`,
      [afterMs],
    );
    return found.length;
  }

  /** Drops the undispatched events that name this subscriber (erasure). */
  async dropPendingForSubscriber(em: EntityManager, subscriberId: string): Promise<void> {
    await em.query(`DELETE FROM outbox WHERE dispatched_at IS NULL AND payload->>'subscriberId' = $1`, [subscriberId]);
  }
}
