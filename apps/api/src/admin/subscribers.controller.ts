import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiQuery, ApiTags } from '@nestjs/swagger';
import { SEARCH_STATUSES, SubscribersService, publicSubscriber } from '#subscriptions/subscribers.service.js';
import { ApiKeyGuard } from './api-key.guard.js';

@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/subscribers')
export class SubscribersController {
  constructor(private readonly subscribers: SubscribersService) {}

  @Get()
  @ApiQuery({ name: 'email', required: false })
  @ApiQuery({ name: 'newsletter', required: false })
  @ApiQuery({
    name: 'status',
    required: false,
    enum: SEARCH_STATUSES,
  })
  @ApiQuery({ name: 'limit', required: false })
  @ApiQuery({ name: 'after', required: false, description: 'cursor: the "next" of the previous page' })
  async search(
    @Query('email') email?: string,
    @Query('newsletter') newsletter?: string,
    @Query('status') status?: string,
    @Query('limit') limit?: string,
    @Query('after') after?: string,
  ) {
    const n = limit === undefined ? undefined : Number(limit);
    const page = await this.subscribers.search({
      email,
      newsletter,
      status,
      limit: Number.isFinite(n) ? n : undefined,
      after,
    });
    return { items: page.items.map(publicSubscriber), next: page.next };
  }
}
