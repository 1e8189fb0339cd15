import { type DynamicModule, Module } from '@nestjs/common';
import { LoggerModule as PinoLoggerModule } from 'nestjs-pino';
import type { AppConfig } from '#config/config.js';

/**
 * A request URL as logged. Paths and query strings carry tokens (confirm, unsubscribe and guide
 * links, the SES webhook's `?token=`): keep only the route's first segment and drop the query.
 */
export function logUrl(url: string): string {
  return url.replace(/^(\/(?:confirm|unsubscribe|c|guides\/[^/]+))\/[^?]+/, '$1/…').replace(/\?.*$/, '?…');
}

/** Nest's start-up chatter (every module and every mapped route): left out of the dev console. */
const START_UP_CONTEXTS = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory']);

/** True for a log call from one of Nest's start-up contexts (its first argument names the context). */
export function isStartUpNoise(args: unknown[]): boolean {
  const first = args[0];
  return (
    typeof first === 'object' &&
    first !== null &&
    'context' in first &&
    START_UP_CONTEXTS.has(String((first as { context: unknown }).context))
  );
}

/**
 * Development: one human-readable line per event (pino-pretty, a dev dependency, loaded only here)
 * and no start-up chatter, so the dev summary is what the console shows.
 */
function developmentOptions(): Record<string, unknown> {
  return {
    transport: {
      target: 'pino-pretty',
      options: {
        singleLine: true,
        translateTime: 'HH:MM:ss',
        ignore: 'pid,hostname,context,req,res,responseTime',
        messageFormat: '{if context}{context}: {end}{msg}',
      },
    },
    hooks: {
      logMethod(this: unknown, args: unknown[], method: (...a: unknown[]) => void) {
        if (!isStartUpNoise(args)) method.apply(this, args);
      },
    },
  };
}

/**
 * Structured JSON logs (pino) in production and tests; readable lines in development. Request logs
 * carry no bodies, cookies or tokens.
 */
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
            // Scrapes and probes every few seconds would drown the log, and so would a digest's clicks
            // (tens of thousands within the hour; they are counted in link_clicks and /metrics).
            autoLogging: {
              ignore: (req: { url?: string }) => /^\/(?:(?:metrics|health)(?:\?|$)|c\/)/.test(req.url ?? ''),
            },
            serializers: {
              req: (req: { method: string; url: string; id: unknown }) => ({
                id: req.id,
                method: req.method,
                url: logUrl(req.url),
              }),
            },
            ...(config.env === 'development' ? developmentOptions() : {}),
          },
        }),
      ],
    };
  }
}
