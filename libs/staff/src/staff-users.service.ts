import { Injectable } from '@nestjs/common';
import { STAFF_ROLES, type StaffRole } from '#db/entities/staff-user.entity.js';
import { normalizeEmail } from '#subscriptions/email.js';
import { dummyHash, hashPassword, passwordProblem, verifyPassword } from './passwords.js';
import { StaffRepository, type StaffUserRow } from './staff.repository.js';

export type { StaffUserRow } from './staff.repository.js';

/** Messages per form field, for the console to show next to each field (and the CLI to print). */
export type FieldErrors = Partial<Record<'email' | 'role' | 'password' | 'confirm', string>>;

export type CreateUserResult = { ok: true; user: StaffUserRow } | { ok: false; errors: FieldErrors };
export type ChangePasswordResult = { ok: true; user: StaffUserRow } | { ok: false; errors: FieldErrors };
export type DeleteUserResult = 'deleted' | 'not-found' | 'last-admin' | 'self';

export function isStaffRole(v: unknown): v is StaffRole {
  return typeof v === 'string' && (STAFF_ROLES as readonly string[]).includes(v);
}

/** Staff accounts: create, verify a password, change it (ending that user's sessions), list, delete. */
@Injectable()
export class StaffUsersService {
  constructor(private readonly repo: StaffRepository) {}

  async create(input: { email: unknown; role: unknown; password: unknown }): Promise<CreateUserResult> {
    const errors: FieldErrors = {};
    const email = normalizeEmail(input.email);
    if (!email.ok) errors.email = email.reason.replace(/^email/, 'Email');
    if (!isStaffRole(input.role)) errors.role = 'Role must be admin or marketer';
    const pw = passwordProblem(input.password);
    if (pw) errors.password = pw;
    if (!email.ok || !isStaffRole(input.role) || pw) return { ok: false, errors };
    const user = await this.repo.insertUser(email.email, await hashPassword(input.password as string), input.role);
    if (!user) return { ok: false, errors: { email: 'A user with this email already exists' } };
    return { ok: true, user };
  }

  list(): Promise<StaffUserRow[]> {
    return this.repo.listUsers();
  }

  find(id: number): Promise<StaffUserRow | null> {
    return this.repo.findUser(id);
  }

  async findByEmail(email: string): Promise<StaffUserRow | null> {
    const n = normalizeEmail(email);
    if (!n.ok) return null;
    const row = await this.repo.findUserWithHash(n.email);
    if (!row) return null;
    const { passwordHash: _hash, ...user } = row;
    return user;
  }

  /**
   * The user when the password is right, else null. An unknown or malformed e-mail is checked
   * against a dummy hash, so both answers take about as long.
   */
  async verify(email: unknown, password: unknown): Promise<StaffUserRow | null> {
    const n = normalizeEmail(email);
    const row = n.ok ? await this.repo.findUserWithHash(n.email) : null;
    const given = typeof password === 'string' ? password : '';
    const ok = await verifyPassword(row?.passwordHash ?? (await dummyHash()), given);
    if (!row || !ok) return null;
    const { passwordHash: _hash, ...user } = row;
    return user;
  }

  /**
   * Sets a new password. Every session of that user ends, except `keepSessionId` (a user changing
   * their own password stays signed in where they did it). Failed sign-ins for it are forgotten.
   */
  async changePassword(userId: number, password: unknown, keepSessionId?: string): Promise<ChangePasswordResult> {
    const pw = passwordProblem(password);
    if (pw) return { ok: false, errors: { password: pw } };
    const user = await this.repo.setPassword(userId, await hashPassword(password as string), keepSessionId);
    if (!user) return { ok: false, errors: { email: 'This user no longer exists' } };
    return { ok: true, user };
  }

  /** Deletes a user and their sessions; never the last admin, and never the acting user themselves. */
  async delete(userId: number, actingUserId?: number): Promise<DeleteUserResult> {
    if (actingUserId === userId) return 'self';
    return this.repo.deleteUser(userId);
  }
}
