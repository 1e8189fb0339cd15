import { Controller, Get, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DkimKeys } from '#mail/dkim/dkim-keys.service.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { sendPage, staffOf } from './console-forms.js';
import { ConsolePagesService } from './console-pages.service.js';
import { StaffGuard } from './staff.guard.js';

/**
 * DKIM per From domain: each domain's keys and the DNS record to publish, and whether its mail is
 * signed now. Read-only: keys are made and retired with `npm run cli -- dkim …`.
 */
@ApiExcludeController()
@Controller('admin/dkim')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleDkimController {
  constructor(
    private readonly keys: DkimKeys,
    private readonly pages: ConsolePagesService,
  ) {}

  @Get()
  async page(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const domains = await this.keys.overview();
    await sendPage(
      reply,
      200,
      this.pages.render('dkim', { title: 'DKIM signing', staff: staffOf(req), section: 'dkim' }, { domains }),
    );
  }
}
