import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  Post,
  Put,
  Query,
  Res,
  UseGuards,
} from '@nestjs/common';
import { ApiBearerAuth, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { type DigestStats, DigestStatsRepository } from '#digests/digest-stats.repository.js';
import { DigestsService, type DigestView } from '#digests/digests.service.js';
import { FeedError, type FeedResult, FeedsService } from '#digests/feeds.service.js';
import { BadRequestException } from '@nestjs/common';
import { ApiKeyGuard } from '../admin/api-key.guard.js';
import { ScheduleDto } from '../admin/dto/newsletter.dto.js';
import { CreateDigestDto, TestDigestDto } from './dto/digest.dto.js';

@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1')
export class DigestsController {
  constructor(
    private readonly digests: DigestsService,
    private readonly feeds: FeedsService,
    private readonly stats: DigestStatsRepository,
  ) {}

  @Post('newsletters/:slug/digests')
  create(@Param('slug') slug: string, @Body() dto: CreateDigestDto) {
    return this.digests.create(
      slug,
      dto.sendAt,
      { articleUrls: dto.articles },
      { subject: dto.subject, preheader: dto.preheader, intro: dto.intro },
      dto.delivery,
    );
  }

  @Put('newsletters/:slug/schedule')
  schedule(@Param('slug') slug: string, @Body() dto: ScheduleDto) {
    return this.digests.setSchedule(slug, dto.cron, dto.timezone, dto.delivery);
  }

  @Delete('newsletters/:slug/schedule')
  @HttpCode(204)
  async unschedule(@Param('slug') slug: string): Promise<void> {
    await this.digests.removeSchedule(slug);
  }

  /** Fetches the feed now; new items become articles. */
  @Post('newsletters/:slug/feed/poll')
  @HttpCode(200)
  async poll(@Param('slug') slug: string): Promise<FeedResult> {
    try {
      return await this.feeds.pollBySlug(slug);
    } catch (err) {
      if (err instanceof FeedError) throw new BadRequestException([err.message]);
      throw err;
    }
  }

  @Get('digests')
  @ApiQuery({ name: 'newsletter', required: false })
  @ApiQuery({ name: 'limit', required: false })
  list(@Query('newsletter') newsletter?: string, @Query('limit') limit?: string) {
    return this.digests.list(newsletter, Number(limit ?? 20) || 20);
  }

  @Get('digests/:id')
  get(@Param('id') id: string): Promise<DigestView> {
    return this.digests.get(id);
  }

  /** What a digest did: its ledger, unsubscribes after it and the clicks on its links (docs/stats.md). */
  @Get('digests/:id/stats')
  async digestStats(@Param('id') id: string): Promise<DigestStats> {
    if (!/^[1-9]\d{0,17}$/.test(id))
      throw new BadRequestException(['id must be a digest id (a positive whole number)']);
    const found = await this.stats.forDigest(id);
    if (!found) throw new NotFoundException(`Digest ${id} does not exist`);
    return found;
  }

  @Get('digests/:id/preview')
  async preview(@Param('id') id: string, @Query('topics') topics: unknown, @Res() reply: FastifyReply): Promise<void> {
    const html = await this.digests.preview(id, typeof topics === 'string' ? topics : undefined);
    await reply.header('Cache-Control', 'no-store').type('text/html; charset=utf-8').send(html);
  }

  @Post('digests/:id/test')
  @HttpCode(202)
  test(@Param('id') id: string, @Body() dto: TestDigestDto) {
    return this.digests.sendTest(id, dto.to);
  }

  @Post('digests/:id/cancel')
  @HttpCode(200)
  cancel(@Param('id') id: string) {
    return this.digests.cancel(id);
  }
}
