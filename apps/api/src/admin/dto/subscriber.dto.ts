import { ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsObject, IsOptional, IsString, IsTimeZone, Matches, MaxLength } from 'class-validator';
import { NO_LINE_BREAKS } from '../../common/validation.js';

export class PatchSubscriberDto {
  @ApiPropertyOptional()
  @IsOptional()
  @IsString({ message: 'name must be a string' })
  @MaxLength(100, { message: 'name must be at most 100 characters' })
  @Matches(NO_LINE_BREAKS, { message: 'name must not contain line breaks' })
  name?: string;

  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray({ message: 'topics must be an array of strings' })
  @ArrayMaxSize(20, { message: 'topics must have at most 20 entries' })
  @IsString({ each: true, message: 'topics must be an array of strings' })
  @MaxLength(50, { each: true, message: 'topics entries must be at most 50 characters' })
  topics?: string[];

  @ApiPropertyOptional()
  @IsOptional()
  @IsTimeZone({ message: 'timezone must be an IANA time zone such as America/Chicago' })
  timezone?: string;

  @ApiPropertyOptional({ example: { 'spine-health': 'unsubscribed' } })
  @IsOptional()
  @IsObject({ message: 'newsletters must be an object of slug → "unsubscribed"' })
  newsletters?: Record<string, string>;
}
