import { BadRequestException, type HttpException, NotFoundException } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { StaffPrincipal } from '#staff/staff-sessions.service.js';

export type FormErrors = Record<string, string>;

/**
 * Checks console form input with the admin API's own DTO (the same rules and messages as the
 * JSON routes): the first message per field, keyed by property.
 */
export async function dtoErrors<T extends object>(
  dto: new () => T,
  plain: Record<string, unknown>,
): Promise<FormErrors> {
  const instance = plainToInstance(dto, plain);
  const found = await validate(instance, {
    whitelist: true,
    forbidUnknownValues: true,
    validationError: { target: false, value: false },
  });
  const errors: FormErrors = {};
  for (const e of found) {
    const first = Object.values(e.constraints ?? {})[0];
    if (first) errors[e.property] = first;
  }
  return errors;
}

/** An HTTP exception's message as one line (a validation list joined with `; `). */
export function exceptionMessage(err: HttpException): string {
  const body = err.getResponse();
  const m = typeof body === 'string' ? body : (body as { message?: unknown }).message;
  return Array.isArray(m) ? m.join('; ') : typeof m === 'string' ? m : err.message;
}

/** A service's 400 as one line for the page (its messages are the API's). */
export function badRequestMessage(err: unknown): string | null {
  return err instanceof BadRequestException ? exceptionMessage(err) : null;
}

/** Every value of a form field that may repeat (checkboxes), as strings. */
export function fields(body: unknown, name: string): string[] {
  if (!body || typeof body !== 'object') return [];
  const v = (body as Record<string, unknown>)[name];
  if (typeof v === 'string') return [v];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** A query parameter as one string ('' when absent or repeated). */
export function queryString(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

export function staffOf(req: FastifyRequest): StaffPrincipal {
  // StaffGuard guarantees it on every console route.
  return req.staff as StaffPrincipal;
}

export async function sendPage(reply: FastifyReply, status: number, html: string): Promise<void> {
  await reply.status(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
}

/** A notice chosen by a key from the query string (never the text itself: no reflected content). */
export function notice(table: Record<string, string>, key: unknown): string | undefined {
  return typeof key === 'string' && Object.hasOwn(table, key) ? table[key] : undefined;
}

/** A newsletter slug from the path; anything that cannot be one is a 404, before any lookup. */
export function newsletterSlug(raw: string): string {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(raw)) throw new NotFoundException('There is no such newsletter.');
  return raw;
}
