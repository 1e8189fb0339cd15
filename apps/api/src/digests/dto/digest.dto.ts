import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
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
    enum: ['newsletter', 'local'],
    default: 'newsletter',
    description: "local: sendAt's date and time of day (any offset ignored) in each reader's own time zone",
  })
  @IsOptional()
  @IsIn(['newsletter', 'local'], { message: 'delivery must be "newsletter" or "local"' })
  delivery?: 'newsletter' | 'local';

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

  @ApiPropertyOptional({
    example: 'Five ways to ease sciatica this winter',
    description: 'the subject (one line, ≤ 150)',
  })
  @IsOptional()
  @IsString({ message: 'subject must be a string' })
  @MaxLength(150, { message: 'subject must be at most 150 characters' })
  subject?: string;

  @ApiPropertyOptional({
    example: 'Plus: what your mattress has to do with it.',
    description: 'the inbox preview: first text of the HTML body (hidden) and of the text part (one line, ≤ 200)',
  })
  @IsOptional()
  @IsString({ message: 'preheader must be a string' })
  @MaxLength(200, { message: 'preheader must be at most 200 characters' })
  preheader?: string;

  @ApiPropertyOptional({
    example: 'This week our physical therapists answer **your** questions.',
    description:
      'Markdown shown after the greeting (≤ 5 000); raw HTML and images are not kept, links only http(s) and mailto',
  })
  @IsOptional()
  @IsString({ message: 'intro must be a string' })
  @MaxLength(5000, { message: 'intro must be at most 5000 characters' })
  intro?: string;
}

export class TestDigestDto {
  @ApiProperty({ example: 'marketer@example.com' })
  @IsString({ message: 'to must be an email address' })
  @MaxLength(254, { message: 'to must be at most 254 characters' })
  to: string;
}
