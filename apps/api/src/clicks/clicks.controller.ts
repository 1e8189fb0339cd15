import { Controller, Get, Param, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PagesService } from '../pages/pages.service.js';
import { ClickRecorder } from './click-recorder.service.js';

/**
 * `/c/:token`: a tracked article link. 302 to the article the token was minted for; 404 for a
 * tampered or unknown token. A HEAD is answered the same and never counts; a GET changes nothing
 * but the click record.
 */
@ApiExcludeController()
@Controller('c')
export class ClicksController {
  constructor(
    private readonly clicks: ClickRecorder,
    private readonly pages: PagesService,
  ) {}

  /** Fastify answers HEAD on this route too (without a body): it redirects and counts nothing. */
  @Get(':token')
  async click(@Param('token') token: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const t = this.clicks.verify(token);
    const url = t ? await this.clicks.target(t) : null;
    if (!t || !url) {
      const heading = 'This link is not valid';
      await reply
        .status(404)
        .headers(this.pages.headers())
        .type('text/html; charset=utf-8')
        .send(
          this.pages.render('link-error', heading, {
            heading,
            message: 'This link is not valid. The article may have been removed.',
          }),
        );
      return;
    }
    if (req.method === 'GET') await this.clicks.record(t, req.headers);
    // The token stays ours: the article's site does not get it as a referrer.
    await reply
      .status(302)
      .header('Location', url)
      .header('Cache-Control', 'private, no-store')
      .header('Referrer-Policy', 'no-referrer')
      .send();
  }
}
