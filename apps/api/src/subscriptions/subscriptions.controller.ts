import { Body, Controller, Get, HttpCode, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiSeeOtherResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
} from '@nestjs/swagger';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SubscriptionsService } from '#subscriptions/subscriptions.service.js';
import { asksForHtml, consentContext } from '../common/request-context.js';
import { PagesService } from '../pages/pages.service.js';
import { KNOWN_TOPICS } from '../unsubscribe/unsubscribe.controller.js';
import { CreateSubscriptionDto } from './dto/create-subscription.dto.js';
import { embedSnippet } from './embed-snippet.js';

/** True when `?newsletter=` is absent (the default newsletter) or names a newsletter that exists. */
function known(newsletters: { slug: string }[], asked: string | undefined): boolean {
  return asked === undefined || asked === '' || newsletters.some((n) => n.slug === asked);
}

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
  @ApiSeeOtherResponse({
    description: 'A browser (Accept: text/html): to the "check your inbox" page (a reload does not post again)',
  })
  @ApiBadRequestResponse({ description: 'Invalid input; the message names the field' })
  @ApiTooManyRequestsResponse({ description: 'Too many requests from this IP' })
  async subscribe(
    @Body() dto: CreateSubscriptionDto,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.subscriptions.subscribe(dto, consentContext(req, dto.source));
    if (asksForHtml(req)) {
      // Post/redirect/get: the page depends on the newsletters asked for, never on what is known
      // about the address. Relative, so it works wherever the form was posted from.
      const query = new URLSearchParams(
        (dto.newsletters ?? []).map((slug): [string, string] => ['newsletter', slug]),
      ).toString();
      await reply.redirect(`/subscribe/check-inbox${query ? `?${query}` : ''}`, 303);
      return;
    }
    await reply.status(202).send({ status: 'pending' });
  }

  /** Where a signup form lands: "check your inbox", branded for the newsletters asked for. */
  @Get('subscribe/check-inbox')
  async checkInbox(@Query('newsletter') raw: string | string[] | undefined, @Res() reply: FastifyReply): Promise<void> {
    const slugs = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).slice(0, 10);
    const box = await this.subscriptions.signupBox(undefined, undefined);
    const known = slugs.length > 0 ? slugs : box.newsletters.filter((n) => n.checked).map((n) => n.slug);
    const newsletters = box.newsletters.filter((n) => known.includes(n.slug)).map((n) => n.name);
    await reply
      .header('cache-control', 'no-store')
      .headers(this.pages.headers({ frameable: true }))
      .type('text/html; charset=utf-8')
      .send(this.pages.render('check-inbox', 'Check your inbox', {}, { newsletters }));
  }

  @Get('subscribe')
  async signupPage(
    @Query('newsletter') newsletter: string | undefined,
    @Query('source') source: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const box = await this.subscriptions.signupBox(newsletter, source);
    if (!known(box.newsletters, newsletter)) return this.unknownNewsletter(reply, box.newsletters, '/subscribe');
    const html = this.pages.render(
      'subscribe',
      'Subscribe',
      { ...box, topics: SIGNUP_TOPICS },
      { newsletters: box.brand ? [box.brand] : [] },
    );
    // Publishers may frame the signup page (and so its answer, "check your inbox").
    await reply
      .headers(this.pages.headers({ frameable: true, timezoneField: true }))
      .type('text/html; charset=utf-8')
      .send(html);
  }

  /** `?newsletter=` naming no newsletter: a 404 page listing the real ones, not another newsletter's form. */
  private async unknownNewsletter(
    reply: FastifyReply,
    newsletters: { slug: string; name: string }[],
    path: string,
  ): Promise<void> {
    const heading = 'This newsletter does not exist';
    await reply
      .status(404)
      .headers(this.pages.headers({ frameable: true }))
      .type('text/html; charset=utf-8')
      .send(
        this.pages.render('unknown-newsletter', heading, {
          heading,
          newsletters: newsletters.map((n) => ({ ...n, href: `${path}?newsletter=${encodeURIComponent(n.slug)}` })),
        }),
      );
  }

  /** For publishers: the signup box to paste at the end of an article, with a live preview. */
  @Get('subscribe/embed')
  async embedPage(@Query('newsletter') newsletter: string | undefined, @Res() reply: FastifyReply): Promise<void> {
    const box = await this.subscriptions.signupBox(newsletter, undefined);
    if (!known(box.newsletters, newsletter)) return this.unknownNewsletter(reply, box.newsletters, '/subscribe/embed');
    const chosen = box.newsletters.find((n) => n.checked);
    const snippet = embedSnippet({
      publicUrl: this.pages.publicUrl,
      newsletter: chosen?.slug,
      guideTitle: box.guideTitle,
      privacyUrl: this.pages.privacyUrl,
    });
    const html = this.pages.render(
      'embed',
      'Signup box for your articles',
      { snippet, newsletters: box.newsletters, chosen: chosen?.slug, guideTitle: box.guideTitle },
      { newsletters: [], wide: true },
    );
    // The preview carries the snippet's time-zone script.
    await reply
      .headers(this.pages.headers({ timezoneField: true }))
      .type('text/html; charset=utf-8')
      .send(html);
  }
}
