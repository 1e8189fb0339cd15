import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { normalizeEmail } from '#subscriptions/email.js';
import { StaffRepository } from './staff.repository.js';
import { StaffSessionsService } from './staff-sessions.service.js';
import { StaffUsersService, type StaffUserRow } from './staff-users.service.js';

export type SignInResult =
  | { ok: true; user: StaffUserRow; token: string; expiresAt: Date }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'rate-limited'; retryAfterSeconds: number };

/**
 * Sign-in: rate limited per e-mail address and per client IP (failures within a window), one
 * generic answer for an unknown address and a wrong password alike.
 */
@Injectable()
export class StaffAuthService {
  private readonly logger = new Logger('ConsoleSignIn');

  constructor(
    private readonly users: StaffUsersService,
    private readonly sessions: StaffSessionsService,
    private readonly repo: StaffRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async signIn(
    input: { email: unknown; password: unknown },
    ctx: { ip: string | null; userAgent: string | null },
  ): Promise<SignInResult> {
    const { loginFailuresPerEmail, loginFailuresPerIp, loginWindowMinutes } = this.config.console;
    const n = normalizeEmail(input.email);
    // Unparseable input still counts against the IP, under what was typed (bounded).
    const key = n.ok
      ? n.email
      : String(input.email ?? '')
          .slice(0, 254)
          .toLowerCase();
    const ip = ctx.ip;
    const counts = await this.repo.countFailures(key, ip, loginWindowMinutes);
    if (counts.email >= loginFailuresPerEmail || counts.ip >= loginFailuresPerIp) {
      this.logger.warn(`Sign-in refused (rate limited): ${key} from ${ip ?? 'unknown IP'}`);
    }
    if (counts.email >= loginFailuresPerEmail) {
      return {
        ok: false,
        reason: 'rate-limited',
        retryAfterSeconds: await this.repo.retryAfterSeconds({ email: key }, loginWindowMinutes, loginFailuresPerEmail),
      };
    }
    if (counts.ip >= loginFailuresPerIp) {
      return {
        ok: false,
        reason: 'rate-limited',
        retryAfterSeconds: await this.repo.retryAfterSeconds({ ip }, loginWindowMinutes, loginFailuresPerIp),
      };
    }
    const user = await this.users.verify(input.email, input.password);
    if (!user) {
      await this.repo.insertFailure(key, ip, loginWindowMinutes);
      this.logger.warn(`Sign-in failed: ${key} from ${ip ?? 'unknown IP'}`);
      return { ok: false, reason: 'invalid' };
    }
    await this.repo.clearFailures(user.email);
    const session = await this.sessions.create(user.id, ctx);
    this.logger.log(`Signed in: ${user.email} (${user.role}) from ${ip ?? 'unknown IP'}`);
    return { ok: true, user, ...session };
  }
}
