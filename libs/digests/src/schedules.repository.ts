import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from '#db/sql.js';

export interface NewsletterSchedule {
  newsletterId: number;
  slug: string;
  cron: string;
  timezone: string;
  delivery: 'newsletter' | 'local';
}

/** SQL for each newsletter's weekly digest schedule (a cron and its time zone). */
@Injectable()
export class SchedulesRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Every newsletter that has a schedule. */
  async scheduled(): Promise<NewsletterSchedule[]> {
    return rows<NewsletterSchedule>(
      this.ds,
      `SELECT id AS "newsletterId", slug, schedule_cron AS cron, schedule_timezone AS timezone,
         schedule_delivery AS delivery
       FROM newsletters WHERE schedule_cron IS NOT NULL AND schedule_timezone IS NOT NULL`,
    );
  }

  async set(
    em: EntityManager,
    newsletterId: number,
    cron: string,
    timezone: string,
    delivery: 'newsletter' | 'local' = 'newsletter',
  ): Promise<void> {
    await em.query(
      `UPDATE newsletters SET schedule_cron = $2, schedule_timezone = $3, schedule_delivery = $4, updated_at = now()
       WHERE id = $1`,
      [newsletterId, cron, timezone, delivery],
    );
  }

  async clear(em: EntityManager, newsletterId: number): Promise<void> {
    await em.query(
      `UPDATE newsletters SET schedule_cron = NULL, schedule_timezone = NULL, updated_at = now() WHERE id = $1`,
      [newsletterId],
    );
  }
}
