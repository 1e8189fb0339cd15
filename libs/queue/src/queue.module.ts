import { BullModule, InjectQueue } from '@nestjs/bullmq';
import { type DynamicModule, Injectable, Logger, Module, type OnModuleInit } from '@nestjs/common';
import { Queue, Worker, createPostgresBackend, withBackend, type ConnectionOptions } from 'bullmq';
import type { AppConfig } from '#config/config.js';
import { DIGEST_QUEUE, MAIL_QUEUE } from './jobs.js';
import { redisConnectionOptions } from './redis-connection.js';

export { redisOptions } from './redis-connection.js';

export interface QueueConnection {
  /** Either Redis options (one server, Sentinel or Cluster) or the PostgreSQL backend's options. */
  connection: ConnectionOptions | { connectionString: string; max: number };
  prefix: string;
}

export function queueConnection(config: AppConfig): QueueConnection {
  if (config.queue.backend === 'redis' && config.queue.redis) {
    return { connection: redisConnectionOptions(config.queue.redis), prefix: config.queue.prefix };
  }
  return { connection: { connectionString: config.db.url, max: 10 }, prefix: config.queue.prefix };
}

const pg = withBackend(createPostgresBackend);

/**
 * Points @nestjs/bullmq at the configured backend. BullModule's classes are process-wide, so
 * this runs before a module graph is built (and again before another one with another backend).
 */
export function selectQueueBackend(config: AppConfig): void {
  if (config.queue.backend === 'postgres') {
    BullModule.queueClass = pg.Queue;
    BullModule.workerClass = pg.Worker;
  } else {
    BullModule.queueClass = Queue;
    BullModule.workerClass = Worker;
  }
}

/**
 * Sets how long a job's lock lasts before another worker may take it over (and how often stalled
 * jobs are looked for). BullMQ sizes its lock renewal when a worker is built, so changing
 * `opts.lockDuration` alone would leave locks renewed on the old schedule: a lock shorter than
 * that would lapse under a running job, which would then run twice. Call before `run()`.
 */
export function configureJobLock(worker: Worker, lockMs: number): void {
  worker.opts.lockDuration = lockMs;
  worker.opts.lockRenewTime = lockMs / 2;
  worker.opts.stalledInterval = lockMs;
  // createLockManager is protected API, meant for subclasses; the worker has not started yet.
  (worker as unknown as { createLockManager(): void }).createLockManager();
}

/** Logs queue connection errors once per interval instead of letting them flood the console. */
export function throttledErrorLogger(logger: Logger, what: string, everyMs = 30_000): (err: Error) => void {
  let last = 0;
  let suppressed = 0;
  return (err: Error) => {
    const now = Date.now();
    if (now - last < everyMs) {
      suppressed += 1;
      return;
    }
    logger.warn(`${what}: ${err.message}${suppressed ? ` (${suppressed} similar errors not shown)` : ''}`);
    last = now;
    suppressed = 0;
  };
}

@Injectable()
class QueueErrorLogger implements OnModuleInit {
  constructor(
    @InjectQueue(MAIL_QUEUE) private readonly mail: Queue,
    @InjectQueue(DIGEST_QUEUE) private readonly digest: Queue,
  ) {}

  onModuleInit(): void {
    this.mail.on('error', throttledErrorLogger(new Logger('Queue'), `Queue "${MAIL_QUEUE}" is unreachable`));
    this.digest.on('error', throttledErrorLogger(new Logger('Queue'), `Queue "${DIGEST_QUEUE}" is unreachable`));
  }
}

@Module({})
export class QueueModule {
  static forRoot(config: AppConfig): DynamicModule {
    selectQueueBackend(config);
    const { connection, prefix } = queueConnection(config);
    return {
      module: QueueModule,
      global: true,
      imports: [
        BullModule.forRoot({
          // The PostgreSQL backend takes its own connection shape; BullModule types only Redis.
          connection: connection as ConnectionOptions,
          prefix,
          defaultJobOptions: {
            attempts: config.queue.attempts,
            backoff: { type: 'exponential', delay: config.queue.backoffMs },
            removeOnComplete: { count: 1000 },
            removeOnFail: { count: 10000 },
          },
        }),
        BullModule.registerQueue({ name: MAIL_QUEUE }, { name: DIGEST_QUEUE }),
      ],
      providers: [QueueErrorLogger],
      exports: [BullModule],
    };
  }
}
