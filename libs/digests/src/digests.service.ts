import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { CronExpressionParser } from 'cron-parser';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../config/src/config.js';
import { Newsletter } from '../../db/src/entities/index.js';
import { rows } from '../../db/src/sql.js';
import { normalizeEmail } from '../../subscriptions/src/email.js';
import { assertCron } from '../../subscriptions/src/newsletters.service.js';
import { SubscriptionsRepository } from '../../subscriptions/src/subscriptions.repository.js';
import { DigestRenderer } from './digest-renderer.service.js';
import { type DigestRow, DigestsRepository } from './digests.repository.js';

export interface DigestView {
  id: string;
  newsletter: string;
  status: DigestRow['status'];
  trigger: DigestRow['trigger'];
  sendAt: Date;
  subject: string | null;
  reason: string | null;
  recipients: number;
  sent: number;
  failed: number;
  skipped: number;
  pending: number;
  articles: { url: string; title: string }[];
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** The marketer's side of digests: create, watch, preview, test, cancel, and the weekly schedule. */
@Injectable()
export class DigestsService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: DigestsRepository,
    private readonly events: SubscriptionsRepository,
    private readonly renderer: DigestRenderer,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private async newsletter(slug: string): Promise<Newsletter> {
    const n = await this.ds.getRepository(Newsletter).findOne({ where: { slug } });
    if (!n) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
    return n;
  }

  async create(slug: string, sendAt: string | undefined): Promise<{ id: string; status: DigestRow['status'] }> {
    const n = await this.newsletter(slug);
    let when = new Date();
    if (sendAt !== undefined) {
      when = new Date(sendAt);
      if (Number.isNaN(when.getTime())) throw new BadRequestException(['sendAt must be an ISO 8601 date-time']);
      if (when.getTime() < Date.now() - this.config.digest.graceMinutes * 60_000) {
        throw new BadRequestException(['sendAt is in the past']);
      }
    }
    return this.ds.transaction(async (em) => {
      const { id } = await this.repo.create(em, n.id, when, 'manual', null);
      await this.events.addEvent(em, {
        type: 'digest.requested',
        payload: { digestId: id, sendAt: when.toISOString() },
      });
      return { id, status: 'scheduled' as const };
    });
  }

  private async found(id: string): Promise<DigestRow> {
    const d = await this.repo.find(this.ds, id);
    if (!d) throw new NotFoundException(`Digest ${id} does not exist`);
    return d;
  }

  async get(id: string): Promise<DigestView> {
    const d = await this.found(id);
    const counts = await this.repo.counts(this.ds, d.id);
    const articles =
      d.status === 'scheduled'
        ? await this.repo.candidateArticles(this.ds, d.newsletter_id, this.config.digest.maxArticles, d.id)
        : await this.repo.articles(this.ds, d.id);
    return {
      id: d.id,
      newsletter: d.newsletter_slug,
      status: d.status,
      trigger: d.trigger,
      sendAt: d.send_at,
      subject: d.subject,
      reason: d.reason,
      recipients: d.recipients ?? 0,
      sent: counts.sent ?? 0,
      failed: counts.failed ?? 0,
      skipped: counts.skipped ?? 0,
      pending: (counts.pending ?? 0) + (counts.sending ?? 0),
      articles: articles.map((a) => ({ url: a.url, title: a.title })),
      createdAt: d.created_at,
      startedAt: d.started_at,
      finishedAt: d.finished_at,
    };
  }

  async list(
    slug: string | undefined,
    limit: number,
  ): Promise<{ id: string; newsletter: string; status: string; sendAt: Date; recipients: number }[]> {
    const list = await rows<{ id: string; slug: string; status: string; send_at: Date; recipients: number | null }>(
      this.ds,
      `SELECT d.id, n.slug, d.status, d.send_at, d.recipients FROM digests d JOIN newsletters n ON n.id = d.newsletter_id
       WHERE ($1::text IS NULL OR n.slug = $1) ORDER BY d.id DESC LIMIT $2`,
      [slug ?? null, Math.min(Math.max(limit, 1), 200)],
    );
    return list.map((r) => ({
      id: r.id,
      newsletter: r.slug,
      status: r.status,
      sendAt: r.send_at,
      recipients: r.recipients ?? 0,
    }));
  }

  /** The HTML exactly as a reader sees it (with a sample reader's personal parts). */
  async preview(id: string): Promise<string> {
    const d = await this.found(id);
    let issue =
      d.html_template && d.text_template && d.subject
        ? { subject: d.subject, html: d.html_template, text: d.text_template }
        : null;
    if (!issue) {
      const articles = await this.repo.candidateArticles(
        this.ds,
        d.newsletter_id,
        this.config.digest.maxArticles,
        d.id,
      );
      if (articles.length === 0)
        throw new ConflictException('Nothing to preview: there is no new article for this digest');
      issue = await this.renderer.renderIssue(d.newsletter_name, articles, d.send_at);
    }
    const sample = `${this.config.publicUrl}/subscribe?newsletter=${encodeURIComponent(d.newsletter_slug)}`;
    return this.renderer.personalize(`preview:${d.id}:${d.html_template ? 'final' : Date.now()}`, issue, {
      greeting: 'Hi there,',
      email: 'reader@example.com',
      unsubscribeUrl: sample,
      preferencesUrl: sample,
    }).html;
  }

  async sendTest(id: string, to: unknown): Promise<{ status: 'queued' }> {
    const d = await this.found(id);
    const check = normalizeEmail(to);
    if (!check.ok) throw new BadRequestException([check.reason.replace(/^email/, 'to')]);
    await this.ds.transaction((em) =>
      this.events.addEvent(em, { type: 'digest.test-requested', payload: { digestId: d.id, to: check.email } }),
    );
    return { status: 'queued' };
  }

  /** No mail leaves after this returns, beyond messages already handed to SMTP. */
  async cancel(id: string): Promise<{ id: string; status: DigestRow['status'] }> {
    const d = await this.found(id);
    const updated = await rows<{ status: DigestRow['status'] }>(
      this.ds,
      `UPDATE digests SET status = 'cancelled', finished_at = now(), reason = 'cancelled by an administrator'
       WHERE id = $1 AND status IN ('scheduled','sending') RETURNING status`,
      [d.id],
    );
    if (updated.length === 0)
      throw new ConflictException(`Digest ${id} is already ${d.status} and cannot be cancelled`);
    return { id: d.id, status: 'cancelled' };
  }

  async setSchedule(
    slug: string,
    cron: string,
    timezone: string,
  ): Promise<{ cron: string; timezone: string; next: string[] }> {
    assertCron(cron, timezone);
    const n = await this.newsletter(slug);
    await this.ds.transaction(async (em) => {
      await em.query(
        `UPDATE newsletters SET schedule_cron = $2, schedule_timezone = $3, updated_at = now() WHERE id = $1`,
        [n.id, cron.trim(), timezone],
      );
      await this.events.addEvent(em, { type: 'schedule.changed', payload: { newsletterId: n.id } });
    });
    return { cron: cron.trim(), timezone, next: nextRuns(cron.trim(), timezone, 3) };
  }

  async removeSchedule(slug: string): Promise<void> {
    const n = await this.newsletter(slug);
    await this.ds.transaction(async (em) => {
      await em.query(
        `UPDATE newsletters SET schedule_cron = NULL, schedule_timezone = NULL, updated_at = now() WHERE id = $1`,
        [n.id],
      );
      await this.events.addEvent(em, { type: 'schedule.changed', payload: { newsletterId: n.id } });
    });
  }
}

export function nextRuns(cron: string, timezone: string, count: number): string[] {
  const it = CronExpressionParser.parse(cron, { tz: timezone });
  return Array.from({ length: count }, () => it.next().toISOString() ?? '');
}
