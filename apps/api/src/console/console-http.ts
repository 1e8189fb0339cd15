import { HttpException, HttpStatus } from '@nestjs/common';
import type { CookieSerializeOptions } from '@fastify/cookie';
import type { FastifyRequest } from 'fastify';
import { createHmac, randomBytes } from 'node:crypto';
import type { AppConfig } from '#config/config.js';
import { constantTimeEqual, type StaffPrincipal } from '#staff/staff-sessions.service.js';

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

/** The sign-in CSRF cookie holds a random nonce; the form carries its HMAC (see loginCsrfToken). */
export const LOGIN_NONCE_RE = /^[A-Za-z0-9_-]{43}$/;

export function newLoginCsrfNonce(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The sign-in form's token for a cookie nonce: an HMAC under APP_SECRET, so a cookie/field pair
 * made up elsewhere (a cookie set from a sibling subdomain) does not pass.
 */
export function loginCsrfToken(appSecret: string, nonce: string): string {
  return createHmac('sha256', appSecret).update(`mailroom console sign-in csrf\0${nonce}`).digest('base64url');
}

export function loginCsrfValid(appSecret: string, nonce: string | undefined, token: string): boolean {
  if (!nonce || !LOGIN_NONCE_RE.test(nonce) || !token) return false;
  return constantTimeEqual(loginCsrfToken(appSecret, nonce), token);
}

/**
 * Where a browser request comes from: Sec-Fetch-Site when the browser sends it, else Origin
 * (this request's host or PUBLIC_URL's origin). `unknown` when neither is there (not a browser).
 * A sibling subdomain is `same-site` to the browser, hence `other` here.
 */
export function requestSite(req: FastifyRequest, config: AppConfig): 'same-origin' | 'other' | 'unknown' {
  const site = req.headers['sec-fetch-site'];
  if (site === 'same-origin') return 'same-origin';
  if (typeof site === 'string' && site !== 'none') return 'other';
  const origin = req.headers.origin;
  if (typeof origin !== 'string') return 'unknown';
  try {
    const o = new URL(origin);
    return o.host === req.headers.host || o.origin === new URL(config.publicUrl).origin ? 'same-origin' : 'other';
  } catch {
    return 'other';
  }
}

export function loginCsrfCookieOptions(config: AppConfig): CookieSerializeOptions {
  return { path: '/admin/login', httpOnly: true, sameSite: 'strict', secure: config.console.secureCookie };
}

/** A base that no `next` can name: anything resolving to another origin is refused. */
const NEXT_BASE = 'http://next.invalid';

/**
 * Only a path inside the console may follow sign-in: never another origin, never a scheme. The
 * value is resolved as a browser would (dot segments, `%2e%2e`) before its prefix is checked, and
 * the resolved form is what is returned. Anything a parser might read differently (`//`, `\`,
 * control characters, encoded slashes) is refused outright.
 */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.length > 1000) return CONSOLE_HOME;
  if (!next.startsWith('/') || next.startsWith('//')) return CONSOLE_HOME;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what must not pass
  if (/[\\\u0000-\u001f\u007f]/.test(next) || /%(?:2f|5c)/i.test(next)) return CONSOLE_HOME;
  let url: URL;
  try {
    url = new URL(next, NEXT_BASE);
  } catch {
    return CONSOLE_HOME;
  }
  if (url.origin !== NEXT_BASE) return CONSOLE_HOME;
  const path = url.pathname;
  if (!/^\/admin(?:\/|$)/.test(path) || path.includes('//')) return CONSOLE_HOME;
  if (/^\/admin\/log(?:in|out)(?:\/|$)/.test(path)) return CONSOLE_HOME;
  return `${path}${url.search}${url.hash}`;
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
