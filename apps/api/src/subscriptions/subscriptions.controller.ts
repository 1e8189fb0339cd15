import { Body, Controller, Get, HttpCode, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBadRequestResponse, ApiTags, ApiTooManyRequestsResponse } from '@nestjs/swagger';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SubscriptionsService } from '../../../../libs/subscriptions/src/subscriptions.service.js';
import { consentContext, wantsHtml } from '../common/request-context.js';
import { PagesService } from '../pages/pages.service.js';
import { CreateSubscriptionDto } from './dto/create-subscription.dto.js';

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
    await this.subscriptions.subscribe(dto, consentContext(req, dto.source));
    if (wantsHtml(req)) {
      await reply
        .status(202)
        .type('text/html; charset=utf-8')
        .send(this.pages.render('check-inbox', 'Check your inbox'));
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
    const html = this.pages.render('subscribe', 'Subscribe', await this.subscriptions.signupBox(newsletter, source));
    await reply.type('text/html; charset=utf-8').send(html);
  }
}
