import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

@Entity('newsletters')
export class Newsletter {
  @PrimaryGeneratedColumn() id: number;
  @Column({ type: 'text', unique: true }) slug: string;
  @Column({ type: 'text' }) name: string;
  @Column({ type: 'text', nullable: true }) description: string | null;
  @Column({ type: 'text', name: 'from_name', nullable: true }) fromName: string | null;
  @Column({ type: 'text', name: 'from_email', nullable: true }) fromEmail: string | null;
  @Column({ type: 'int', name: 'guide_id', nullable: true }) guideId: number | null;
  @Column({ type: 'text', name: 'feed_url', nullable: true }) feedUrl: string | null;
  @Column({ type: 'boolean', name: 'is_default', default: false }) isDefault: boolean;
  @Column({ type: 'text', name: 'schedule_cron', nullable: true }) scheduleCron: string | null;
  @Column({ type: 'text', name: 'schedule_timezone', nullable: true }) scheduleTimezone: string | null;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
  @UpdateDateColumn({ type: 'timestamptz', name: 'updated_at' }) updatedAt: Date;
}
