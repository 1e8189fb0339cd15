import {
  type CanActivate,
  type ExecutionContext,
  HttpException,
  HttpStatus,
  Injectable,
  Logger,
  UnauthorizedException,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { StaffRepository } from '#staff/staff.repository.js';
import { ApiKeysService } from '#subscriptions/api-keys.service.js';

/** Wrong API keys allowed per client IP within the window; the next one gets 429 until it slides. */
export const API_KEY_FAILURES_PER_IP = 20;
export const API_KEY_FAILURE_WINDOW_MINUTES = 15;

/** A 429 that says how long to wait. */
export class ApiKeyThrottled extends HttpException {
  constructor(readonly retryAfterSeconds: number) {
    const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
    super(
      `Too many failed API key attempts: wait ${minutes} minute${minutes === 1 ? '' : 's'} and try again`,
      HttpStatus.TOO_MANY_REQUESTS,
    );
  }
}

/**
 * Checks a bearer API key (stored hashed), throttling wrong ones. Used by the admin routes' guard
 * and by /metrics, which also takes admin keys.
 *
 * Wrong keys are counted per client IP in the sign-in failures table (shared by every api
 * process); past the limit that IP gets 429. A right key costs nothing extra: the count is read
 * only after a failure. Once a process has seen an IP over the limit it refuses that IP without
 * checking keys until the window frees a slot, so guessing stops there; another process refuses
 * its next wrong key.
 */
@Injectable()
export class ApiKeyAuth {
  private readonly logger = new Logger('ApiKeys');
  /** Client IP → when its block ends (ms): this process's memory of the shared count. */
  private readonly blocked = new Map<string, number>();

  constructor(
    private readonly keys: ApiKeysService,
    private readonly failures: StaffRepository,
  ) {}

  /**
   * True for a right admin key; false when there is none or it is wrong (counted). Throws 429 for an
   * IP over the limit. `alsoAccept` lets a caller take another secret first (the metrics token).
   */
  async check(req: FastifyRequest, reply: FastifyReply, alsoAccept?: (bearer: string) => boolean): Promise<boolean> {
    const ip = req.ip;
    const until = this.blocked.get(ip);
    if (until !== undefined) {
      if (until > Date.now()) this.refuse(reply, Math.ceil((until - Date.now()) / 1000));
      this.blocked.delete(ip);
    }
    const m = /^Bearer\s+(\S{1,200})$/i.exec(req.headers.authorization ?? '');
    if (!m) return false; // without a key nothing was guessed: not counted
    if (alsoAccept?.(m[1]) || (await this.keys.verify(m[1]))) return true;
    await this.countFailure(ip, reply);
    return false;
  }

  private async countFailure(ip: string, reply: FastifyReply): Promise<void> {
    const n = await this.failures.recordApiKeyFailure(ip, API_KEY_FAILURE_WINDOW_MINUTES);
    if (n <= API_KEY_FAILURES_PER_IP) return;
    const wait = await this.failures.apiKeyRetryAfterSeconds(
      ip,
      API_KEY_FAILURE_WINDOW_MINUTES,
      API_KEY_FAILURES_PER_IP,
    );
    if (this.blocked.size >= 10_000) this.forgetEnded();
    this.blocked.set(ip, Date.now() + wait * 1000);
    this.logger.warn(`Admin API refused for ${wait} s: ${n} failed API keys from ${ip}`);
    this.refuse(reply, wait);
  }

  private refuse(reply: FastifyReply, seconds: number): never {
    reply.header('retry-after', String(seconds));
    throw new ApiKeyThrottled(seconds);
  }

  private forgetEnded(): void {
    const now = Date.now();
    for (const [ip, until] of this.blocked) if (until <= now) this.blocked.delete(ip);
  }
}

/** Admin routes: `Authorization: Bearer <API key>`. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(private readonly auth: ApiKeyAuth) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    if (await this.auth.check(http.getRequest<FastifyRequest>(), http.getResponse<FastifyReply>())) return true;
    throw new UnauthorizedException('A valid API key is required: send Authorization: Bearer <key>');
  }
}
