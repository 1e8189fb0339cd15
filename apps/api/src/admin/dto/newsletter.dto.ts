import { ApiProperty, ApiPropertyOptional, PartialType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsBoolean,
  IsEmail,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsTimeZone,
  IsUrl,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateNested,
} from 'class-validator';
import { NO_LINE_BREAKS, SLUG } from '../../common/validation.js';

export class ScheduleDto {
  @ApiProperty({ example: '0 9 * * 2' })
  @IsString({ message: 'schedule.cron must be a string' })
  @MaxLength(100, { message: 'schedule.cron must be at most 100 characters' })
  cron: string;

  @ApiProperty({ example: 'America/Chicago' })
  @IsString({ message: 'schedule.timezone must be a string' })
  @IsTimeZone({ message: 'schedule.timezone must be an IANA time zone such as America/Chicago' })
  timezone: string;

  @ApiPropertyOptional({
    enum: ['newsletter', 'local'],
    default: 'newsletter',
    description: "local: the cron's time of day in each reader's own time zone",
  })
  @IsOptional()
  @IsIn(['newsletter', 'local'], { message: 'schedule.delivery must be "newsletter" or "local"' })
  delivery?: 'newsletter' | 'local';
}

export class CreateNewsletterDto {
  @ApiProperty({ example: 'spine-health' })
  @IsString({ message: 'slug must be a string' })
  @Matches(SLUG, { message: 'slug must be lower-case letters, digits and dashes (at most 63)' })
  slug: string;

  @ApiProperty({ example: 'Spine-health' })
  @IsString({ message: 'name must be a string' })
  @MinLength(1, { message: 'name must not be empty' })
  @MaxLength(100, { message: 'name must be at most 100 characters' })
  @Matches(NO_LINE_BREAKS, { message: 'name must not contain line breaks' })
  name: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString({ message: 'description must be a string' })
  @MaxLength(1000, { message: 'description must be at most 1000 characters' })
  description?: string;

  @ApiPropertyOptional({ example: 'Spine-health' })
  @IsOptional()
  @IsString({ message: 'fromName must be a string' })
  @MaxLength(100, { message: 'fromName must be at most 100 characters' })
  @Matches(NO_LINE_BREAKS, { message: 'fromName must not contain line breaks' })
  fromName?: string;

  @ApiPropertyOptional({ example: 'newsletter@spine-health.example' })
  @IsOptional()
  @IsEmail({}, { message: 'fromEmail must be an email address' })
  @MaxLength(254, { message: 'fromEmail must be at most 254 characters' })
  fromEmail?: string;

  @ApiPropertyOptional({ example: 'natural-back-pain-relief', description: 'slug of the lead-magnet guide' })
  @IsOptional()
  @IsString({ message: 'guide must be a guide slug' })
  @Matches(SLUG, { message: 'guide must be a guide slug' })
  guide?: string;

  @ApiPropertyOptional({ example: 'https://www.spine-health.example/feed.xml' })
  @IsOptional()
  @IsUrl(
    { require_tld: false, protocols: ['http', 'https'], require_protocol: true },
    { message: 'feedUrl must be an http(s) URL' },
  )
  @MaxLength(2048, { message: 'feedUrl must be at most 2048 characters' })
  feedUrl?: string;

  @ApiPropertyOptional({
    example: 7,
    default: 7,
    minimum: 1,
    maximum: 365,
    description: 'how old (in days) an article not yet carried may be and still go into the next digest',
  })
  @IsOptional()
  @IsInt({ message: 'lookbackDays must be a whole number of days' })
  @Min(1, { message: 'lookbackDays must be between 1 and 365' })
  @Max(365, { message: 'lookbackDays must be between 1 and 365' })
  lookbackDays?: number;

  @ApiPropertyOptional({
    example: '{{newsletter}}: {{firstTitle}}{{#if more}} and {{more}} more{{/if}}',
    description:
      "the subject of this newsletter's digests unless a digest gives its own: a Handlebars template over newsletter, firstTitle, count, more, date (≤ 200 characters, one line)",
  })
  @IsOptional()
  @IsString({ message: 'subjectTemplate must be a string' })
  @MaxLength(200, { message: 'subjectTemplate must be at most 200 characters' })
  subjectTemplate?: string;

  @ApiPropertyOptional({
    enum: ['off', 'order', 'only'],
    default: 'order',
    description:
      "what each reader's digest carries: their topics' articles first (order), only those or the whole issue when none match (only), or one order for all (off)",
  })
  @IsOptional()
  @IsIn(['off', 'order', 'only'], { message: 'personalize must be one of off, order, only' })
  personalize?: 'off' | 'order' | 'only';

  @ApiPropertyOptional({
    default: true,
    description: 'public archive, web version and RSS feed of its sent issues; false: those routes answer 404',
  })
  @IsOptional()
  @IsBoolean({ message: 'archive must be true or false' })
  archive?: boolean;

  @ApiPropertyOptional({
    default: true,
    description:
      'digest article links go through /c/:token and count clicks; false: they link straight to the articles',
  })
  @IsOptional()
  @IsBoolean({ message: 'tracking must be true or false' })
  tracking?: boolean;

  @ApiPropertyOptional({
    example: 'spine',
    nullable: true,
    description:
      'the SMTP_ROUTES entry that all mail of this newsletter leaves through; unset or null: SMTP_URL (null clears it)',
  })
  @IsOptional()
  @IsString({ message: 'smtpRoute must be the name of one of the SMTP_ROUTES' })
  @MaxLength(63, { message: 'smtpRoute must be the name of one of the SMTP_ROUTES' })
  smtpRoute?: string | null;

  @ApiPropertyOptional({ description: 'the default newsletter for subscriptions that name none' })
  @IsOptional()
  @IsBoolean({ message: 'isDefault must be true or false' })
  isDefault?: boolean;

  @ApiPropertyOptional({ type: ScheduleDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => ScheduleDto)
  schedule?: ScheduleDto;
}

export class UpdateNewsletterDto extends PartialType(CreateNewsletterDto) {}
