import { Controller, Get, Param, Req, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GuidesService } from '#subscriptions/guides.service.js';
import { LinkError } from '#subscriptions/subscriptions.service.js';
import { requestVerdict } from '../clicks/click-verdict.js';
import { PagesService } from '../pages/pages.service.js';

@ApiTags('public')
@Controller('guides')
export class GuidesController {
  constructor(
    private readonly guides: GuidesService,
    private readonly pages: PagesService,
  ) {}

  @Get(':slug/:token')
  async download(
    @Param('slug') slug: string,
    @Param('token') token: string,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    try {
      // A HEAD, a prefetch or a link scanner gets the file but is not the reader downloading it.
      const record = req.method === 'GET' && requestVerdict(req.headers) === null;
      const file = await this.guides.download(slug, token, { record });
      await reply
        .header('Content-Disposition', `attachment; filename="${file.fileName.replace(/[^A-Za-z0-9._-]/g, '_')}"`)
        .header('Cache-Control', 'private, no-store')
        .header('X-Content-Type-Options', 'nosniff')
        .type(file.contentType)
        .send(file.body);
    } catch (err) {
      if (!(err instanceof LinkError)) throw err;
      const status = err.kind === 'expired' ? 410 : 404;
      const heading = err.kind === 'expired' ? 'This download link has expired' : 'This link is not valid';
      await reply
        .status(status)
        .headers(this.pages.headers())
        .type('text/html; charset=utf-8')
        .send(this.pages.render('link-error', heading, { heading, message: err.message }));
    }
  }
}
