import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';

/** The channel of the RevocationNotices migration's triggers. */
export const REVOCATION_CHANNEL = 'mailroom_revocations';

/**
 * SQL for the revocation notices channel: a listening connection of its own (LISTEN needs a
 * session; it does not work through a transaction-pooling proxy) and a notice sent as the
 * triggers send theirs.
 */
@Injectable()
export class RevocationNoticesRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** A new, unconnected client to the application's database, for listening. */
  listenerClient(): pg.Client {
    const master = (this.ds.driver as PostgresDriver).master as pg.Pool & { options: pg.PoolConfig };
    // The pool's own options (size, idle time) mean nothing to a single client and are ignored.
    return new pg.Client(master.options);
  }

  async listen(client: pg.Client): Promise<void> {
    await client.query(`LISTEN ${REVOCATION_CHANNEL}`);
  }

  /** Sends a notice on the channel from a pooled session (not the listener's). */
  async notify(payload: string): Promise<void> {
    await this.ds.query(`SELECT pg_notify($1, $2)`, [REVOCATION_CHANNEL, payload]);
  }
}
