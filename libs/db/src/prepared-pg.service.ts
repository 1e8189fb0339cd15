import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';

/** How long an idle connection of a side pool stays open. */
export const IDLE_TIMEOUT_MS = 5 * 60_000;

/**
 * A pool of its own beside TypeORM's, configured like it (same server, credentials and size)
 * with `overrides` on top, for a hot path's prepared statements. Idle connections are kept for
 * minutes, not pg's 10 s: after a quiet spell, a burst would otherwise wait for new server
 * processes to start and prepare their statements again.
 */
export function sidePool(ds: DataSource, overrides: pg.PoolConfig, logger: Logger, what: string): pg.Pool {
  const master = (ds.driver as PostgresDriver).master as pg.Pool & { options: pg.PoolConfig };
  const pool = new pg.Pool({ ...master.options, idleTimeoutMillis: IDLE_TIMEOUT_MS, ...overrides });
  pool.on('error', (err) => logger.warn(`idle ${what} connection failed: ${err.message}`));
  return pool;
}

/** A named prepared statement (parsed and planned once per connection). */
export interface PreparedStatement {
  name: string;
  text: string;
  values: unknown[];
}

/**
 * For the sign-up path: a small pool of pg connections of its own, configured like TypeORM's
 * (same server, credentials and size), running named prepared statements with no QueryRunner
 * around them. A sign-up is one statement (see the SubscribeFunction migration): one round trip,
 * and no BEGIN or COMMIT.
 */
@Injectable()
export class PreparedPg implements OnApplicationShutdown {
  private readonly logger = new Logger(PreparedPg.name);
  private pool: pg.Pool | null = null;

  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  private getPool(): pg.Pool {
    if (!this.pool) {
      this.pool = sidePool(this.ds, {}, this.logger, 'sign-up');
    }
    return this.pool;
  }

  /** Runs one statement (a transaction of its own); resolves with its rows. */
  async statement(s: PreparedStatement): Promise<unknown[]> {
    return (await this.getPool().query({ name: s.name, text: s.text, values: s.values })).rows;
  }

  /**
   * Last of all, after the HTTP server has stopped taking requests: closed earlier (on module
   * destroy), a sign-up still being served would open a new pool that nothing closes.
   */
  async onApplicationShutdown(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }
}
