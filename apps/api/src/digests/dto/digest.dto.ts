import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import { IsISO8601, IsOptional, IsString, MaxLength } from 'class-validator';

export class CreateDigestDto {
  @ApiPropertyOptional({ example: '2026-12-01T15:00:00Z', description: 'when to send; now when absent' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'sendAt must be an ISO 8601 date-time' })
  sendAt?: string;
}

export class TestDigestDto {
  @ApiProperty({ example: 'marketer@example.com' })
  @IsString({ message: 'to must be an email address' })
  @MaxLength(254, { message: 'to must be at most 254 characters' })
  to: string;
}
