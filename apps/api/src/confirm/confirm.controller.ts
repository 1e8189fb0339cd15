import { Controller, Get, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LinkError, SubscriptionsService } from '#subscriptions/subscriptions.service.js';
import { consentContext, wantsJson } from '../common/request-context.js';
import { nameList, PagesService } from '../pages/pages.service.js';

const TOKEN_RE = /^[A-Za-z0-9_-]{20,100}$/;

@ApiTags('public')
@Controller('confirm')
export class ConfirmController {
  constructor(
    private readonly subscriptions: SubscriptionsService,
    private readonly pages: PagesService,
  ) {}

  private async linkError(reply: FastifyReply, req: FastifyRequest, err: unknown): Promise<void> {
    if (!(err instanceof LinkError)) throw err;
    const status = err.kind === 'unknown' ? 404 : 400;
    if (wantsJson(req)) {
      await reply
        .status(status)
        .send({ statusCode: status, error: status === 404 ? 'Not Found' : 'Bad Request', message: err.message });
      return;
    }
    const heading =
      err.kind === 'expired'
        ? 'This link has expired'
        : err.kind === 'used'
          ? 'This link was already used'
          : 'This link is not valid';
    await reply
      .status(status)
      .headers(this.pages.headers())
      .type('text/html; charset=utf-8')
      .send(this.pages.render('link-error', heading, { heading, message: err.message }));
  }

  /** Shows a button only: mail scanners that prefetch links must not confirm anything. */
  @Get(':token')
  async page(@Param('token') token: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    try {
      if (!TOKEN_RE.test(token)) throw new LinkError('unknown', 'This confirmation link is not valid.');
      const { newsletters } = await this.subscriptions.peekConfirm(token);
      await reply
        .header('Cache-Control', 'no-store')
        .header('Referrer-Policy', 'no-referrer')
        .headers(this.pages.headers())
        .type('text/html; charset=utf-8')
        .send(
          this.pages.render(
            'confirm',
            'Confirm your subscription',
            { token, newsletters: nameList(newsletters) },
            { newsletters },
          ),
        );
    } catch (err) {
      await this.linkError(reply, req, err);
    }
  }

  @Post(':token')
  @UseGuards(ThrottlerGuard)
  async confirm(@Param('token') token: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    try {
      if (!TOKEN_RE.test(token)) throw new LinkError('unknown', 'This confirmation link is not valid.');
      const result = await this.subscriptions.confirm(token, consentContext(req, null));
      if (wantsJson(req)) {
        await reply.status(200).send({ status: result.status });
        return;
      }
      await reply
        .status(200)
        .header('Cache-Control', 'no-store')
        .headers(this.pages.headers())
        .type('text/html; charset=utf-8')
        .send(
          this.pages.render(
            'confirmed',
            "You're subscribed",
            { newsletters: nameList(result.newsletters), guides: result.guides },
            { newsletters: result.newsletters },
          ),
        );
    } catch (err) {
      await this.linkError(reply, req, err);
    }
  }
}
