import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PagesService } from '../pages/pages.service.js';
import { ClickRecorder } from './click-recorder.service.js';

/** The tracked-link route: a click is one of the api's busiest requests (a digest's readers, within the hour). */
export const CLICK_ROUTE = '/c/:token';

/**
 * `GET /c/:token`: a tracked article link. 302 to the article the token was minted for; 404 page
 * for a tampered or unknown token. Fastify answers HEAD on it too (without a body): it redirects
 * and counts nothing. A GET changes nothing but the click record.
 *
 * A plain Fastify route, not a Nest controller: it takes no body, no guard and no pipe, and Nest's
 * per-request machinery would cost more than the redirect itself (see BENCHMARKS.md, target 9).
 */
export function mountClickRoute(app: NestFastifyApplication): void {
  const clicks = app.get(ClickRecorder);
  const pages = app.get(PagesService);
  const notFound = () =>
    pages.render('link-error', 'This link is not valid', {
      heading: 'This link is not valid',
      message: 'This link is not valid. The article may have been removed.',
    });

  app
    .getHttpAdapter()
    .getInstance()
    .get(CLICK_ROUTE, async (req: FastifyRequest<{ Params: { token: string } }>, reply: FastifyReply) => {
      const t = clicks.verify(req.params.token);
      // Known articles answer from memory, without a turn of the event loop.
      let url = t ? clicks.target(t) : null;
      if (url instanceof Promise) url = await url.catch(() => null);
      if (!t || !url) {
        return reply.status(404).headers(pages.headers()).type('text/html; charset=utf-8').send(notFound());
      }
      // Written group-committed behind the answer: the reader does not wait for the commit.
      if (req.method === 'GET') clicks.record(t, req.headers);
      // The token stays ours: the article's site does not get it as a referrer.
      return reply
        .status(302)
        .header('Location', url)
        .header('Cache-Control', 'private, no-store')
        .header('Referrer-Policy', 'no-referrer')
        .send();
    });
}
