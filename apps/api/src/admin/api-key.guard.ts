import { type CanActivate, type ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ApiKeysService } from '../../../../libs/subscriptions/src/api-keys.service.js';

/** Admin routes: `Authorization: Bearer <API key>`; keys are stored hashed. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(private readonly keys: ApiKeysService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<FastifyRequest>();
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S{1,200})$/i.exec(header);
    if (!m || !(await this.keys.verify(m[1]))) {
      throw new UnauthorizedException('A valid API key is required: send Authorization: Bearer <key>');
    }
    return true;
  }
}
