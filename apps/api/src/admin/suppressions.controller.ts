import { Body, Controller, Delete, HttpCode, NotFoundException, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { SuppressionsService } from '#subscriptions/suppressions.service.js';
import { NO_LINE_BREAKS } from '../common/validation.js';
import { ApiKeyGuard } from './api-key.guard.js';

/** `POST /v1/suppressions`: an address to stop mailing, with the reason staff give. */
export class CreateSuppressionDto {
  @ApiProperty({ example: 'reader@example.com' })
  @IsString({ message: 'email must be a string' })
  @MaxLength(254, { message: 'email must be at most 254 characters' })
  email: string;

  @ApiPropertyOptional({ example: 'Asked by phone to receive nothing more' })
  @IsOptional()
  @IsString({ message: 'reason must be a string' })
  @MaxLength(500, { message: 'reason must be at most 500 characters' })
  @Matches(NO_LINE_BREAKS, { message: 'reason must not contain line breaks' })
  reason?: string;
}

@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/suppressions')
export class SuppressionsController {
  constructor(private readonly suppressions: SuppressionsService) {}

  /**
   * Suppresses an address by hand: it gets no further mail (like a hard bounce). 201 whether or
   * not it was listed already (`created` says which); an address already listed keeps its reason.
   */
  @Post()
  @HttpCode(201)
  @ApiCreatedResponse({ description: '{ email, reason, created }' })
  async suppress(@Body() dto: CreateSuppressionDto): Promise<{ email: string; reason: string; created: boolean }> {
    return this.suppressions.suppress(dto.email, dto.reason ?? null, 'admin API');
  }

  /**
   * Lifts the suppression of an address: it may sign up again, but no subscription becomes
   * active without a new double opt-in. 204; 404 when the address is not suppressed.
   */
  @Delete(':email')
  @HttpCode(204)
  async lift(@Param('email') email: string): Promise<void> {
    const outcome = await this.suppressions.lift(email, 'admin API');
    if (!outcome.lifted) throw new NotFoundException(`${email.trim().toLowerCase()} is not on the suppression list`);
  }
}
