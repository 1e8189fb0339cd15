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
import { Readable } from 'node:stream';
import { CsvFileError } from '#subscriptions/csv-reader.js';
import { ImportExportService, type ImportReport } from '#subscriptions/import-export.service.js';
import { NewslettersService } from '#subscriptions/newsletters.service.js';
import { SubscriberDirectoryService, type SubscriberDetail } from '#subscriptions/subscriber-directory.service.js';
import { SEARCH_STATUSES, SubscribersService } from '#subscriptions/subscribers.service.js';
import { AcceptsCsv } from '../common/body-types.js';
import { notPlainData } from '../common/plain-input.js';
import { wantsJson } from '../common/request-context.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { type FormErrors, notice, queryString, sendPage, staffOf } from './console-forms.js';
import { field } from './console-http.js';
import { ConsolePagesService } from './console-pages.service.js';
import { Roles, StaffGuard } from './staff.guard.js';

const NOTICES: Record<string, string> = {
  unsubscribed: 'Unsubscribed. They get no further mail from that newsletter; only a new double opt-in brings it back.',
  erased: 'The subscriber was erased. Only a keyed hash of the address stays on the suppression list.',
};

const STATUS_LABELS: Record<string, string> = {
  pending: 'Pending confirmation',
  active: 'Active',
  unsubscribed: 'Unsubscribed',
  ok: 'In good standing',
  bounced: 'Bounced',
  complained: 'Complained',
  suppressed: 'Suppressed',
};

function subscriberId(raw: string): string {
  if (!/^[1-9][0-9]{0,18}$/.test(raw)) throw new NotFoundException('There is no such subscriber.');
  return raw;
}

/**
 * Subscribers: search and filter, a subscriber's page (subscriptions, topics, consent history,
 * mail log), unsubscribe on request, export and erase (admins), CSV import and export.
 */
@ApiExcludeController()
@Controller('admin/subscribers')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleSubscribersController {
  constructor(
    private readonly directory: SubscriberDirectoryService,
    private readonly subscribers: SubscribersService,
    private readonly newsletters: NewslettersService,
    private readonly bulk: ImportExportService,
    private readonly pages: ConsolePagesService,
  ) {}

  @Get()
  async list(
    @Query() query: Record<string, unknown>,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const q = queryString(query.q).slice(0, 254);
    const newsletter = queryString(query.newsletter);
    const status = queryString(query.status);
    const after = queryString(query.after);
    const newsletters = await this.newsletterOptions(newsletter);
    const errors: FormErrors = {};
    if (newsletter && !newsletters.some((n) => n.selected)) errors.newsletter = 'There is no such newsletter.';
    const statuses = SEARCH_STATUSES.map((s) => ({
      value: s,
      label: STATUS_LABELS[s],
      selected: s === status,
    }));
    if (status && !statuses.some((s) => s.selected)) errors.status = 'Choose a status from the list.';
    const valid = Object.keys(errors).length === 0;
    const result = valid
      ? await this.subscribers.search({ emailStartsWith: q, newsletter, status, after: after || undefined, limit: 50 })
      : { items: [], next: null };
    const names = new Map(newsletters.map((n) => [n.slug, n.name]));
    const filtered = Boolean(q || newsletter || status);
    const keep = new URLSearchParams();
    if (q) keep.set('q', q);
    if (newsletter) keep.set('newsletter', newsletter);
    if (status) keep.set('status', status);
    const firstPage = `/admin/subscribers${keep.size ? `?${keep.toString()}` : ''}`;
    if (result.next) keep.set('after', result.next);
    await sendPage(
      reply,
      valid ? 200 : 400,
      this.pages.render(
        'subscribers',
        { title: 'Subscribers', staff: staffOf(req), section: 'subscribers' },
        {
          notice: notice(NOTICES, query.notice),
          values: { q },
          errors: valid ? undefined : errors,
          newsletters,
          statuses,
          subscribers: result.items.map((s) => ({
            id: s.id,
            email: s.email,
            name: s.name,
            status: s.status,
            createdAt: s.createdAt,
            flagged: s.status !== 'ok',
            subscriptions: s.subscriptions.map((x) => ({
              slug: x.newsletter,
              name: names.get(x.newsletter) ?? x.newsletter,
              status: x.status,
              statusLabel: STATUS_LABELS[x.status],
            })),
          })),
          filtered,
          nextPage: result.next ? `/admin/subscribers?${keep.toString()}` : null,
          firstPage: after ? firstPage : null,
        },
      ),
    );
  }

  @Get('import')
  async importPage(
    @Query('newsletter') newsletter: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.importView(req, reply, 200, { newsletter: queryString(newsletter) });
  }

  /**
   * A CSV import for one newsletter. The console's script sends the file as the body
   * (`Content-Type: text/csv`, `X-CSRF-Token`, `?newsletter=`), streamed to the importer, and
   * gets the report as JSON; without script the form posts pasted CSV text (`csv` field).
   */
  @Post('import')
  @AcceptsCsv()
  async import(
    @Query('newsletter') queryNewsletter: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    // A streamed CSV body is read from the request: the input pipe passes plain data only.
    const body: unknown = req.body;
    const streamed = body instanceof Readable;
    if (!streamed) {
      const why = notPlainData(body, 'body');
      if (why) throw new BadRequestException(why);
    }
    const slug = queryString(queryNewsletter) || (streamed ? '' : field(body, 'newsletter'));
    const known = (await this.newsletters.list()).find((n) => n.slug === slug);
    const json = wantsJson(req);
    if (!known) {
      if (streamed) (body as Readable).resume();
      if (json) throw new BadRequestException('Choose the newsletter to import into.');
      await this.importView(req, reply, 400, {
        newsletter: slug,
        errors: { newsletter: 'Choose the newsletter to import into.' },
      });
      return;
    }
    let input: Readable;
    if (streamed) input = body as Readable;
    else {
      const text = field(body, 'csv');
      if (!text.trim()) {
        await this.importView(req, reply, 400, {
          newsletter: slug,
          errors: { csv: 'Paste the CSV here (header line first), or choose a file with JavaScript enabled.' },
        });
        return;
      }
      input = Readable.from([text]);
    }
    let report: ImportReport;
    try {
      report = await this.bulk.import(slug, input);
    } catch (err) {
      // A file that cannot be parsed (quoting, encoding, header) is the uploader's to fix: 400, not 500.
      if (!(err instanceof CsvFileError)) throw err;
      const message = err.message;
      if (json) throw new BadRequestException(message);
      await this.importView(req, reply, 400, { newsletter: slug, errors: { csv: message } });
      return;
    }
    if (json) {
      await reply
        .status(200)
        .header('cache-control', 'no-store')
        .type('application/json; charset=utf-8')
        .send({ newsletter: { slug: known.slug, name: known.name }, ...report });
      return;
    }
    await this.importView(req, reply, 200, { newsletter: slug, report, reportFor: known.name });
  }

  /** A newsletter's subscribers as CSV (streamed). */
  @Get('export')
  async exportCsv(@Query('newsletter') newsletter: unknown, @Res() reply: FastifyReply): Promise<void> {
    const slug = queryString(newsletter);
    if (!(await this.newsletters.list()).some((n) => n.slug === slug))
      throw new NotFoundException('There is no such newsletter.');
    const stream = await this.bulk.export(slug);
    await reply
      .type('text/csv; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-disposition', `attachment; filename="${slug}-subscribers.csv"`)
      .send(stream);
  }

  @Get(':id')
  async show(
    @Param('id') id: string,
    @Query('notice') noticeKey: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const s = await this.found(id);
    await sendPage(
      reply,
      200,
      this.pages.render(
        'subscriber',
        { title: s.email, staff: staffOf(req), section: 'subscribers' },
        {
          notice: notice(NOTICES, noticeKey),
          s,
          flagged: s.status !== 'ok',
          subscriptions: s.subscriptions.map((x) => ({
            ...x,
            statusLabel: STATUS_LABELS[x.status],
            canUnsubscribe: x.status !== 'unsubscribed',
          })),
        },
      ),
    );
  }

  @Get(':id/unsubscribe')
  async confirmUnsubscribe(
    @Param('id') id: string,
    @Query('newsletter') newsletter: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const s = await this.found(id);
    const sub = this.subscriptionOf(s, queryString(newsletter));
    await sendPage(
      reply,
      200,
      this.pages.render(
        'subscriber-unsubscribe',
        { title: `Unsubscribe ${s.email}`, staff: staffOf(req), section: 'subscribers' },
        { s, sub },
      ),
    );
  }

  @Post(':id/unsubscribe')
  async unsubscribe(
    @Param('id') id: string,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const s = await this.found(id);
    const sub = this.subscriptionOf(s, field(body, 'newsletter'));
    await this.directory.unsubscribe(s.id, sub.slug, `console: ${staffOf(req).email}`);
    await reply.redirect(`/admin/subscribers/${s.id}?notice=unsubscribed`, 303);
  }

  /** Everything stored about the subscriber, as a JSON download (GDPR access). */
  @Get(':id/export')
  @Roles('admin')
  async export(@Param('id') id: string, @Res() reply: FastifyReply): Promise<void> {
    const { data } = await this.directory.export(subscriberId(id));
    await reply
      .type('application/json; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-disposition', `attachment; filename="subscriber-${id}.json"`)
      .send(JSON.stringify(data, null, 2));
  }

  @Get(':id/erase')
  @Roles('admin')
  async confirmErase(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const s = await this.found(id);
    await this.eraseView(req, reply, 200, s);
  }

  @Post(':id/erase')
  @Roles('admin')
  async erase(
    @Param('id') id: string,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const s = await this.found(id);
    const typed = field(body, 'confirm_email');
    if ((await this.directory.erase(s.id, typed)) === 'mismatch') {
      await this.eraseView(req, reply, 400, s, typed, 'Type the subscriber’s address exactly as shown to confirm.');
      return;
    }
    await reply.redirect('/admin/subscribers?notice=erased', 303);
  }

  private async found(id: string): Promise<SubscriberDetail> {
    const s = await this.directory.detail(subscriberId(id));
    if (!s) throw new NotFoundException('There is no such subscriber. They may have been erased.');
    return s;
  }

  private subscriptionOf(s: SubscriberDetail, slug: string): SubscriberDetail['subscriptions'][number] {
    const sub = s.subscriptions.find((x) => x.slug === slug);
    if (!sub) throw new NotFoundException(`${s.email} has no subscription to that newsletter.`);
    if (sub.status === 'unsubscribed')
      throw new BadRequestException(`${s.email} is already unsubscribed from ${sub.name}.`);
    return sub;
  }

  private async newsletterOptions(selected: string): Promise<{ slug: string; name: string; selected: boolean }[]> {
    return (await this.newsletters.list()).map((n) => ({ slug: n.slug, name: n.name, selected: n.slug === selected }));
  }

  private async importView(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    vars: { newsletter: string; errors?: Record<string, string>; report?: ImportReport; reportFor?: string },
  ): Promise<void> {
    const newsletters = await this.newsletterOptions(vars.newsletter);
    await sendPage(
      reply,
      status,
      this.pages.render(
        'subscribers-import',
        { title: 'Import subscribers', staff: staffOf(req), section: 'subscribers' },
        { ...vars, newsletters, columns: ImportExportService.columns.join(',') },
      ),
    );
  }

  private async eraseView(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    s: SubscriberDetail,
    typed = '',
    error?: string,
  ): Promise<void> {
    await sendPage(
      reply,
      status,
      this.pages.render(
        'subscriber-erase',
        { title: `Erase ${s.email}`, staff: staffOf(req), section: 'subscribers' },
        { s, typed, error },
      ),
    );
  }
}
