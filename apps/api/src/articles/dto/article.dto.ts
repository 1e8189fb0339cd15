import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  IsArray,
  IsISO8601,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  MaxLength,
  MinLength,
} from 'class-validator';
import { NO_LINE_BREAKS, SLUG } from '../../common/validation.js';

const URL_OPTS = { require_tld: false, protocols: ['http', 'https'], require_protocol: true };

export class UpsertArticleDto {
  @ApiProperty({ example: 'https://www.spine-health.example/conditions/upper-back-pain/all-about-upper-back-pain' })
  @IsString({ message: 'url must be a string' })
  @MaxLength(2048, { message: 'url must be at most 2048 characters' })
  @IsUrl(URL_OPTS, { message: 'url must be an http(s) URL' })
  url: string;

  @ApiProperty({ example: 'All About Upper Back Pain' })
  @IsString({ message: 'title must be a string' })
  @MinLength(1, { message: 'title must not be empty' })
  @MaxLength(300, { message: 'title must be at most 300 characters' })
  @Matches(NO_LINE_BREAKS, { message: 'title must not contain line breaks' })
  title: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString({ message: 'summary must be a string' })
  @MaxLength(2000, { message: 'summary must be at most 2000 characters' })
  summary?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString({ message: 'imageUrl must be a string' })
  @MaxLength(2048, { message: 'imageUrl must be at most 2048 characters' })
  @IsUrl(URL_OPTS, { message: 'imageUrl must be an http(s) URL' })
  imageUrl?: string;

  @ApiPropertyOptional({ type: [String], example: ['Upper Back Pain'] })
  @IsOptional()
  @IsArray({ message: 'topics must be an array of strings' })
  @ArrayMaxSize(20, { message: 'topics must have at most 20 entries' })
  @IsString({ each: true, message: 'topics must be an array of strings' })
  @MaxLength(50, { each: true, message: 'topics entries must be at most 50 characters' })
  topics?: string[];

  @ApiProperty({ example: '2026-11-24T08:00:00Z' })
  @IsISO8601({ strict: true }, { message: 'publishedAt must be an ISO 8601 date-time' })
  publishedAt: string;

  @ApiPropertyOptional({
    type: [String],
    example: ['spine-health'],
    description: 'default: the default newsletter (new articles only)',
  })
  @IsOptional()
  @IsArray({ message: 'newsletters must be an array of newsletter slugs' })
  @ArrayMaxSize(20, { message: 'newsletters must name at most 20 newsletters' })
  @IsString({ each: true, message: 'newsletters must be an array of newsletter slugs' })
  @Matches(SLUG, { each: true, message: 'newsletters contains an invalid slug' })
  newsletters?: string[];
}
