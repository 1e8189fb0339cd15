import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export type ConsentAction = 'subscribe' | 'confirm' | 'unsubscribe' | 'preferences' | 'import';

/** Append-only evidence of what a reader agreed to, when, from where, and the exact words shown. */
@Entity('consent_records')
export class ConsentRecord {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id: string;
  @Column({ type: 'bigint', name: 'subscriber_id', nullable: true }) subscriberId: string | null;
  @Column({ type: 'int', name: 'newsletter_id', nullable: true }) newsletterId: number | null;
  @Column({ type: 'text' }) action: ConsentAction;
  @Column({ type: 'inet', nullable: true }) ip: string | null;
  @Column({ type: 'text', name: 'user_agent', nullable: true }) userAgent: string | null;
  @Column({ type: 'text', name: 'source_url', nullable: true }) sourceUrl: string | null;
  @Column({ type: 'text', name: 'consent_text', nullable: true }) consentText: string | null;
  @Column({ type: 'text', name: 'consent_version', nullable: true }) consentVersion: string | null;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
}
