import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const CSV_TYPES = ['text/csv', 'application/csv'];

/** Route config key a CSV-import route sets; every other route refuses a CSV body. */
const CSV_ROUTE = 'acceptsCsv';

/** Marks the one kind of route that takes a streamed CSV body (the subscriber imports). */
export const AcceptsCsv = () => RouteConfig({ [CSV_ROUTE]: true });

class UnsupportedBody extends Error {
  readonly statusCode = 415;
  readonly code = 'FST_ERR_CTP_INVALID_MEDIA_TYPE';
}

/**
 * CSV bodies are streamed straight to the importer (no size limit, never buffered whole), but only on
 * the routes that declare them: anywhere else the raw socket stream would reach the validation pipe.
 */
export function registerCsvParser(fastify: FastifyInstance): void {
  fastify.addContentTypeParser(
    CSV_TYPES,
    (req: FastifyRequest, payload: unknown, done: (err: Error | null, body?: unknown) => void) => {
      const config: object = req.routeOptions.config;
      if (CSV_ROUTE in config && config[CSV_ROUTE] === true) done(null, payload);
      else done(new UnsupportedBody('CSV is accepted only by the subscriber import'));
    },
  );
}
