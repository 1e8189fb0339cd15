import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

/**
 * A route parameter or query value as the client sent it (a string, an array, or undefined). As a
 * custom decorator it skips the global input pipes, whose 400 for a NUL or a lone surrogate would
 * tell a public page's visitor more than its plain 404 does; the archive service checks the value.
 */
export const RawParam = createParamDecorator(
  (name: string, ctx: ExecutionContext): unknown =>
    (ctx.switchToHttp().getRequest<FastifyRequest>().params as Record<string, unknown> | undefined)?.[name],
);

export const RawQuery = createParamDecorator(
  (name: string, ctx: ExecutionContext): unknown =>
    (ctx.switchToHttp().getRequest<FastifyRequest>().query as Record<string, unknown> | undefined)?.[name],
);
