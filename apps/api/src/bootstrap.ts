import cookie from '@fastify/cookie';
import multipart from '@fastify/multipart';
import { ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import type { AppConfig } from '../../../libs/config/src/config.js';
import { ApiModule } from './api.module.js';
import { mountQueueBoard } from './console/queue-board.js';

export const BODY_LIMIT = 100 * 1024;

/** Builds the HTTP app (not yet listening): public pages and endpoints, admin API, docs, health. */
export async function createApi(config: AppConfig): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({ bodyLimit: BODY_LIMIT, trustProxy: config.trustProxy });
  const app = await NestFactory.create<NestFastifyApplication>(ApiModule.forRoot(config), adapter, {
    bufferLogs: true,
  });
  app.useLogger(app.get(Logger));
  // The staff console's session cookie (and its sign-in form's CSRF cookie): read on /admin only.
  await app.register(cookie);
  // multipart/form-data (RFC 8058 one-click may use it): fields only, no files.
  await app.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { fileSize: 0, files: 0, fields: 100, fieldSize: BODY_LIMIT },
  });
  // CSV imports are streamed straight to the importer: no size limit, never buffered whole.
  app
    .getHttpAdapter()
    .getInstance()
    .addContentTypeParser(
      ['text/csv', 'application/csv'],
      (_req: unknown, payload: unknown, done: (err: Error | null, body?: unknown) => void) => done(null, payload),
    );
  app.useGlobalPipes(
    new ValidationPipe({
      transform: true,
      whitelist: true,
      forbidUnknownValues: true,
      stopAtFirstError: false,
      validationError: { target: false, value: false },
    }),
  );
  const doc = new DocumentBuilder()
    .setTitle('Mailroom')
    .setDescription(
      'Double opt-in subscriptions, lead magnets and weekly digests. Admin routes need Authorization: Bearer <API key>.',
    )
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  SwaggerModule.setup('docs', app, SwaggerModule.createDocument(app, doc));
  await mountQueueBoard(app, config);
  return app;
}
