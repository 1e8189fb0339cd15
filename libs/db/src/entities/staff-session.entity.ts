import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A signed-in console session: only the SHA-256 of its cookie token is stored. */
@Entity('staff_sessions')
export class StaffSession {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id: string;
  @Column({ type: 'bytea', name: 'token_hash', unique: true }) tokenHash: Buffer;
  @Column({ type: 'int', name: 'user_id' }) userId: number;
  @Column({ type: 'text', name: 'csrf_secret' }) csrfSecret: string;
  @Column({ type: 'inet', nullable: true }) ip: string | null;
  @Column({ type: 'text', name: 'user_agent', nullable: true }) userAgent: string | null;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
  @Column({ type: 'timestamptz', name: 'last_seen_at' }) lastSeenAt: Date;
  @Column({ type: 'timestamptz', name: 'expires_at' }) expiresAt: Date;
}
