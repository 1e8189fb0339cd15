import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { sidePool } from './prepared-pg.service.js';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';

/**
 * The digest sender's ledger writes (claims and sent records, hundreds of statements a second):
 * named prepared statements on a small pool of their own, configured like TypeORM's (same server
 * and credentials), whose sessions
 * - plan each statement once (`plan_cache_mode = force_generic_plan`): PostgreSQL otherwise
 *   keeps re-planning these CTEs, which costs it more than running them;
 * - commit asynchronously (`synchronous_commit = off`): the commit is visible to every session at
 *   once, but the write-ahead log reaches the disk in the background (within 3 × wal_writer_delay,
 *   0.6 s by default) instead of on every statement. A crash of the worker loses nothing; a crash
 *   of the PostgreSQL server itself can forget that window's claims and sent records, and those
 *   messages are then sent again. Everything else in Mailroom keeps synchronous commits.
 */
@Injectable()
export class LedgerPg implements OnApplicationShutdown {
  private readonly logger = new Logger(LedgerPg.name);
  private pool: pg.Pool | null = null;

  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  private getPool(): pg.Pool {
    if (!this.pool) {
      const master = (this.ds.driver as PostgresDriver).master as pg.Pool & { options: pg.PoolConfig };
      const options = [master.options.options, '-c synchronous_commit=off -c plan_cache_mode=force_generic_plan']
        .filter(Boolean)
        .join(' ');
      this.pool = sidePool(this.ds, { max: 4, options }, this.logger, 'ledger');
    }
    return this.pool;
  }

  async query<T>(name: string, text: string, values: unknown[]): Promise<T[]> {
    return (await this.getPool().query<T & pg.QueryResultRow>({ name, text, values })).rows;
  }

  /** Last of all: the sender records its last sends in `beforeApplicationShutdown`. */
  async onApplicationShutdown(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }
}
