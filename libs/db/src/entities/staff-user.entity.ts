import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export type StaffRole = 'admin' | 'marketer';
export const STAFF_ROLES: readonly StaffRole[] = ['admin', 'marketer'];

/** A console account. The e-mail is stored lower-cased; the password only as an argon2id hash. */
@Entity('staff_users')
export class StaffUser {
  @PrimaryGeneratedColumn() id: number;
  @Column({ type: 'text', unique: true }) email: string;
  @Column({ type: 'text', name: 'password_hash' }) passwordHash: string;
  @Column({ type: 'text' }) role: StaffRole;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
  @Column({ type: 'timestamptz', name: 'password_changed_at' }) passwordChangedAt: Date;
}
