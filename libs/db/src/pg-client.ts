import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';

/** How long an idle pipelined connection stays open. */
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

/** One statement of a pipelined transaction: a named prepared statement (parsed and planned once per connection). */
export interface PreparedStatement {
  name: string;
  text: string;
  values: unknown[];
}

/**
 * For the few hottest write paths: a small pool of pipelined pg connections, configured like
 * TypeORM's own pool (same server, credentials and size). `transaction()` writes BEGIN, every
 * statement and COMMIT in one go and waits once: one network round trip instead of one per
 * statement, and no QueryRunner around it. The statements run in order, each with its own snapshot
 * (READ COMMITTED), so a statement can read what an earlier one wrote or locked. Because they
 * are all sent before any answer is read, no statement may depend on an earlier one's result
 * in JavaScript: pass values between them in SQL.
 */
@Injectable()
export class PipelinedPg implements OnApplicationShutdown {
  private readonly logger = new Logger(PipelinedPg.name);
  private pool: pg.Pool | null = null;

  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  private getPool(): pg.Pool {
    if (!this.pool) {
      this.pool = sidePool(this.ds, { pipeline: true }, this.logger, 'pipelined');
    }
    return this.pool;
  }

  /** Runs the statements in one transaction; resolves with each statement's rows, or rejects with the first error (all rolled back). */
  async transaction(statements: PreparedStatement[]): Promise<unknown[][]> {
    const client = await this.getPool().connect();
    let broken: Error | undefined;
    try {
      // In pipeline mode each query is written as it is queued: corked, they leave in one write
      // (one system call, one wake-up of the server) instead of one per statement.
      const socket = client.connection.stream;
      socket.cork();
      let sent: Promise<pg.QueryResult>[];
      try {
        sent = [
          client.query('BEGIN'),
          ...statements.map((s) => client.query({ name: s.name, text: s.text, values: s.values })),
          client.query('COMMIT'),
        ];
      } finally {
        socket.uncork();
      }
      const settled = await Promise.allSettled(sent);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        // A failed statement aborts the transaction: the statements after it fail too and COMMIT
        // rolls back. If the connection is not idle outside a transaction after that, drop it.
        if (client.getTransactionStatus() !== 'I') broken = failed.reason as Error;
        throw failed.reason;
      }
      return settled.slice(1, -1).map((r) => (r as PromiseFulfilledResult<pg.QueryResult>).value.rows);
    } finally {
      client.release(broken ?? false);
    }
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
