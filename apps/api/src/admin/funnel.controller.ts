import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FunnelRow } from '#subscriptions/funnel.repository.js';
import { FunnelService } from '#subscriptions/funnel.service.js';
import { ApiKeyGuard } from './api-key.guard.js';

/** The signup funnel per source: which article pages bring readers who stay. */
@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/newsletters')
export class FunnelController {
  constructor(private readonly funnel: FunnelService) {}

  @Get(':slug/funnel')
  @ApiQuery({
    name: 'since',
    required: false,
    type: String,
    description:
      'ISO 8601 date (midnight UTC) or date-time with Z or an offset; subscriptions created at or after it (default: 30 days ago)',
  })
  bySource(@Param('slug') slug: string, @Query('since') since?: unknown): Promise<FunnelRow[]> {
    return this.funnel.fromQuery(slug, since);
  }
}
