import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiConsumes, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { UnsupportedMediaTypeException } from '@nestjs/common';
import { AcceptsCsv } from '../common/body-types.js';
import { ImportExportService, type ImportReport } from '#subscriptions/import-export.service.js';
import { SubscriberAdminService } from '#subscriptions/subscriber-admin.service.js';
import { SubscribersService, publicSubscriber } from '#subscriptions/subscribers.service.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { PatchSubscriberDto } from './dto/subscriber.dto.js';

@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1')
export class SubscriberRecordsController {
  constructor(
    private readonly admin: SubscriberAdminService,
    private readonly subscribers: SubscribersService,
    private readonly bulk: ImportExportService,
  ) {}

  /** Support staff acting on a reader's request. */
  @Patch('subscribers/:email')
  async patch(@Param('email') email: string, @Body() dto: PatchSubscriberDto) {
    await this.admin.patch(email, dto);
    const { items } = await this.subscribers.search({ email });
    return items[0] && publicSubscriber(items[0]);
  }

  /** Everything stored about the address (GDPR access). */
  @Get('subscribers/:email/export')
  export(@Param('email') email: string) {
    return this.admin.export(email);
  }

  /** Erasure: personal data removed, a keyed hash kept on the suppression list. */
  @Delete('subscribers/:email')
  @HttpCode(204)
  async erase(@Param('email') email: string): Promise<void> {
    await this.admin.erase(email);
  }

  /**
   * text/csv with header email,name,topics,timezone,consented_at,source; streamed, all or nothing.
   * A file that cannot be parsed is a 400 (CsvFileError) naming the line; the service drains the body.
   */
  @Post('newsletters/:slug/subscribers/import')
  @HttpCode(200)
  @ApiConsumes('text/csv')
  @AcceptsCsv()
  async import(@Param('slug') slug: string, @Req() req: FastifyRequest): Promise<ImportReport> {
    if (!(req.body instanceof Readable))
      throw new UnsupportedMediaTypeException(['send the CSV as the request body with Content-Type: text/csv']);
    return this.bulk.import(slug, req.body);
  }

  @Get('newsletters/:slug/subscribers/export')
  async exportCsv(@Param('slug') slug: string, @Res() reply: FastifyReply): Promise<void> {
    const stream = await this.bulk.export(slug);
    await reply
      .type('text/csv; charset=utf-8')
      .header('Content-Disposition', `attachment; filename="${slug}-subscribers.csv"`)
      .send(stream);
  }
}
