import { Body, Controller, Get, HttpCode, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBadRequestResponse, ApiTags, ApiTooManyRequestsResponse } from '@nestjs/swagger';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SubscriptionsService } from '../../../../libs/subscriptions/src/subscriptions.service.js';
import { consentContext, wantsHtml } from '../common/request-context.js';
import { PagesService } from '../pages/pages.service.js';
import { KNOWN_TOPICS } from '../unsubscribe/unsubscribe.controller.js';
import { CreateSubscriptionDto } from './dto/create-subscription.dto.js';
import { embedSnippet } from './embed-snippet.js';

/** Topics a reader may pick when signing up (optional; changeable later in the preference centre). */
const SIGNUP_TOPICS = KNOWN_TOPICS;

@ApiTags('public')
@Controller()
export class SubscriptionsController {
  constructor(
    private readonly subscriptions: SubscriptionsService,
    private readonly pages: PagesService,
  ) {}

  @Post('v1/subscriptions')
  @UseGuards(ThrottlerGuard)
  @HttpCode(202)
  @ApiAcceptedResponse({ description: 'Always { "status": "pending" }, whether or not the address is known' })
  @ApiBadRequestResponse({ description: 'Invalid input; the message names the field' })
  @ApiTooManyRequestsResponse({ description: 'Too many requests from this IP' })
  async subscribe(
    @Body() dto: CreateSubscriptionDto,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    // The page depends on the newsletters asked for, never on what is known about the address.
    const { newsletters } = await this.subscriptions.subscribe(dto, consentContext(req, dto.source));
    if (wantsHtml(req)) {
      await reply
        .status(202)
        .headers(this.pages.headers({ frameable: true }))
        .type('text/html; charset=utf-8')
        .send(this.pages.render('check-inbox', 'Check your inbox', {}, { newsletters }));
      return;
    }
    await reply.status(202).send({ status: 'pending' });
  }

  @Get('subscribe')
  async signupPage(
    @Query('newsletter') newsletter: string | undefined,
    @Query('source') source: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const box = await this.subscriptions.signupBox(newsletter, source);
    const html = this.pages.render(
      'subscribe',
      'Subscribe',
      { ...box, topics: SIGNUP_TOPICS },
      { newsletters: box.brand ? [box.brand] : [] },
    );
    // Publishers may frame the signup page (and so its answer, "check your inbox").
    await reply
      .headers(this.pages.headers({ frameable: true }))
      .type('text/html; charset=utf-8')
      .send(html);
  }

  /** For publishers: the signup box to paste at the end of an article, with a live preview. */
  @Get('subscribe/embed')
  async embedPage(@Query('newsletter') newsletter: string | undefined, @Res() reply: FastifyReply): Promise<void> {
    const box = await this.subscriptions.signupBox(newsletter, undefined);
    const chosen = box.newsletters.find((n) => n.checked);
    const snippet = embedSnippet({
      publicUrl: this.pages.publicUrl,
      newsletter: chosen?.slug,
      guideTitle: box.guideTitle,
    });
    const html = this.pages.render(
      'embed',
      'Signup box for your articles',
      { snippet, newsletters: box.newsletters, chosen: chosen?.slug },
      { newsletters: [], wide: true },
    );
    await reply.headers(this.pages.headers()).type('text/html; charset=utf-8').send(html);
  }
}
