import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

@Entity('outbox')
export class OutboxEvent {
  @PrimaryColumn({ type: 'uuid' }) id: string;
  @Column({ type: 'text' }) type: string;
  @Column({ type: 'jsonb' }) payload: Record<string, unknown>;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
  @Column({ type: 'timestamptz', name: 'dispatched_at', nullable: true }) dispatchedAt: Date | null;
  @Column({ type: 'timestamptz', name: 'handled_at', nullable: true }) handledAt: Date | null;
}
