import { type CanActivate, type ExecutionContext, Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '../../../../libs/config/src/config.js';
import { ApiKeysService } from '../../../../libs/subscriptions/src/api-keys.service.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/**
 * GET /metrics: `Authorization: Bearer <METRICS_TOKEN>`, or any admin API key. A metrics-only
 * token is the one to give Prometheus: it opens nothing else.
 */
@Injectable()
export class MetricsGuard implements CanActivate {
  private readonly token: Buffer | null;

  constructor(
    private readonly keys: ApiKeysService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.token = config.metrics.token ? sha256(config.metrics.token) : null;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<FastifyRequest>();
    const m = /^Bearer\s+(\S{1,200})$/i.exec(req.headers.authorization ?? '');
    if (m) {
      // Compared as digests: equal lengths, constant time.
      if (this.token && timingSafeEqual(sha256(m[1]), this.token)) return true;
      if (await this.keys.verify(m[1])) return true;
    }
    throw new UnauthorizedException('Send Authorization: Bearer <METRICS_TOKEN or an admin API key>');
  }
}
