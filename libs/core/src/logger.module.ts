import { type DynamicModule, Module } from '@nestjs/common';
import { LoggerModule as PinoLoggerModule } from 'nestjs-pino';
import type { AppConfig } from '../../config/src/config.js';

/**
 * A request URL as logged. Paths and query strings carry tokens (confirm, unsubscribe and guide
 * links, the SES webhook's `?token=`): keep only the route's first segment and drop the query.
 */
export function logUrl(url: string): string {
  return url.replace(/^(\/(?:confirm|unsubscribe|guides\/[^/]+))\/[^?]+/, '$1/…').replace(/\?.*$/, '?…');
}

/** Structured JSON logs (pino); request logs carry no bodies, cookies or tokens. */
@Module({})
export class LoggerModule {
  static forRoot(config: AppConfig, name: string): DynamicModule {
    return {
      module: LoggerModule,
      imports: [
        PinoLoggerModule.forRoot({
          pinoHttp: {
            name,
            level: config.logLevel,
            redact: ['req.headers.authorization', 'req.headers.cookie'],
            // Scrapes and probes every few seconds would drown the log.
            autoLogging: { ignore: (req: { url?: string }) => /^\/(metrics|health)(\?|$)/.test(req.url ?? '') },
            serializers: {
              req: (req: { method: string; url: string; id: unknown }) => ({
                id: req.id,
                method: req.method,
                url: logUrl(req.url),
              }),
            },
          },
        }),
      ],
    };
  }
}
