import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter as BoardAdapter } from '@bull-board/fastify';
import { getQueueToken } from '@nestjs/bullmq';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '../../../../libs/config/src/config.js';
import { QUEUES } from '../../../../libs/queue/src/jobs.js';
import { StaffSessionsService } from '../../../../libs/staff/src/staff-sessions.service.js';
import { wantsJson } from '../common/request-context.js';
import { loginUrl, SESSION_COOKIE } from './console-http.js';

export const QUEUE_BOARD_PATH = '/admin/queues';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A state-changing board request must come from a page of this site (its Origin), not a form elsewhere. */
function sameOrigin(req: FastifyRequest, config: AppConfig): boolean {
  const origin = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if (site === 'same-origin') return true;
  if (typeof origin !== 'string') return false;
  try {
    const o = new URL(origin);
    return o.host === req.headers.host || o.origin === new URL(config.publicUrl).origin;
  } catch {
    return false;
  }
}

function deny(req: FastifyRequest, reply: FastifyReply, status: 401 | 403, message: string): FastifyReply {
  return reply
    .status(status)
    .type('application/json; charset=utf-8')
    .send({ statusCode: status, error: status === 401 ? 'Unauthorized' : 'Forbidden', message });
}

/**
 * bull-board at /admin/queues, behind the console sign-in: no session → the sign-in page (or 401
 * for the board's own API calls); marketers may look, only admins may retry, clean or remove jobs.
 * Shows the mail and digest queues, on Redis and on BullMQ's PostgreSQL backend alike.
 */
export async function mountQueueBoard(app: NestFastifyApplication, config: AppConfig): Promise<void> {
  const sessions = app.get(StaffSessionsService);
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
        if (!sameOrigin(req, config)) return deny(req, reply, 403, 'Cross-site requests are refused');
      }
      return undefined;
    });
    // The board's plugin (views, static files, its JSON API) stays inside this scope and its hook.
    await scope.register(board.registerPlugin(), { prefix: QUEUE_BOARD_PATH });
  });
}
