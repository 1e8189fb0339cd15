import {
  BadRequestException,
  Body,
  Controller,
  Get,
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
import {
  type WebhookDeliveryView,
  type WebhookEndpointView,
  WebhookEndpointsService,
} from '#subscriptions/webhooks-out/webhook-endpoints.service.js';
import { WEBHOOK_EVENTS, type WebhookEventType, isWebhookEvent } from '#subscriptions/webhooks-out/webhook-events.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { type FormErrors, badRequestMessage, fields, notice, queryString, sendPage, staffOf } from './console-forms.js';
import { field } from './console-http.js';
import { ConsolePagesService } from './console-pages.service.js';
import { Roles, StaffGuard } from './staff.guard.js';

const NOTICES: Record<string, string> = {
  replayed: 'Delivery queued again: it goes out within seconds, with the same webhook-id.',
  enabled: 'Endpoint enabled: waiting deliveries go out now.',
  disabled: 'Endpoint paused: new events wait for it until it is enabled again.',
  deleted: 'Endpoint deleted, with its deliveries.',
};

const STATUS_LABELS: Record<string, string> = { pending: 'Retrying', delivered: 'Delivered', failed: 'Failed' };

interface CreateForm {
  errors: FormErrors;
  values: { url: string; events: string[] };
}

/**
 * Outgoing webhooks in the console (admins only: endpoint URLs and secrets are sensitive): the
 * endpoints, a form to add one (its secret shown once, on the answer page), each endpoint's
 * deliveries with their attempts, and replay.
 */
@ApiExcludeController()
@Controller('admin/webhooks')
@UseGuards(StaffGuard)
@Roles('admin')
@UseFilters(ConsoleExceptionFilter)
export class ConsoleWebhooksController {
  constructor(
    private readonly endpoints: WebhookEndpointsService,
    private readonly pages: ConsolePagesService,
  ) {}

  @Get()
  async list(@Query('notice') key: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    await this.listPage(req, reply, 200, { notice: notice(NOTICES, key) });
  }

  /** Registers an endpoint; the answer page (never a redirect: no secret in a URL) shows its secret once. */
  @Post()
  async create(@Body() body: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const values = { url: field(body, 'url').trim(), events: fields(body, 'events') };
    const errors: FormErrors = {};
    if (!values.url) errors.url = 'Enter the URL that receives the events';
    const events = values.events.filter(isWebhookEvent);
    if (events.length === 0 || events.length !== values.events.length) errors.events = 'Choose at least one event';
    if (Object.keys(errors).length === 0) {
      try {
        const created = await this.endpoints.create(values.url, events, `console: ${staffOf(req).email}`);
        await this.listPage(req, reply, 201, { secret: { id: created.id, url: created.url, value: created.secret } });
        return;
      } catch (err) {
        const message = badRequestMessage(err);
        if (message === null) throw err;
        errors.url = message.replace(/^url: /, '');
      }
    }
    await this.listPage(req, reply, 400, { form: { errors, values } });
  }

  @Get(':id')
  async endpoint(
    @Param('id') id: string,
    @Query('before') before: unknown,
    @Query('notice') key: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.endpointPage(req, reply, id, { before: queryString(before) || undefined, notice: notice(NOTICES, key) });
  }

  @Post(':id/deliveries/:deliveryId/replay')
  async replay(
    @Param('id') id: string,
    @Param('deliveryId') deliveryId: string,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.endpoints.replay(id, deliveryId, `console: ${staffOf(req).email}`);
    await reply.redirect(`/admin/webhooks/${id}?notice=replayed`, 303);
  }

  /** A new secret, shown once on the answer page; the old one stops signing at once. */
  @Post(':id/rotate-secret')
  async rotate(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const r = await this.endpoints.rotateSecret(id, `console: ${staffOf(req).email}`);
    await this.endpointPage(req, reply, id, { secret: r.secret });
  }

  @Post(':id/enabled')
  async enable(
    @Param('id') id: string,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const v = field(body, 'enabled');
    if (v !== 'true' && v !== 'false') throw new BadRequestException('enabled must be true or false');
    await this.endpoints.update(id, { enabled: v === 'true' }, `console: ${staffOf(req).email}`);
    await reply.redirect(`/admin/webhooks/${id}?notice=${v === 'true' ? 'enabled' : 'disabled'}`, 303);
  }

  @Post(':id/delete')
  async remove(@Param('id') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    await this.endpoints.remove(id, `console: ${staffOf(req).email}`);
    await reply.redirect('/admin/webhooks?notice=deleted', 303);
  }

  private async listPage(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    opts: { notice?: string; secret?: { id: string; url: string; value: string }; form?: CreateForm },
  ): Promise<void> {
    const form = opts.form ?? { errors: {}, values: { url: '', events: [...WEBHOOK_EVENTS] } };
    const items = await this.endpoints.list();
    await sendPage(
      reply,
      status,
      this.pages.render(
        'webhooks',
        { title: 'Webhooks', staff: staffOf(req), section: 'webhooks' },
        {
          notice: opts.notice,
          secret: opts.secret,
          items: items.map(endpointView),
          events: WEBHOOK_EVENTS.map((e) => ({ name: e, checked: form.values.events.includes(e) })),
          errors: form.errors,
          hasErrors: Object.keys(form.errors).length > 0,
          values: form.values,
        },
      ),
    );
  }

  private async endpointPage(
    req: FastifyRequest,
    reply: FastifyReply,
    id: string,
    opts: { before?: string; notice?: string; secret?: string },
  ): Promise<void> {
    const ep = await this.endpoints.get(id);
    const page = await this.endpoints.deliveriesOf(id, { before: opts.before, limit: 25 }).catch((err: unknown) => {
      // A hand-edited cursor: show the newest page instead of an error.
      if (err instanceof BadRequestException) return this.endpoints.deliveriesOf(id, { limit: 25 });
      throw err;
    });
    await sendPage(
      reply,
      200,
      this.pages.render(
        'webhook',
        { title: 'Webhook endpoint', staff: staffOf(req), section: 'webhooks' },
        {
          ep: endpointView(ep),
          notice: opts.notice,
          secret: opts.secret,
          deliveries: page.items.map(deliveryView),
          nextPage: page.next ? `/admin/webhooks/${id}?before=${page.next}` : null,
          firstPage: opts.before ? `/admin/webhooks/${id}` : null,
        },
      ),
    );
  }
}

function endpointView(e: WebhookEndpointView) {
  return { ...e, eventList: e.events.join(', ') as string, events: e.events as WebhookEventType[] };
}

function deliveryView(d: WebhookDeliveryView) {
  return {
    ...d,
    statusLabel: STATUS_LABELS[d.status] ?? d.status,
    attempts: d.attempts.map((a) => ({
      ...a,
      outcome: a.statusCode !== null ? `HTTP ${a.statusCode}` : (a.error ?? '—'),
    })),
  };
}
