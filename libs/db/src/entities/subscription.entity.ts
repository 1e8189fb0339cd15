import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export type SubscriptionStatus = 'pending' | 'active' | 'unsubscribed';

@Entity('subscriptions')
export class Subscription {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id: string;
  @Column({ type: 'bigint', name: 'subscriber_id' }) subscriberId: string;
  @Column({ type: 'int', name: 'newsletter_id' }) newsletterId: number;
  @Column({ type: 'text' }) status: SubscriptionStatus;
  @Column({ type: 'text', array: true, default: () => "'{}'" }) topics: string[];
  @Column({ type: 'text', nullable: true }) source: string | null;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
  @Column({ type: 'timestamptz', name: 'confirmed_at', nullable: true }) confirmedAt: Date | null;
  @Column({ type: 'timestamptz', name: 'unsubscribed_at', nullable: true }) unsubscribedAt: Date | null;
  @Column({ type: 'timestamptz', name: 'guide_sent_at', nullable: true }) guideSentAt: Date | null;
}
