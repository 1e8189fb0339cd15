import cookie from '@fastify/cookie';
import multipart from '@fastify/multipart';
import { ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import type { AppConfig } from '#config/config.js';
import { ApiModule } from './api.module.js';
import { mountClickRoute } from './clicks/click-route.js';
import { registerCsvParser } from './common/body-types.js';
import { PlainInputPipe } from './common/plain-input.js';
import { mountQueueBoard } from './console/queue-board.js';

export const BODY_LIMIT = 100 * 1024;

/**
 * TRUST_PROXY for Fastify: its client IP is then the first untrusted address from the right of
 * X-Forwarded-For. A hop count trusts that many hops next to the socket (Fastify's own rule for a number).
 */
function trustedProxies(trust: AppConfig['trustProxy']): false | string[] | ((addr: string, hop: number) => boolean) {
  return typeof trust === 'number' ? (_addr, hop) => hop < trust : trust;
}

/** Builds the HTTP app (not yet listening): public pages and endpoints, admin API, docs, health. */
export async function createApi(config: AppConfig): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({ bodyLimit: BODY_LIMIT, trustProxy: trustedProxies(config.trustProxy) });
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
  registerCsvParser(app.getHttpAdapter().getInstance());
  app.useGlobalPipes(
    new PlainInputPipe(),
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
    // Markdown: in a code span the docs page shows `<API key>` instead of reading it as a tag.
    .setDescription(
      'Double opt-in subscriptions, lead magnets and weekly digests. Admin routes need the header `Authorization: Bearer <API key>`.',
    )
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  SwaggerModule.setup('docs', app, SwaggerModule.createDocument(app, doc));
  await mountQueueBoard(app, config);
  mountClickRoute(app);
  return app;
}
