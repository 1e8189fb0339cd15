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
  /** Conditional-GET validators and the last error of the feed at feedUrl (cleared when it changes). */
  @Column({ type: 'text', name: 'feed_etag', nullable: true }) feedEtag: string | null;
  @Column({ type: 'text', name: 'feed_last_modified', nullable: true }) feedLastModified: string | null;
  @Column({ type: 'text', name: 'feed_error', nullable: true }) feedError: string | null;
  /** How old an article not yet carried may be and still go into the next digest (1–365). */
  @Column({ type: 'int', name: 'lookback_days', default: 7 }) lookbackDays: number;
  /** The subject of its digests unless a digest gives its own (see digest-voice.ts); null: the built-in one. */
  @Column({ type: 'text', name: 'subject_template', nullable: true }) subjectTemplate: string | null;
  /** What each reader's digest carries: their topics first (`order`), only theirs (`only`), or one order for all (`off`). */
  @Column({ type: 'text', default: 'order' }) personalize: 'off' | 'order' | 'only';
  /** false: no public archive, web version or archive feed for it (404). */
  @Column({ type: 'boolean', default: true }) archive: boolean;
  /** true: digest article links go through /c/:token and count clicks; false: straight to the articles. */
  @Column({ type: 'boolean', default: true }) tracking: boolean;
  @Column({ type: 'boolean', name: 'is_default', default: false }) isDefault: boolean;
  /** The SMTP_ROUTES entry its mail leaves through; null: SMTP_URL. */
  @Column({ type: 'text', name: 'smtp_route', nullable: true }) smtpRoute: string | null;
  @Column({ type: 'text', name: 'schedule_cron', nullable: true }) scheduleCron: string | null;
  @Column({ type: 'text', name: 'schedule_timezone', nullable: true }) scheduleTimezone: string | null;
  /** `local`: the schedule's time of day applies in each reader's own zone (see local-waves.ts). */
  @Column({ type: 'text', name: 'schedule_delivery', default: 'newsletter' }) scheduleDelivery: 'newsletter' | 'local';
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
  @UpdateDateColumn({ type: 'timestamptz', name: 'updated_at' }) updatedAt: Date;
}
