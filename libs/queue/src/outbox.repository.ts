import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { DomainEvent } from './jobs.js';

export interface PendingEvent {
  id: string;
  event: DomainEvent;
}

@Injectable()
export class OutboxRepository {
  /** Locks a page of undispatched events; other relays skip them. */
  async lockPending(em: EntityManager, limit: number): Promise<PendingEvent[]> {
    const rows: { id: string; type: DomainEvent['type']; payload: DomainEvent['payload'] }[] = await em.query(
      `SELECT id, type, payload FROM outbox WHERE dispatched_at IS NULL
       ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit],
    );
    return rows.map((r) => ({ id: r.id, event: { type: r.type, payload: r.payload } as DomainEvent }));
  }

  async markDispatched(em: EntityManager, ids: string[]): Promise<void> {
    await em.query(`UPDATE outbox SET dispatched_at = now() WHERE id = ANY($1::uuid[])`, [ids]);
  }

  async isHandled(em: EntityManager, id: string): Promise<boolean> {
    const rows: { handled_at: Date | null }[] = await em.query(`SELECT handled_at FROM outbox WHERE id = $1`, [id]);
    return rows.length > 0 && rows[0].handled_at !== null;
  }

  async markHandled(em: EntityManager, id: string): Promise<void> {
    await em.query(`UPDATE outbox SET handled_at = now() WHERE id = $1`, [id]);
  }
}
