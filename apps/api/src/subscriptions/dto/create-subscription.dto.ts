import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsOptional, IsString, IsTimeZone, IsUrl, Matches, MaxLength } from 'class-validator';
import { NO_LINE_BREAKS, SLUG, ToArray } from '../../common/validation.js';

export class CreateSubscriptionDto {
  @ApiProperty({ example: 'reader@example.com' })
  @IsString({ message: 'email must be a string' })
  @MaxLength(254, { message: 'email must be at most 254 characters' })
  email: string;

  @ApiPropertyOptional({
    type: [String],
    example: ['spine-health'],
    description: 'Newsletter slugs; default: the default newsletter',
  })
  @IsOptional()
  @ToArray()
  @IsArray({ message: 'newsletters must be an array of newsletter slugs' })
  @ArrayMaxSize(10, { message: 'newsletters must name at most 10 newsletters' })
  @IsString({ each: true, message: 'newsletters must be an array of newsletter slugs' })
  @Matches(SLUG, { each: true, message: 'newsletters contains an invalid slug' })
  newsletters?: string[];

  @ApiPropertyOptional({ example: 'Pat' })
  @IsOptional()
  @IsString({ message: 'name must be a string' })
  @MaxLength(100, { message: 'name must be at most 100 characters' })
  @Matches(NO_LINE_BREAKS, { message: 'name must not contain line breaks' })
  name?: string;

  @ApiPropertyOptional({ type: [String], example: ['Neck Pain'] })
  @IsOptional()
  @ToArray()
  @IsArray({ message: 'topics must be an array of strings' })
  @ArrayMaxSize(20, { message: 'topics must have at most 20 entries' })
  @IsString({ each: true, message: 'topics must be an array of strings' })
  @MaxLength(50, { each: true, message: 'topics entries must be at most 50 characters' })
  @Matches(NO_LINE_BREAKS, { each: true, message: 'topics must not contain line breaks' })
  topics?: string[];

  @ApiPropertyOptional({ example: 'America/Chicago' })
  @IsOptional()
  @IsString({ message: 'timezone must be a string' })
  @IsTimeZone({ message: 'timezone must be an IANA time zone such as America/Chicago' })
  timezone?: string;

  @ApiPropertyOptional({ example: 'https://www.spine-health.example/conditions/upper-back-pain' })
  @IsOptional()
  @IsString({ message: 'source must be a URL' })
  @MaxLength(2048, { message: 'source must be at most 2048 characters' })
  @IsUrl(
    { require_tld: false, protocols: ['http', 'https'], require_protocol: true },
    { message: 'source must be an http(s) URL' },
  )
  source?: string;

  /** Honeypot: hidden from people; bots fill it in. */
  @ApiPropertyOptional({ description: 'Leave empty (spam trap)' })
  @IsOptional()
  @IsString({ message: 'website must be a string' })
  @MaxLength(500, { message: 'website must be at most 500 characters' })
  website?: string;
}
