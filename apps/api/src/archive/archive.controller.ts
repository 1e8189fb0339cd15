import { Controller, Get, Res, UseGuards } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { type ArchiveAnswer, ArchiveService } from './archive.service.js';
import { PageThrottlerGuard } from './page-throttler.guard.js';
import { RawParam, RawQuery } from './raw-request-values.js';

/**
 * The public archive of sent digests: a list, each issue's web version, and an RSS feed. No API
 * key; rate-limited per client IP (see PageThrottlerGuard).
 */
@ApiTags('public')
@UseGuards(PageThrottlerGuard)
@Controller('newsletters')
export class ArchiveController {
  constructor(private readonly archive: ArchiveService) {}

  private async send(reply: FastifyReply, answer: ArchiveAnswer): Promise<void> {
    await reply.status(answer.status).headers(answer.headers).type(answer.contentType).send(answer.body);
  }

  @Get(':slug/issues')
  async list(
    @RawParam('slug') slug: unknown,
    @RawQuery('page') page: unknown,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.send(reply, await this.archive.archive(slug, page));
  }

  @Get(':slug/issues.rss')
  async feed(@RawParam('slug') slug: unknown, @Res() reply: FastifyReply): Promise<void> {
    await this.send(reply, await this.archive.feed(slug));
  }

  @Get(':slug/issues/:id')
  async issue(@RawParam('slug') slug: unknown, @RawParam('id') id: unknown, @Res() reply: FastifyReply): Promise<void> {
    await this.send(reply, await this.archive.issue(slug, id));
  }
}
