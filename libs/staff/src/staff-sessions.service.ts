import { Inject, Injectable } from '@nestjs/common';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import type { StaffRole } from '#db/entities/index.js';
import { StaffRepository } from './staff.repository.js';

export interface StaffPrincipal {
  sessionId: string;
  userId: number;
  email: string;
  role: StaffRole;
  /** The per-session CSRF token every console form carries as `_csrf`. */
  csrfToken: string;
}

/** The cookie value is 256 random bits; the database holds only its SHA-256. */
export function sessionTokenHash(token: string): Buffer {
  return createHash('sha256').update(`staff-session:${token}`).digest();
}

const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Console sessions: sliding idle expiry within an absolute lifetime, a CSRF secret each. */
@Injectable()
export class StaffSessionsService {
  constructor(
    private readonly repo: StaffRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async create(
    userId: number,
    ctx: { ip: string | null; userAgent: string | null },
  ): Promise<{ token: string; expiresAt: Date }> {
    const token = randomBytes(32).toString('base64url');
    const { expiresAt } = await this.repo.insertSession({
      tokenHash: sessionTokenHash(token),
      userId,
      csrfSecret: randomBytes(32).toString('base64url'),
      ip: ctx.ip,
      userAgent: ctx.userAgent?.slice(0, 500) ?? null,
      maxMinutes: this.config.console.sessionMaxMinutes,
    });
    // Sessions that ended are removed now and then, when someone signs in.
    await this.repo.deleteExpiredSessions(this.config.console.sessionIdleMinutes);
    return { token, expiresAt };
  }

  /** Who holds this cookie value, or null (unknown, expired, idle too long, or malformed). */
  async resolve(token: string | undefined): Promise<StaffPrincipal | null> {
    if (!token || !TOKEN_RE.test(token)) return null;
    const s = await this.repo.touchSession(sessionTokenHash(token), this.config.console.sessionIdleMinutes);
    if (!s) return null;
    return { sessionId: s.id, userId: s.userId, email: s.email, role: s.role, csrfToken: s.csrfSecret };
  }

  async end(token: string | undefined): Promise<void> {
    if (!token || !TOKEN_RE.test(token)) return;
    await this.repo.deleteSessionByHash(sessionTokenHash(token));
  }

  countForUser(userId: number): Promise<number> {
    return this.repo.countSessions(userId);
  }
}
