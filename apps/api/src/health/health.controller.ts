import { InjectQueue } from '@nestjs/bullmq';
import { Controller, Get } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, HealthIndicatorService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import type { Queue } from 'bullmq';
import { MAIL_QUEUE } from '#queue/jobs.js';

/** 200 when PostgreSQL and the queue answer, 503 otherwise. */
@ApiTags('ops')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly indicators: HealthIndicatorService,
    @InjectQueue(MAIL_QUEUE) private readonly queue: Queue,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([
      () => this.db.pingCheck('database').withTimeout(2000),
      () =>
        this.indicators
          .check('queue')
          .attempt(async () => {
            const counts = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
            return { ...counts };
          })
          .withTimeout(2000),
    ]);
  }
}
