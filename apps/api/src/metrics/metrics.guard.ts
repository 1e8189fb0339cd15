import { type CanActivate, type ExecutionContext, Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { ApiKeyAuth } from '../admin/api-key.guard.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/**
 * GET /metrics: `Authorization: Bearer <METRICS_TOKEN>`, or any admin API key. A metrics-only
 * token is the one to give Prometheus: it opens nothing else.
 */
@Injectable()
export class MetricsGuard implements CanActivate {
  private readonly token: Buffer | null;

  constructor(
    private readonly keys: ApiKeyAuth,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.token = config.metrics.token ? sha256(config.metrics.token) : null;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    // Compared as digests: equal lengths, constant time. Wrong values count like wrong API keys.
    const isToken = (bearer: string) => this.token !== null && timingSafeEqual(sha256(bearer), this.token);
    if (await this.keys.check(http.getRequest<FastifyRequest>(), http.getResponse<FastifyReply>(), isToken))
      return true;
    throw new UnauthorizedException('Send Authorization: Bearer <METRICS_TOKEN or an admin API key>');
  }
}
