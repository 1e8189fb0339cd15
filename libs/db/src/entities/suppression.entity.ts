import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** Keyed hash (HMAC) of the normalised address: survives erasure without keeping the address. */
@Entity('suppressions')
export class Suppression {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id: string;
  @Column({ type: 'bytea', name: 'email_hash', unique: true }) emailHash: Buffer;
  @Column({ type: 'text' }) reason: string;
  @Column({ type: 'text', nullable: true }) detail: string | null;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
}
