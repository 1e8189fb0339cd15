import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayNotEmpty,
  IsArray,
  IsBoolean,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateBy,
  type ValidationOptions,
} from 'class-validator';
import { WEBHOOK_EVENTS, type WebhookEventType, isWebhookEvent } from '#subscriptions/webhooks-out/webhook-events.js';
import { NO_LINE_BREAKS } from '../../common/validation.js';

/** Every entry is a known event; the message names the ones that are not. */
function IsWebhookEventList(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isWebhookEventList',
      validator: {
        validate: (value: unknown) => Array.isArray(value) && value.every(isWebhookEvent),
        defaultMessage: (args) => {
          const unknown = Array.isArray(args?.value) ? args.value.filter((v) => !isWebhookEvent(v)) : [];
          const named = unknown
            .slice(0, 5)
            .map((v) => (typeof v === 'string' ? `"${v.replace(/[\r\n]/g, ' ').slice(0, 60)}"` : typeof v))
            .join(', ');
          return `events: unknown event ${named}; known events: ${WEBHOOK_EVENTS.join(', ')}`;
        },
      },
    },
    options,
  );
}

const URL_RULES = [
  IsString({ message: 'url must be a string' }),
  MaxLength(2000, { message: 'url must be at most 2000 characters' }),
  Matches(NO_LINE_BREAKS, { message: 'url must not contain line breaks' }),
  Matches(/^https?:\/\//i, { message: 'url must be an http:// or https:// URL' }),
];

const EVENT_RULES = [
  IsArray({ message: 'events must be an array of event names' }),
  ArrayNotEmpty({ message: 'events must name at least one event' }),
  ArrayMaxSize(20, { message: 'events must have at most 20 entries' }),
  IsWebhookEventList(),
];

function apply(rules: PropertyDecorator[]): PropertyDecorator {
  return (target, key) => rules.forEach((r) => r(target, key));
}

/** `POST /v1/webhook-endpoints` */
export class CreateWebhookEndpointDto {
  @ApiProperty({ example: 'https://crm.example.com/hooks/mailroom' })
  @apply(URL_RULES)
  url: string;

  @ApiProperty({ enum: WEBHOOK_EVENTS, isArray: true, example: ['subscription.confirmed'] })
  @apply(EVENT_RULES)
  events: WebhookEventType[];
}

/** `PATCH /v1/webhook-endpoints/:id`: only the fields given change. */
export class UpdateWebhookEndpointDto {
  @ApiPropertyOptional({ example: 'https://crm.example.com/hooks/mailroom' })
  @IsOptional()
  @apply(URL_RULES)
  url?: string;

  @ApiPropertyOptional({ enum: WEBHOOK_EVENTS, isArray: true })
  @IsOptional()
  @apply(EVENT_RULES)
  events?: WebhookEventType[];

  @ApiPropertyOptional({ description: 'false pauses deliveries (they wait, and go out once enabled again)' })
  @IsOptional()
  @IsBoolean({ message: 'enabled must be true or false' })
  enabled?: boolean;
}

/** `GET /v1/webhook-endpoints/:id/deliveries` */
export class DeliveriesQueryDto {
  @ApiPropertyOptional({ description: 'the `next` of the previous page' })
  @IsOptional()
  @IsString({ message: 'before must be a delivery id' })
  @Matches(/^[0-9a-f-]{36}$/i, { message: 'before must be a delivery id' })
  before?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 200, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'limit must be a whole number' })
  @Min(1, { message: 'limit must be at least 1' })
  @Max(200, { message: 'limit must be at most 200' })
  limit?: number;
}
