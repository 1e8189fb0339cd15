import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsISO8601,
  IsOptional,
  IsString,
  IsUrl,
  MaxLength,
} from 'class-validator';

export class CreateDigestDto {
  @ApiPropertyOptional({ example: '2026-12-01T15:00:00Z', description: 'when to send; now when absent' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'sendAt must be an ISO 8601 date-time' })
  sendAt?: string;

  @ApiPropertyOptional({
    type: [String],
    example: ['https://www.spine-health.example/conditions/upper-back-pain/all-about-upper-back-pain'],
    description:
      'article URLs: the digest carries exactly these, in this order; absent → the latest new articles when it is due',
  })
  @IsOptional()
  @IsArray({ message: 'articles must be an array of article URLs' })
  @ArrayMinSize(1, { message: 'articles must name at least one article' })
  @ArrayMaxSize(50, { message: 'articles must name at most 50 articles' })
  @IsString({ each: true, message: 'articles must be an array of article URLs' })
  @MaxLength(2048, { each: true, message: 'articles entries must be at most 2048 characters' })
  @IsUrl(
    { require_tld: false, protocols: ['http', 'https'], require_protocol: true },
    { each: true, message: 'articles must be an array of http(s) article URLs' },
  )
  articles?: string[];
}

export class TestDigestDto {
  @ApiProperty({ example: 'marketer@example.com' })
  @IsString({ message: 'to must be an email address' })
  @MaxLength(254, { message: 'to must be at most 254 characters' })
  to: string;
}
