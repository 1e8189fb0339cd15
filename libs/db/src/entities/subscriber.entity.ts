import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

export type SubscriberStatus = 'ok' | 'bounced' | 'complained' | 'suppressed';

@Entity('subscribers')
export class Subscriber {
  /** bigint: TypeORM hands it back as a string. */
  @PrimaryGeneratedColumn({ type: 'bigint' }) id: string;
  @Column({ type: 'text', unique: true }) email: string;
  @Column({ type: 'text', nullable: true }) name: string | null;
  @Column({ type: 'text', nullable: true }) timezone: string | null;
  @Column({ type: 'text', default: 'ok' }) status: SubscriberStatus;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
  @UpdateDateColumn({ type: 'timestamptz', name: 'updated_at' }) updatedAt: Date;
}
