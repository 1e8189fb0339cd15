import { Body, Controller, Get, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LinkError, SubscriptionsService } from '#subscriptions/subscriptions.service.js';
import { consentContext, wantsJson } from '../common/request-context.js';
import { nameList, PagesService } from '../pages/pages.service.js';

/** Topics offered in the preference centre, besides any the reader already has. */
export const KNOWN_TOPICS = [
  'Arthritis',
  'Chronic Pain',
  'Degenerative Disc Disease',
  'Herniated Disc',
  'Lower Back Pain',
  'Neck Pain',
  'Osteoporosis',
  'Sciatica',
  'Spinal Stenosis',
  'Upper Back Pain',
];

type Form = Record<string, unknown> | undefined;

const STATUS_LABEL: Record<string, string> = {
  active: 'Subscribed',
  pending: 'Waiting for confirmation',
  unsubscribed: 'Unsubscribed',
};

function field(body: Form, name: string): string | undefined {
  const v = body?.[name];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' ? s : undefined;
}

function list(body: Form, name: string): string[] {
  const v = body?.[name];
  const arr = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return arr.filter((x): x is string => typeof x === 'string' && x.length <= 50 && !/[\r\n]/.test(x)).slice(0, 50);
}

@ApiTags('public')
@Controller('unsubscribe')
export class UnsubscribeController {
  constructor(
    private readonly subscriptions: SubscriptionsService,
    private readonly pages: PagesService,
  ) {}

  private async linkError(reply: FastifyReply, req: FastifyRequest, err: unknown): Promise<void> {
    if (!(err instanceof LinkError)) throw err;
    if (wantsJson(req)) {
      await reply.status(404).send({ statusCode: 404, error: 'Not Found', message: err.message });
      return;
    }
    const heading = 'This link is not valid';
    await reply
      .status(404)
      .headers(this.pages.headers())
      .type('text/html; charset=utf-8')
      .send(this.pages.render('link-error', heading, { heading, message: err.message }));
  }

  /**
   * The preference centre: changes nothing until a form is submitted. Topics and unsubscribing are
   * two separate forms, nothing pre-selected; `?action=unsubscribe` (the mail's "Unsubscribe" link)
   * only puts the unsubscribe form first.
   */
  @Get(':token')
  async page(
    @Param('token') token: string,
    @Query('action') action: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    try {
      const p = await this.subscriptions.preferences(token);
      const topics = [...new Set([...KNOWN_TOPICS, ...p.topics])].map((name) => ({
        name,
        checked: p.topics.includes(name),
      }));
      const others = p.others.filter((o) => o.status !== 'unsubscribed').map((o) => o.name);
      await reply
        .header('Cache-Control', 'no-store')
        .header('Referrer-Policy', 'no-referrer')
        .headers(this.pages.headers())
        .type('text/html; charset=utf-8')
        .send(
          this.pages.render(
            'preferences',
            'Your email preferences',
            {
              token,
              wantsUnsubscribe: action === 'unsubscribe' && p.status !== 'unsubscribed',
              email: p.email,
              newsletter: p.newsletter.name,
              newsletterSlug: p.newsletter.slug,
              nothingLeft: p.status === 'unsubscribed' && others.length === 0,
              active: p.status !== 'unsubscribed',
              hasOthers: others.length > 0,
              others: others.join(', '),
              subscriptions: [
                { name: p.newsletter.name, status: p.status, current: true },
                ...p.others.map((o) => ({ name: o.name, status: o.status, current: false })),
              ].map((s) => ({ ...s, active: s.status === 'active', label: STATUS_LABEL[s.status] })),
              topics,
            },
            { newsletters: [p.newsletter.name] },
          ),
        );
    } catch (err) {
      await this.linkError(reply, req, err);
    }
  }

  /**
   * RFC 8058 one-click (body List-Unsubscribe=One-Click, urlencoded or multipart: no cookies, no redirect)
   * and the preference centre's form.
   */
  @Post(':token')
  @UseGuards(ThrottlerGuard)
  async submit(
    @Param('token') token: string,
    @Body() body: Form,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    try {
      const ctx = consentContext(req, null);
      const action = field(body, 'action');
      const oneClick = field(body, 'List-Unsubscribe') === 'One-Click';
      // Topics without a named action (a form saved from an older page) change topics, never the subscription.
      const topicsOnly = action === 'topics' || (action === undefined && list(body, 'topics').length > 0);
      if (!oneClick && topicsOnly) {
        await this.subscriptions.updateTopics(token, list(body, 'topics'), ctx);
        const p = await this.subscriptions.preferences(token);
        if (wantsJson(req)) {
          await reply.status(200).send({ status: 'updated', topics: list(body, 'topics') });
          return;
        }
        await reply
          .status(200)
          .headers(this.pages.headers())
          .type('text/html; charset=utf-8')
          .send(
            this.pages.render(
              'saved',
              'Preferences saved',
              { newsletter: p.newsletter.name },
              { newsletters: [p.newsletter.name] },
            ),
          );
        return;
      }
      const scope = !oneClick && action === 'unsubscribe-all' ? 'all' : 'one';
      const result = await this.subscriptions.unsubscribe(token, scope, ctx);
      if (wantsJson(req)) {
        await reply.status(200).send({ status: 'unsubscribed' });
        return;
      }
      await reply
        .status(200)
        .header('Cache-Control', 'no-store')
        .headers(this.pages.headers())
        .type('text/html; charset=utf-8')
        .send(
          this.pages.render(
            'unsubscribed',
            'Unsubscribed',
            { newsletters: nameList(result.newsletters), all: scope === 'all' },
            { newsletters: result.newsletters },
          ),
        );
    } catch (err) {
      await this.linkError(reply, req, err);
    }
  }
}
