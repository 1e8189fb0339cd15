import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A confirmation token: only its SHA-256 is stored, never the token itself. */
@Entity('tokens')
export class Token {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id: string;
  @Column({ type: 'bytea', name: 'token_hash', unique: true }) tokenHash: Buffer;
  @Column({ type: 'text' }) purpose: 'confirm';
  @Column({ type: 'bigint', name: 'subscriber_id' }) subscriberId: string;
  @Column({ type: 'int', array: true, name: 'newsletter_ids' }) newsletterIds: number[];
  @Column({ type: 'timestamptz', name: 'expires_at' }) expiresAt: Date;
  @Column({ type: 'timestamptz', name: 'used_at', nullable: true }) usedAt: Date | null;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
}
