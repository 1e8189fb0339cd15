import { Controller, Delete, HttpCode, NotFoundException, Param, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { SuppressionsService } from '../../../../libs/subscriptions/src/suppressions.service.js';
import { ApiKeyGuard } from './api-key.guard.js';

@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/suppressions')
export class SuppressionsController {
  constructor(private readonly suppressions: SuppressionsService) {}

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
