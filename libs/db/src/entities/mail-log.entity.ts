import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

@Entity('mail_log')
export class MailLog {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id: string;
  @Column({ type: 'bigint', name: 'subscriber_id', nullable: true }) subscriberId: string | null;
  @Column({ type: 'int', name: 'newsletter_id', nullable: true }) newsletterId: number | null;
  @Column({ type: 'text' }) kind: string;
  @Column({ type: 'text', name: 'message_id', nullable: true }) messageId: string | null;
  @Column({ type: 'text' }) status: 'sent' | 'failed' | 'skipped';
  @Column({ type: 'text', nullable: true }) detail: string | null;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
}
