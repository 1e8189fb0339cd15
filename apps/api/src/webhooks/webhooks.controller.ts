import { Body, Controller, Headers, HttpCode, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { type WebhookResult, WebhooksService } from '#subscriptions/webhooks.service.js';
import { ApiKeyGuard } from '../admin/api-key.guard.js';

/** Bounce and complaint events from mail providers; each authenticated its own way. */
@ApiTags('webhooks')
@Controller('v1/webhooks')
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Post('generic')
  @HttpCode(200)
  @ApiBearerAuth()
  @UseGuards(ApiKeyGuard)
  generic(@Body() body: unknown): Promise<WebhookResult> {
    return this.webhooks.generic(body);
  }

  @Post('mailgun')
  @HttpCode(200)
  mailgun(@Body() body: unknown): Promise<WebhookResult> {
    return this.webhooks.mailgun(body);
  }

  @Post('postmark')
  @HttpCode(200)
  postmark(@Headers('authorization') authorization: string | undefined, @Body() body: unknown): Promise<WebhookResult> {
    return this.webhooks.postmark(authorization, body);
  }

  /**
   * Amazon SES through SNS: the `?token=` and the SNS message signature are both checked
   * (401 otherwise; 503 when the signing certificate cannot be fetched, so SNS retries).
   * SNS posts with Content-Type text/plain: the body arrives as a string.
   */
  @Post('ses')
  @HttpCode(200)
  ses(@Query('token') token: string | undefined, @Body() body: unknown): Promise<WebhookResult> {
    return this.webhooks.ses(token, body);
  }
}
