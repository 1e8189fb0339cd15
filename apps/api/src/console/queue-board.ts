import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter as BoardAdapter } from '@bull-board/fastify';
import { getQueueToken } from '@nestjs/bullmq';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '#config/config.js';
import { QUEUES } from '#queue/jobs.js';
import { StaffSessionsService } from '#staff/staff-sessions.service.js';
import { wantsJson } from '../common/request-context.js';
import { loginUrl, requestSite, SESSION_COOKIE } from './console-http.js';
import { ConsolePagesService } from './console-pages.service.js';
import { addConsoleSecurityHeaders } from './console-security.js';

export const QUEUE_BOARD_PATH = '/admin/queues';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A fixed "back to the console" link on the board's page: bull-board's own `miscLinks` sit in a
 * menu behind an icon. Inline styles only (the board's CSP allows them; no script).
 */
export const CONSOLE_LINK =
  '<a href="/admin" id="mailroom-console-link" style="position:fixed;right:16px;bottom:16px;z-index:2147483647;' +
  'padding:10px 16px;border-radius:8px;background:#12324a;color:#fff;font:600 15px/1.2 -apple-system,' +
  'BlinkMacSystemFont,&quot;Segoe UI&quot;,Roboto,Arial,sans-serif;text-decoration:none;' +
  'box-shadow:0 2px 8px rgba(0,0,0,.25)">← Back to the Mailroom console</a>';

/** Puts the console link right after the board page's <body> tag (HTML pages only). */
export function withConsoleLink(html: string): string {
  return html.replace(/<body\b[^>]*>/i, (tag) => `${tag}${CONSOLE_LINK}`);
}

function deny(req: FastifyRequest, reply: FastifyReply, status: 401 | 403, message: string): FastifyReply {
  return reply
    .status(status)
    .type('application/json; charset=utf-8')
    .send({ statusCode: status, error: status === 401 ? 'Unauthorized' : 'Forbidden', message });
}

/**
 * The console's own Fastify pieces (bootstrap calls this once): the security headers of every
 * /admin response, the `/admin/` redirect, and bull-board at /admin/queues.
 *
 * The board sits behind the console sign-in: no session → the sign-in page (or 401 for the
 * board's own API calls); marketers may look, only admins may retry, clean or remove jobs.
 * Shows the mail and digest queues, on Redis and on BullMQ's PostgreSQL backend alike.
 */
export async function mountQueueBoard(app: NestFastifyApplication, config: AppConfig): Promise<void> {
  const sessions = app.get(StaffSessionsService);
  const pages = app.get(ConsolePagesService);
  // First: the board's scope below must inherit the hook.
  addConsoleSecurityHeaders(app.getHttpAdapter().getInstance(), {
    pagesCsp: () => pages.contentSecurityPolicy,
    boardPath: QUEUE_BOARD_PATH,
  });
  const board = new BoardAdapter();
  board.setBasePath(QUEUE_BOARD_PATH);
  createBullBoard({
    queues: QUEUES.map((name) => new BullMQAdapter(app.get<Queue>(getQueueToken(name)))),
    serverAdapter: board,
    options: {
      uiConfig: {
        boardTitle: 'Mailroom queues',
        miscLinks: [{ text: 'Back to the console', url: '/admin' }],
        hideDocsLink: true,
      },
    },
  });
  // `/admin/` (a typed or bookmarked URL) is the console home too.
  app
    .getHttpAdapter()
    .getInstance()
    .get('/admin/', (_req: FastifyRequest, reply: FastifyReply) => reply.redirect('/admin', 301));
  await app.register(async (scope: FastifyInstance) => {
    scope.addHook('onRequest', async (req, reply) => {
      const staff = await sessions.resolve(req.cookies[SESSION_COOKIE]);
      if (!staff) {
        const api = req.url.startsWith(`${QUEUE_BOARD_PATH}/api/`);
        if (api || wantsJson(req)) return deny(req, reply, 401, 'Sign in to the console first');
        return reply.header('cache-control', 'no-store').redirect(loginUrl(req.url), 302);
      }
      req.staff = staff;
      if (!SAFE_METHODS.has(req.method)) {
        if (staff.role !== 'admin') return deny(req, reply, 403, 'Only admins may change jobs and queues');
        if (requestSite(req, config) !== 'same-origin') return deny(req, reply, 403, 'Cross-site requests are refused');
      }
      return undefined;
    });
    scope.addHook('onSend', async (_req, reply, payload) => {
      const type = String(reply.getHeader('content-type') ?? '');
      return type.startsWith('text/html') && typeof payload === 'string' ? withConsoleLink(payload) : payload;
    });
    // The board's plugin (views, static files, its JSON API) stays inside this scope and its hook.
    await scope.register(board.registerPlugin(), { prefix: QUEUE_BOARD_PATH });
  });
}
