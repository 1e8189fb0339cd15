import {
  BadRequestException,
  Body,
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
import { type SuppressionItem, SuppressionsService } from '#subscriptions/suppressions.service.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { badRequestMessage, type FormErrors, notice, queryString, sendPage, staffOf } from './console-forms.js';
import { field } from './console-http.js';
import { ConsolePagesService } from './console-pages.service.js';
import { Roles, StaffGuard } from './staff.guard.js';

const NOTICES: Record<string, string> = {
  lifted: 'Suppression lifted. The address can sign up again; it gets newsletters only after a new double opt-in.',
  added: 'Address suppressed: it gets no further mail from any newsletter.',
  'already-listed': 'That address was already on the suppression list; its first reason is kept.',
};

const REASONS: Record<string, string> = {
  bounced: 'Hard bounce',
  complained: 'Spam complaint',
  manual: 'Blocked by hand',
  erased: 'Erased on request',
};

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
    @Query('notice') noticeKey: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.listPage(req, reply, 200, queryString(before) || undefined, notice(NOTICES, noticeKey));
  }

  /** Suppresses an address by hand (admins only): a reason is required, so the list says why. */
  @Post()
  @Roles('admin')
  async add(@Body() body: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const values = { email: field(body, 'email').trim(), reason: field(body, 'reason').trim() };
    const errors: FormErrors = {};
    if (!values.email) errors.email = 'Enter an email address';
    if (!values.reason) errors.reason = 'Say why this address must not be mailed';
    else if (values.reason.length > 500) errors.reason = 'Keep the reason under 500 characters';
    if (Object.keys(errors).length === 0) {
      try {
        const r = await this.suppressions.suppress(values.email, values.reason, `console: ${staffOf(req).email}`);
        await reply.redirect(`/admin/suppressions?notice=${r.created ? 'added' : 'already-listed'}`, 303);
        return;
      } catch (err) {
        const message = badRequestMessage(err);
        if (message === null || !(err instanceof BadRequestException)) throw err;
        errors.email = message.replace(/^email: /, '');
      }
    }
    await this.listPage(req, reply, 400, undefined, undefined, { errors, values });
  }

  private async listPage(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    cursor: string | undefined,
    message: string | undefined,
    form: { errors: FormErrors; values: { email: string; reason: string } } = {
      errors: {},
      values: { email: '', reason: '' },
    },
  ): Promise<void> {
    const page = await this.suppressions.list({ before: cursor, limit: 50 });
    await sendPage(
      reply,
      status,
      this.pages.render(
        'suppressions',
        { title: 'Suppressions', staff: staffOf(req), section: 'suppressions' },
        {
          notice: message,
          items: page.items.map(view),
          nextPage: page.next ? `/admin/suppressions?before=${page.next}` : null,
          firstPage: cursor ? '/admin/suppressions' : null,
          errors: form.errors,
          hasErrors: Object.keys(form.errors).length > 0,
          values: form.values,
        },
      ),
    );
  }

  @Get(':id/lift')
  @Roles('admin')
  async confirmLift(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const s = await this.found(id);
    await sendPage(
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
}
