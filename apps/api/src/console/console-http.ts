import { HttpException, HttpStatus } from '@nestjs/common';
import type { CookieSerializeOptions } from '@fastify/cookie';
import type { FastifyRequest } from 'fastify';
import type { AppConfig } from '../../../../libs/config/src/config.js';
import type { StaffPrincipal } from '../../../../libs/staff/src/staff-sessions.service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by StaffGuard on console routes: who is signed in. */
    staff?: StaffPrincipal;
  }
}

export const SESSION_COOKIE = 'mailroom_session';
/** The sign-in form's own CSRF token (double submit): there is no session yet to hold one. */
export const LOGIN_CSRF_COOKIE = 'mailroom_login_csrf';
export const CONSOLE_HOME = '/admin';

/**
 * The session cookie: HttpOnly, SameSite=Strict, Path=/admin, and Secure exactly when PUBLIC_URL
 * is https (a browser drops a Secure cookie over plain http, so an http deployment could not sign in).
 */
export function sessionCookieOptions(config: AppConfig): CookieSerializeOptions {
  return {
    path: '/admin',
    httpOnly: true,
    sameSite: 'strict',
    secure: config.console.secureCookie,
    maxAge: config.console.sessionMaxMinutes * 60,
  };
}

export function loginCsrfCookieOptions(config: AppConfig): CookieSerializeOptions {
  return { path: '/admin/login', httpOnly: true, sameSite: 'strict', secure: config.console.secureCookie };
}

/** Only a path inside the console may follow sign-in: never another origin, never a scheme. */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.length > 1000) return CONSOLE_HOME;
  if (!/^\/admin(?:[/?#]|$)/.test(next)) return CONSOLE_HOME;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what must not pass
  if (/[\\\u0000-\u001f\u007f]/.test(next) || next.startsWith('/admin/login') || next.startsWith('/admin/logout'))
    return CONSOLE_HOME;
  return next;
}

export function loginUrl(next?: string): string {
  const target = next ? safeNext(next) : CONSOLE_HOME;
  return target === CONSOLE_HOME ? '/admin/login' : `/admin/login?next=${encodeURIComponent(target)}`;
}

/** Ends a console request with a redirect (the console's exception filter sends it). */
export class ConsoleRedirect extends HttpException {
  constructor(
    public readonly location: string,
    status: HttpStatus.FOUND | HttpStatus.SEE_OTHER = HttpStatus.FOUND,
  ) {
    super('Redirect', status);
  }
}

/** A state-changing request without the session's CSRF token. */
export class CsrfRejected extends HttpException {
  constructor() {
    super(
      'This form has expired or did not come from the console. Go back, reload the page and try again.',
      HttpStatus.FORBIDDEN,
    );
  }
}

export function requestContext(req: FastifyRequest): { ip: string | null; userAgent: string | null } {
  const ua = req.headers['user-agent'];
  return { ip: req.ip ?? null, userAgent: typeof ua === 'string' ? ua.slice(0, 500) : null };
}

/** A form field as a string ('' when absent or not a string). */
export function field(body: unknown, name: string): string {
  if (!body || typeof body !== 'object') return '';
  const v = (body as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : '';
}
