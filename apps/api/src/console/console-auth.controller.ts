import { Body, Controller, Get, Inject, Post, Query, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { StaffAuthService } from '#staff/staff-auth.service.js';
import { StaffSessionsService } from '#staff/staff-sessions.service.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { notice, sendPage } from './console-forms.js';
import {
  field,
  LOGIN_CSRF_COOKIE,
  LOGIN_NONCE_RE,
  loginCsrfCookieOptions,
  loginCsrfToken,
  loginCsrfValid,
  newLoginCsrfNonce,
  requestContext,
  requestSite,
  safeNext,
  SESSION_COOKIE,
  sessionCookieOptions,
} from './console-http.js';
import { ConsolePagesService } from './console-pages.service.js';
import { StaffGuard } from './staff.guard.js';

/** The one answer for an unknown address and a wrong password alike. */
export const BAD_CREDENTIALS = 'Email or password is incorrect';

const NOTICES: Record<string, string> = {
  'signed-out': 'You have signed out.',
  expired: 'Your session has ended. Please sign in again.',
};

/** Sign-in and sign-out for the staff console. */
@ApiExcludeController()
@Controller('admin')
@UseFilters(ConsoleExceptionFilter)
export class ConsoleAuthController {
  constructor(
    private readonly auth: StaffAuthService,
    private readonly sessions: StaffSessionsService,
    private readonly pages: ConsolePagesService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Get('login')
  async loginPage(
    @Query('next') next: unknown,
    @Query('notice') key: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    if (await this.sessions.resolve(req.cookies[SESSION_COOKIE])) {
      await reply.redirect(safeNext(next), 302);
      return;
    }
    await this.sendLogin(req, reply, 200, {
      next: safeNext(next),
      notice: notice(NOTICES, key),
    });
  }

  @Post('login')
  async login(@Body() body: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const next = safeNext(field(body, 'next'));
    const email = field(body, 'email').slice(0, 254);
    // The token must be this server's HMAC of the cookie's nonce, and a browser must say the form
    // came from this origin: a sibling subdomain can set cookies, but not forge Origin.
    const fromHere = requestSite(req, this.config) !== 'other';
    if (!fromHere || !loginCsrfValid(this.config.appSecret, req.cookies[LOGIN_CSRF_COOKIE], field(body, '_csrf'))) {
      await this.sendLogin(req, reply, 403, {
        next,
        email,
        error: 'Your sign-in form expired or did not come from this site. Please sign in again.',
      });
      return;
    }
    const result = await this.auth.signIn({ email, password: field(body, 'password') }, requestContext(req));
    if (!result.ok && result.reason === 'rate-limited') {
      const minutes = Math.ceil(result.retryAfterSeconds / 60);
      reply.header('retry-after', String(result.retryAfterSeconds));
      await this.sendLogin(req, reply, 429, {
        next,
        email,
        limited: true,
        error:
          `Too many failed sign-in attempts. Signing in is paused for this account or network for ` +
          `${minutes} minute${minutes === 1 ? '' : 's'}. Try again later, or ask an admin to set a new password.`,
      });
      return;
    }
    if (!result.ok) {
      await this.sendLogin(req, reply, 401, { next, email, error: BAD_CREDENTIALS });
      return;
    }
    reply.setCookie(SESSION_COOKIE, result.token, sessionCookieOptions(this.config));
    reply.clearCookie(LOGIN_CSRF_COOKIE, loginCsrfCookieOptions(this.config));
    await reply.redirect(next, 303);
  }

  @Post('logout')
  @UseGuards(StaffGuard)
  async logout(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    await this.sessions.end(req.cookies[SESSION_COOKIE]);
    const { maxAge: _maxAge, ...cookie } = sessionCookieOptions(this.config);
    reply.clearCookie(SESSION_COOKIE, cookie);
    await reply.redirect('/admin/login?notice=signed-out', 303);
  }

  /** The sign-in page: a fresh (or the current) nonce in the cookie, its HMAC in the form. */
  private async sendLogin(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    vars: { next: string; email?: string; error?: string; notice?: string; limited?: boolean },
  ): Promise<void> {
    const current = req.cookies[LOGIN_CSRF_COOKIE];
    const nonce = current && LOGIN_NONCE_RE.test(current) ? current : newLoginCsrfNonce();
    reply.setCookie(LOGIN_CSRF_COOKIE, nonce, loginCsrfCookieOptions(this.config));
    const token = loginCsrfToken(this.config.appSecret, nonce);
    await sendPage(
      reply,
      status,
      this.pages.render('login', { title: 'Sign in' }, { ...vars, csrf: token, showNext: vars.next !== '/admin' }),
    );
  }
}
