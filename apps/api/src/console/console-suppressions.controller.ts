import {
  Controller,
  Get,
  NotFoundException,
  Param,
  Post,
  Query,
  Req,
  Res,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { StaffPrincipal } from '../../../../libs/staff/src/staff-sessions.service.js';
import { type SuppressionItem, SuppressionsService } from '../../../../libs/subscriptions/src/suppressions.service.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { ConsolePagesService } from './console-pages.service.js';
import { Roles, StaffGuard } from './staff.guard.js';

const NOTICES: Record<string, string> = {
  lifted: 'Suppression lifted. The address can sign up again; it gets newsletters only after a new double opt-in.',
};

const REASONS: Record<string, string> = {
  bounced: 'Hard bounce',
  complained: 'Spam complaint',
  manual: 'Blocked by hand',
  erased: 'Erased on request',
};

function staffOf(req: FastifyRequest): StaffPrincipal {
  // StaffGuard guarantees it on every route of this controller.
  return req.staff as StaffPrincipal;
}

function view(s: SuppressionItem) {
  return { ...s, reasonLabel: REASONS[s.reason] ?? s.reason, erased: s.reason === 'erased' };
}

/** The suppression list: everyone sees it; only admins lift an entry (after a confirmation page). */
@ApiExcludeController()
@Controller('admin/suppressions')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleSuppressionsController {
  constructor(
    private readonly suppressions: SuppressionsService,
    private readonly pages: ConsolePagesService,
  ) {}

  @Get()
  async list(
    @Query('before') before: unknown,
    @Query('notice') notice: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const cursor = typeof before === 'string' ? before : undefined;
    const page = await this.suppressions.list({ before: cursor, limit: 50 });
    await this.send(
      reply,
      200,
      this.pages.render(
        'suppressions',
        { title: 'Suppressions', staff: staffOf(req), section: 'suppressions' },
        {
          notice: typeof notice === 'string' ? NOTICES[notice] : undefined,
          items: page.items.map(view),
          nextPage: page.next ? `/admin/suppressions?before=${page.next}` : null,
          firstPage: cursor ? '/admin/suppressions' : null,
        },
      ),
    );
  }

  @Get(':id/lift')
  @Roles('admin')
  async confirmLift(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const s = await this.found(id);
    await this.send(
      reply,
      200,
      this.pages.render(
        'suppression-lift',
        { title: 'Lift a suppression', staff: staffOf(req), section: 'suppressions' },
        { s: view(s) },
      ),
    );
  }

  @Post(':id/lift')
  @Roles('admin')
  async lift(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const outcome = await this.suppressions.liftById(id, `console: ${staffOf(req).email}`);
    if (!outcome.lifted) throw new NotFoundException('There is no such suppression. It may have been lifted already.');
    await reply.redirect('/admin/suppressions?notice=lifted', 303);
  }

  private async found(id: string): Promise<SuppressionItem> {
    const s = await this.suppressions.find(id);
    if (!s) throw new NotFoundException('There is no such suppression. It may have been lifted already.');
    return s;
  }

  private async send(reply: FastifyReply, status: number, html: string): Promise<void> {
    await reply.status(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
  }
}
