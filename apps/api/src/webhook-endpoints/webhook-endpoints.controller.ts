import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiTags } from '@nestjs/swagger';
import {
  type WebhookDeliveryView,
  type WebhookEndpointView,
  WebhookEndpointsService,
} from '#subscriptions/webhooks-out/webhook-endpoints.service.js';
import { ApiKeyGuard } from '../admin/api-key.guard.js';
import { CreateWebhookEndpointDto, DeliveriesQueryDto, UpdateWebhookEndpointDto } from './dto/webhook-endpoint.dto.js';

const BY = 'admin API';

/** Outgoing webhooks: where events go, their secrets, and what each delivery got (docs/webhooks-out.md). */
@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/webhook-endpoints')
export class WebhookEndpointsController {
  constructor(private readonly endpoints: WebhookEndpointsService) {}

  /** Registers an endpoint. The signing secret is in this answer only (and in a rotation's). */
  @Post()
  @HttpCode(201)
  @ApiCreatedResponse({ description: '{ id, secret, url, events, enabled, … }' })
  create(@Body() dto: CreateWebhookEndpointDto): Promise<WebhookEndpointView & { secret: string }> {
    return this.endpoints.create(dto.url, dto.events, BY);
  }

  @Get()
  async list(): Promise<{ items: WebhookEndpointView[] }> {
    return { items: await this.endpoints.list() };
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<WebhookEndpointView> {
    return this.endpoints.get(id);
  }

  @Patch(':id')
  update(@Param('id') id: string, @Body() dto: UpdateWebhookEndpointDto): Promise<WebhookEndpointView> {
    return this.endpoints.update(id, { url: dto.url, events: dto.events, enabled: dto.enabled }, BY);
  }

  /** A new secret, returned once; the old one stops signing at once. */
  @Post(':id/rotate-secret')
  @HttpCode(200)
  rotate(@Param('id') id: string): Promise<{ id: string; secret: string }> {
    return this.endpoints.rotateSecret(id, BY);
  }

  @Delete(':id')
  @HttpCode(204)
  remove(@Param('id') id: string): Promise<void> {
    return this.endpoints.remove(id, BY);
  }

  /** Deliveries newest first, each with its latest attempts (status code or error, duration). */
  @Get(':id/deliveries')
  deliveries(
    @Param('id') id: string,
    @Query() q: DeliveriesQueryDto,
  ): Promise<{ items: WebhookDeliveryView[]; next: string | null }> {
    return this.endpoints.deliveriesOf(id, { before: q.before, limit: q.limit });
  }

  /** Sends a delivery again now, with the same webhook-id. */
  @Post(':id/deliveries/:deliveryId/replay')
  @HttpCode(202)
  replay(@Param('id') id: string, @Param('deliveryId') deliveryId: string): Promise<{ id: string; status: 'pending' }> {
    return this.endpoints.replay(id, deliveryId, BY);
  }
}
