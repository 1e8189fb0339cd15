import { type DynamicModule, Module } from '@nestjs/common';
import { LoggerModule as PinoLoggerModule } from 'nestjs-pino';
import type { AppConfig } from '../../config/src/config.js';

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
            serializers: {
              req: (req: { method: string; url: string; id: unknown }) => ({
                id: req.id,
                method: req.method,
                // Paths carry tokens: keep only the route's first segment.
                url: req.url.replace(/^(\/(?:confirm|unsubscribe|guides\/[^/]+))\/[^?]+/, '$1/…'),
              }),
            },
          },
        }),
      ],
    };
  }
}
