import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { MailRepository } from './mail.repository.js';
import { RouteRateLimiter } from './send-rate-limiter.service.js';

/**
 * The SMTP routes' own rates: a `RouteRateLimiter` per route that has a `rate` in SMTP_ROUTES.
 * A route without one (and SMTP_URL) is held by the global SEND_RATE_PER_SECOND alone.
 */
@Injectable()
export class RouteRateLimiters {
  private readonly limiters = new Map<string, RouteRateLimiter>();

  constructor(@InjectDataSource() ds: DataSource, @Inject(APP_CONFIG) config: AppConfig, repo: MailRepository) {
    for (const route of config.smtp.routes.values()) {
      if (route.rate !== undefined)
        this.limiters.set(route.name, new RouteRateLimiter(ds, config, route.name, route.rate, repo));
    }
  }

  /** The route's own limiter, or null when it has no rate of its own (or is no route: SMTP_URL). */
  of(route: string | null | undefined): RouteRateLimiter | null {
    return route === null || route === undefined ? null : (this.limiters.get(route) ?? null);
  }
}
