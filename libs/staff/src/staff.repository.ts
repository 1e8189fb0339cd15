import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { StaffRole } from '#db/entities/index.js';
import { rows } from '#db/sql.js';

export interface StaffUserRow {
  id: number;
  email: string;
  role: StaffRole;
  createdAt: Date;
  passwordChangedAt: Date;
}

export interface StaffSessionRow {
  id: string;
  userId: number;
  email: string;
  role: StaffRole;
  csrfSecret: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

/**
 * Failed admin API keys are counted in the sign-in failures table, per client IP, under this
 * subject. Sign-in subjects are always lower case, so none can be it; the sign-in limits skip it.
 */
export const API_KEY_FAILURE_SUBJECT = 'API-KEY';

const USER_COLUMNS = `id, email, role, created_at AS "createdAt", password_changed_at AS "passwordChangedAt"`;

/** SQL for staff accounts, their sessions, failed sign-ins and failed admin API keys. */
@Injectable()
export class StaffRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  async insertUser(email: string, passwordHash: string, role: StaffRole): Promise<StaffUserRow | null> {
    const [row] = await rows<StaffUserRow>(
      this.ds,
      `INSERT INTO staff_users (email, password_hash, role) VALUES ($1, $2, $3)
       ON CONFLICT (email) DO NOTHING RETURNING ${USER_COLUMNS}`,
      [email, passwordHash, role],
    );
    return row ?? null;
  }

  async listUsers(): Promise<StaffUserRow[]> {
    return rows<StaffUserRow>(this.ds, `SELECT ${USER_COLUMNS} FROM staff_users ORDER BY email`);
  }

  async findUser(id: number): Promise<StaffUserRow | null> {
    const [row] = await rows<StaffUserRow>(this.ds, `SELECT ${USER_COLUMNS} FROM staff_users WHERE id = $1`, [id]);
    return row ?? null;
  }

  async findUserWithHash(email: string): Promise<(StaffUserRow & { passwordHash: string }) | null> {
    const [row] = await rows<StaffUserRow & { passwordHash: string }>(
      this.ds,
      `SELECT ${USER_COLUMNS}, password_hash AS "passwordHash" FROM staff_users WHERE email = $1`,
      [email],
    );
    return row ?? null;
  }

  /** New hash, and every session of that user ends (except `keepSessionId`, the one making the change). */
  async setPassword(userId: number, passwordHash: string, keepSessionId?: string): Promise<StaffUserRow | null> {
    return this.ds.transaction(async (tx) => {
      const [row] = await rows<StaffUserRow>(
        tx,
        `UPDATE staff_users SET password_hash = $2, password_changed_at = now() WHERE id = $1 RETURNING ${USER_COLUMNS}`,
        [userId, passwordHash],
      );
      if (!row) return null;
      await tx.query(`DELETE FROM staff_sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2::bigint`, [
        userId,
        keepSessionId ?? null,
      ]);
      await tx.query(`DELETE FROM staff_login_failures WHERE email = $1`, [row.email]);
      return row;
    });
  }

  /**
   * Deletes a user (their sessions go with them), unless that would leave no admin: the check and
   * the delete run under one lock on the admins, so two admins cannot delete each other at once.
   */
  async deleteUser(userId: number): Promise<'deleted' | 'not-found' | 'last-admin'> {
    return this.ds.transaction(async (tx) => {
      const admins = await rows<{ id: number }>(tx, `SELECT id FROM staff_users WHERE role = 'admin' FOR UPDATE`);
      const target = await rows<{ role: StaffRole }>(tx, `SELECT role FROM staff_users WHERE id = $1 FOR UPDATE`, [
        userId,
      ]);
      if (target.length === 0) return 'not-found';
      if (target[0].role === 'admin' && admins.length <= 1) return 'last-admin';
      await tx.query(`DELETE FROM staff_users WHERE id = $1`, [userId]);
      return 'deleted';
    });
  }

  async insertSession(s: {
    tokenHash: Buffer;
    userId: number;
    csrfSecret: string;
    ip: string | null;
    userAgent: string | null;
    maxMinutes: number;
  }): Promise<{ id: string; expiresAt: Date }> {
    const [row] = await rows<{ id: string; expiresAt: Date }>(
      this.ds,
      `INSERT INTO staff_sessions (token_hash, user_id, csrf_secret, ip, user_agent, expires_at)
       VALUES ($1, $2, $3, $4, $5, now() + make_interval(mins => $6))
       RETURNING id, expires_at AS "expiresAt"`,
      [s.tokenHash, s.userId, s.csrfSecret, s.ip, s.userAgent, s.maxMinutes],
    );
    return row;
  }

  /**
   * The live session with this token hash, or null when unknown, past its absolute expiry or idle
   * too long. Touches last_seen_at at most once a minute, so browsing costs no write per request.
   */
  async touchSession(tokenHash: Buffer, idleMinutes: number): Promise<StaffSessionRow | null> {
    const [row] = await rows<StaffSessionRow>(
      this.ds,
      `WITH live AS (
         SELECT s.id FROM staff_sessions s
          WHERE s.token_hash = $1 AND s.expires_at > now()
            AND s.last_seen_at > now() - make_interval(mins => $2)
       ), touched AS (
         UPDATE staff_sessions s SET last_seen_at = now()
           FROM live WHERE s.id = live.id AND s.last_seen_at < now() - interval '1 minute'
         RETURNING s.id
       )
       SELECT s.id, s.user_id AS "userId", u.email, u.role, s.csrf_secret AS "csrfSecret",
              s.created_at AS "createdAt", s.last_seen_at AS "lastSeenAt", s.expires_at AS "expiresAt"
         FROM staff_sessions s JOIN live ON live.id = s.id JOIN staff_users u ON u.id = s.user_id`,
      [tokenHash, idleMinutes],
    );
    return row ?? null;
  }

  async deleteSessionByHash(tokenHash: Buffer): Promise<void> {
    await this.ds.query(`DELETE FROM staff_sessions WHERE token_hash = $1`, [tokenHash]);
  }

  async deleteExpiredSessions(idleMinutes: number): Promise<void> {
    await this.ds.query(
      `DELETE FROM staff_sessions WHERE expires_at < now() OR last_seen_at < now() - make_interval(mins => $1)`,
      [idleMinutes],
    );
  }

  async countSessions(userId: number): Promise<number> {
    const [row] = await rows<{ n: number }>(
      this.ds,
      `SELECT count(*)::int AS n FROM staff_sessions WHERE user_id = $1`,
      [userId],
    );
    return row.n;
  }

  /** Failed sign-ins within the window: for this e-mail, and from this IP. */
  async countFailures(email: string, ip: string | null, windowMinutes: number): Promise<{ email: number; ip: number }> {
    const [row] = await rows<{ email: number; ip: number }>(
      this.ds,
      `SELECT count(*) FILTER (WHERE email = $1)::int AS email,
              count(*) FILTER (WHERE ip = $2::inet AND email <> $4)::int AS ip
         FROM staff_login_failures
        WHERE (email = $1 OR ip = $2::inet) AND created_at > now() - make_interval(mins => $3)`,
      [email, ip, windowMinutes, API_KEY_FAILURE_SUBJECT],
    );
    return { email: row.email, ip: row.ip };
  }

  /** Seconds until the oldest counted failure (of the limiting key) leaves the window. */
  async retryAfterSeconds(
    key: { email: string } | { ip: string | null },
    windowMinutes: number,
    limit: number,
  ): Promise<number> {
    if ('email' in key) return this.secondsUntilUnder('email = $3', [key.email], windowMinutes, limit);
    const filter = 'ip = $3::inet AND email <> $4';
    return this.secondsUntilUnder(filter, [key.ip, API_KEY_FAILURE_SUBJECT], windowMinutes, limit);
  }

  /** Seconds until this client IP has fewer than `limit` failed API keys within the window. */
  async apiKeyRetryAfterSeconds(ip: string, windowMinutes: number, limit: number): Promise<number> {
    const filter = 'ip = $3::inet AND email = $4';
    return this.secondsUntilUnder(filter, [ip, API_KEY_FAILURE_SUBJECT], windowMinutes, limit);
  }

  /** Seconds until the oldest failure that keeps the count at `limit` leaves the window; `filter` uses $3, $4. */
  private async secondsUntilUnder(
    filter: string,
    values: unknown[],
    windowMinutes: number,
    limit: number,
  ): Promise<number> {
    const [row] = await rows<{ s: number | null }>(
      this.ds,
      `SELECT ceil(extract(epoch FROM (created_at + make_interval(mins => $1) - now())))::int AS s
         FROM staff_login_failures
        WHERE ${filter} AND created_at > now() - make_interval(mins => $1)
        ORDER BY created_at DESC OFFSET ($2::int - 1) LIMIT 1`,
      [windowMinutes, limit, ...values],
    );
    return Math.max(1, row?.s ?? windowMinutes * 60);
  }

  /** Records a failed admin API key from this IP; the IP's count within the window, this one included. */
  async recordApiKeyFailure(ip: string, windowMinutes: number): Promise<number> {
    const [row] = await rows<{ n: number }>(
      this.ds,
      `WITH added AS (INSERT INTO staff_login_failures (email, ip) VALUES ($1, $2::inet) RETURNING id)
       SELECT (count(*) + 1)::int AS n FROM staff_login_failures
        WHERE ip = $2::inet AND email = $1 AND created_at > now() - make_interval(mins => $3)`,
      [API_KEY_FAILURE_SUBJECT, ip, windowMinutes],
    );
    await this.deleteOldFailures(windowMinutes, true);
    return row.n;
  }

  async insertFailure(email: string, ip: string | null, windowMinutes: number): Promise<void> {
    await this.ds.query(`INSERT INTO staff_login_failures (email, ip) VALUES ($1, $2)`, [email, ip]);
    await this.deleteOldFailures(windowMinutes, false);
  }

  /** Keeps the table to the window: old rows are never read again. Each kind by its own window. */
  private async deleteOldFailures(windowMinutes: number, apiKeys: boolean): Promise<void> {
    await this.ds.query(
      `DELETE FROM staff_login_failures
        WHERE created_at < now() - make_interval(mins => $1) - interval '1 hour'
          AND (email = $2) = $3`,
      [windowMinutes, API_KEY_FAILURE_SUBJECT, apiKeys],
    );
  }

  async clearFailures(email: string): Promise<void> {
    await this.ds.query(`DELETE FROM staff_login_failures WHERE email = $1`, [email]);
  }
}
