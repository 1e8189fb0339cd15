import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Injectable,
  SetMetadata,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import type { StaffRole } from '#db/entities/index.js';
import { constantTimeEqual, StaffSessionsService } from '#staff/staff-sessions.service.js';
import { wantsJson } from '../common/request-context.js';
import { ConsoleRedirect, CsrfRejected, field, loginUrl, SESSION_COOKIE } from './console-http.js';

const ROLES_KEY = 'mailroom:staff-roles';

/** Limits a console route (or controller) to these roles; without it any signed-in staff may enter. */
export const Roles = (...roles: StaffRole[]) => SetMetadata(ROLES_KEY, roles);

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Console routes: a live session cookie, else a redirect to the sign-in page (browsers) or 401
 * JSON (`Accept: application/json`). State-changing requests must carry the session's CSRF token
 * (form field `_csrf` or header `X-CSRF-Token`), else 403. `@Roles('admin')` narrows a route.
 */
@Injectable()
export class StaffGuard implements CanActivate {
  constructor(
    private readonly sessions: StaffSessionsService,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<FastifyRequest>();
    const staff = await this.sessions.resolve(req.cookies?.[SESSION_COOKIE]);
    if (!staff) {
      if (wantsJson(req)) throw new UnauthorizedException('Sign in to the console first');
      const safe = SAFE_METHODS.has(req.method);
      throw new ConsoleRedirect(safe ? loginUrl(req.url) : loginUrl(), safe ? 302 : 303);
    }
    req.staff = staff;
    if (!SAFE_METHODS.has(req.method)) {
      const header = req.headers['x-csrf-token'];
      const given = field(req.body, '_csrf') || (typeof header === 'string' ? header : '');
      if (!given || !constantTimeEqual(given, staff.csrfToken)) throw new CsrfRejected();
    }
    const roles = this.reflector.getAllAndOverride<StaffRole[] | undefined>(ROLES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (roles && !roles.includes(staff.role)) {
      throw new ForbiddenException(`Only ${roles.join(' or ')} users may open this page. Ask an admin if you need it.`);
    }
    return true;
  }
}
