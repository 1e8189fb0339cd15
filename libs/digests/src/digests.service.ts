import { clickKey, readerPart } from './click-tokens.js';
import { issueLinks } from './digest-message.js';
import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { CronExpressionParser } from 'cron-parser';
import type { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { Newsletter } from '#db/entities/index.js';
import { OutboxRepository } from '#queue/outbox.repository.js';
import { normalizeEmail } from '#subscriptions/email.js';
import { assertCron } from '#subscriptions/newsletters.service.js';
import { DigestRenderer, type IssueArticle, type IssueTemplates, issuePreheader } from './digest-renderer.service.js';
import { checkVoice, digestSubject, voiceOf } from './digest-voice.js';
import { DigestWavesRepository } from './digest-waves.repository.js';
import { topicKey, variantArticles } from './issue-variants.js';
import { EARLIEST_ZONE, LATEST_ZONE, localInstant, parseWallClock, planWaves } from './local-waves.js';
import { type DigestListItem, type DigestRow, DigestsRepository } from './digests.repository.js';
import { SchedulesRepository } from './schedules.repository.js';

export interface DigestView {
  id: string;
  newsletter: string;
  newsletterName: string;
  status: DigestRow['status'];
  trigger: DigestRow['trigger'];
  sendAt: Date;
  subject: string | null;
  /** The inbox preview (the editor's, else the article titles). */
  preheader: string | null;
  /** `local`: sent at `localTime` in each reader's own zone, in `waves`. */
  delivery: DigestRow['delivery'];
  localTime: string | null;
  /** One per distinct send instant (UTC offset) for a local digest; one for the newsletter's time otherwise. */
  waves: DigestWaveView[];
  /** Distinct renders the issue needed (0 until it is planned; at most MAX_VARIANTS). */
  variants: number;
  /** Said when readers had to be grouped to stay within MAX_VARIANTS. */
  variantNote: string | null;
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

export interface DigestWaveView {
  /** The wave's main zone (most readers); `timezones` names them all. */
  timezone: string;
  timezones: string[];
  utcOffset: string | null;
  sendAt: Date;
  recipients: number;
  sent: number;
  failed: number;
  skipped: number;
  status: 'waiting' | 'sending' | 'sent' | 'skipped' | 'cancelled' | 'failed';
  reason: string | null;
}

export interface DigestProgress {
  id: string;
  status: DigestRow['status'];
  recipients: number;
  sent: number;
  failed: number;
  skipped: number;
  /** sent + failed + skipped */
  done: number;
  remaining: number;
  /** 0–100, whole numbers; 100 once the digest is sent */
  percent: number;
  /** mails per second over the last few seconds while sending; the average once finished */
  rate: number;
  etaSeconds: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** Most articles a composed digest may carry. */
export const MAX_COMPOSED = 50;
const PROGRESS_WINDOW_SECONDS = 5;

/** While the fan-out is still writing the ledger, the recipients so far are its rows. */
function ledgerRows(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** The marketer's side of digests: create, watch, preview, test, cancel, and the weekly schedule. */
@Injectable()
export class DigestsService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: DigestsRepository,
    private readonly schedules: SchedulesRepository,
    private readonly waves: DigestWavesRepository,
    private readonly outbox: OutboxRepository,
    private readonly renderer: DigestRenderer,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private async newsletter(slug: string): Promise<Newsletter> {
    const n = await this.repo.newsletterBySlug(this.ds, slug);
    if (!n) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
    return n;
  }

  /**
   * A digest of a newsletter, now or at `sendAt`. With `articleIds` (or `articleUrls`, the admin
   * API's form) it carries exactly those articles in that order; without, the planner picks the
   * candidates when it is due.
   */
  async create(
    slug: string,
    sendAt: string | undefined,
    compose: { articleIds?: string[]; articleUrls?: string[] } = {},
    given: { subject?: unknown; preheader?: unknown; intro?: unknown } = {},
    delivery: 'newsletter' | 'local' = 'newsletter',
  ): Promise<{ id: string; status: DigestRow['status'] }> {
    const n = await this.newsletter(slug);
    const checked = checkVoice(given);
    if ('errors' in checked) throw new BadRequestException(checked.errors);
    const articleIds = await this.composedArticles(compose);
    let when = new Date();
    let localTime: string | null = null;
    if (delivery === 'local') {
      // sendAt is a wall-clock time, each reader's own: planned when the first zone reaches it.
      localTime = parseWallClock(sendAt);
      if (!localTime)
        throw new BadRequestException([
          sendAt === undefined
            ? 'sendAt is required with delivery "local": the wall-clock time each reader gets it at, such as 2026-12-08T09:00'
            : 'sendAt must be a date and time such as 2026-12-08T09:00 (with delivery "local", any offset is ignored)',
        ]);
      if (localInstant(localTime, LATEST_ZONE).getTime() < Date.now() - this.config.digest.graceMinutes * 60_000)
        throw new BadRequestException(['sendAt is in the past in every time zone']);
      when = localInstant(localTime, EARLIEST_ZONE);
    } else if (sendAt !== undefined) {
      when = new Date(sendAt);
      if (Number.isNaN(when.getTime())) throw new BadRequestException(['sendAt must be an ISO 8601 date-time']);
      if (when.getTime() < Date.now() - this.config.digest.graceMinutes * 60_000) {
        throw new BadRequestException(['sendAt is in the past']);
      }
    }
    return this.ds.transaction(async (em) => {
      const { id } = await this.repo.create(em, n.id, when, 'manual', null, checked.voice, localTime);
      if (articleIds) await this.repo.attachArticles(em, id, articleIds);
      await this.outbox.add(em, {
        type: 'digest.requested',
        payload: { digestId: id, sendAt: when.toISOString() },
      });
      return { id, status: 'scheduled' as const };
    });
  }

  /** Validates an explicit article list: 1 to MAX_COMPOSED articles, each once, each existing. */
  private async composedArticles(compose: {
    articleIds?: string[];
    articleUrls?: string[];
  }): Promise<string[] | undefined> {
    const { articleIds, articleUrls } = compose;
    if (articleIds === undefined && articleUrls === undefined) return undefined;
    const given = articleIds ?? articleUrls ?? [];
    const field = 'articles';
    if (given.length === 0) throw new BadRequestException([`${field} must name at least one article`]);
    if (given.length > MAX_COMPOSED)
      throw new BadRequestException([`${field} must name at most ${MAX_COMPOSED} articles`]);
    if (new Set(given).size !== given.length) throw new BadRequestException([`${field} names an article twice`]);
    if (articleIds) {
      if (!articleIds.every((id) => /^[1-9]\d{0,17}$/.test(id)))
        throw new BadRequestException([`${field} contains an invalid article id`]);
      const found = await this.repo.articlesByIds(this.ds, articleIds);
      if (found.length !== articleIds.length) throw new BadRequestException([`${field} contains an unknown article`]);
      return articleIds;
    }
    const ids = await this.repo.articleIdsByUrl(this.ds, given);
    const missing = given.filter((_, i) => ids[i] === null);
    if (missing.length)
      throw new BadRequestException([
        `articles contains an unknown article: ${missing.map((m) => `"${m}"`).join(', ')}`,
      ]);
    return ids as string[];
  }

  /** What the next digest of a newsletter would carry now (the planner's own selection). */
  async candidates(slug: string): Promise<{ newsletter: Newsletter; articles: (IssueArticle & { id: string })[] }> {
    const n = await this.newsletter(slug);
    const articles = await this.repo.candidateArticles(this.ds, n.id, this.config.digest.maxArticles);
    return { newsletter: n, articles };
  }

  /** Articles by id, in the order given (unknown ids left out): the compose form's list. */
  async articlesByIds(articleIds: string[]): Promise<(IssueArticle & { id: string })[]> {
    const ids = articleIds.filter((id) => /^[1-9]\d{0,17}$/.test(id)).slice(0, 200);
    return this.repo.articlesByIds(this.ds, ids);
  }

  /**
   * The HTML of a digest not created yet, with these articles in this order, exactly as it would
   * be sent (with a sample reader's personal parts).
   */
  async previewDraft(
    slug: string,
    articleIds: string[],
    given: { subject?: unknown; preheader?: unknown; intro?: unknown } = {},
  ): Promise<string> {
    const n = await this.newsletter(slug);
    const checked = checkVoice(given);
    if ('errors' in checked) throw new BadRequestException(checked.errors);
    const ids = await this.composedArticles({ articleIds });
    const articles = await this.repo.articlesByIds(this.ds, ids ?? []);
    const issue = await this.renderer.renderIssue(n.name, articles, new Date(), {
      ...checked.voice,
      subjectTemplate: n.subjectTemplate,
    });
    return this.samplePersonal(`draft:${n.slug}:${Date.now()}:${ids?.join(',')}`, n.slug, issue, '0');
  }

  /** With a sample reader: tracked links work (reader 0, nobody) and count no click. */
  private samplePersonal(key: string, slug: string, issue: IssueTemplates, digestId: string): string {
    const sample = `${this.config.publicUrl}/subscribe?newsletter=${encodeURIComponent(slug)}`;
    return this.renderer.personalize(key, issue, {
      greeting: 'Hi there,',
      email: 'reader@example.com',
      unsubscribeUrl: sample,
      preferencesUrl: sample,
      clickReader: readerPart(clickKey(this.config.appSecret), digestId, '0'),
    }).html;
  }

  /** A scheduled digest goes now instead of at its time (its delayed plan job then finds it under way). */
  async sendNow(id: string): Promise<{ id: string; status: DigestRow['status'] }> {
    const d = await this.found(id);
    return this.ds.transaction(async (em) => {
      if (!(await this.repo.sendNow(em, d.id)))
        throw new ConflictException(`Digest ${id} is already ${d.status}: it cannot be sent now`);
      await this.outbox.add(em, {
        type: 'digest.requested',
        payload: { digestId: d.id, sendAt: new Date().toISOString() },
      });
      return { id: d.id, status: 'scheduled' as const };
    });
  }

  /**
   * Where a send stands: done (sent + failed + skipped) of recipients, the rate over the last
   * few seconds (mails/s) and the time left at that rate.
   */
  async progress(id: string): Promise<DigestProgress> {
    const d = await this.found(id);
    const p = await this.repo.progress(this.ds, d.id, PROGRESS_WINDOW_SECONDS);
    const recipients = d.recipients ?? ledgerRows(await this.repo.counts(this.ds, d.id));
    const done = p.sent + p.failed + p.skipped;
    const remaining = d.status === 'sending' || d.status === 'scheduled' ? Math.max(0, recipients - done) : 0;
    let rate = 0;
    if (d.status === 'sending') {
      const since = d.started_at ? (Date.now() - d.started_at.getTime()) / 1000 : PROGRESS_WINDOW_SECONDS;
      rate = p.recent / Math.max(1, Math.min(PROGRESS_WINDOW_SECONDS, since));
    } else if (p.firstAt && p.lastAt) {
      rate = (p.sent + p.failed) / Math.max(1, (p.lastAt.getTime() - (d.started_at ?? p.firstAt).getTime()) / 1000);
    }
    rate = Math.round(rate * 10) / 10;
    return {
      id: d.id,
      status: d.status,
      recipients,
      sent: p.sent,
      failed: p.failed,
      skipped: p.skipped,
      done,
      remaining,
      percent: d.status === 'sent' ? 100 : recipients > 0 ? Math.min(100, Math.floor((done / recipients) * 100)) : 0,
      rate,
      etaSeconds: d.status === 'sending' && rate > 0 ? Math.ceil(remaining / rate) : null,
      startedAt: d.started_at,
      finishedAt: d.finished_at,
    };
  }

  private async found(id: string): Promise<DigestRow> {
    const d = await this.repo.find(this.ds, id);
    if (!d) throw new NotFoundException(`Digest ${id} does not exist`);
    return d;
  }

  /** One snapshot of the digest, its ledger and its waves: their counts always agree. */
  async get(id: string): Promise<DigestView> {
    return this.ds.transaction('REPEATABLE READ', (em) => this.view(em, id));
  }

  private async view(em: EntityManager, id: string): Promise<DigestView> {
    const d = await this.repo.find(em, id);
    if (!d) throw new NotFoundException(`Digest ${id} does not exist`);
    const counts = await this.repo.counts(em, d.id);
    const articles =
      d.status === 'scheduled'
        ? await this.repo.issueArticles(em, d, this.config.digest.maxArticles)
        : await this.repo.articles(em, d.id);
    return {
      id: d.id,
      newsletter: d.newsletter_slug,
      newsletterName: d.newsletter_name,
      status: d.status,
      trigger: d.trigger,
      sendAt: d.send_at,
      ...this.voiceView(d, articles),
      delivery: d.delivery,
      localTime: d.local_time,
      waves: await this.waveViews(em, d, counts),
      variants: d.variants,
      variantNote: d.variant_note,
      reason: d.reason,
      recipients: d.recipients ?? ledgerRows(counts),
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

  /**
   * A local digest's waves (before it is planned: as its readers' zones would make them now); any
   * other digest is one wave at its time.
   */
  private async waveViews(em: EntityManager, d: DigestRow, counts: Record<string, number>): Promise<DigestWaveView[]> {
    const ended = d.status === 'cancelled' || d.status === 'failed' ? d.status : null;
    if (d.delivery !== 'local') {
      const status = ended ?? (d.status === 'scheduled' ? 'waiting' : d.status === 'sending' ? 'sending' : d.status);
      return [
        {
          timezone: d.schedule_timezone ?? 'UTC',
          timezones: [d.schedule_timezone ?? 'UTC'],
          utcOffset: null,
          sendAt: d.send_at,
          recipients: d.recipients ?? ledgerRows(counts),
          sent: counts.sent ?? 0,
          failed: counts.failed ?? 0,
          skipped: counts.skipped ?? 0,
          status,
          reason: d.status === 'skipped' ? d.reason : null,
        },
      ];
    }
    const stored = await this.waves.list(em, d.id);
    if (stored.length === 0 && d.status === 'scheduled' && d.local_time) {
      return planWaves(d.local_time, await this.waves.zones(em, d)).map((w) => ({
        timezone: w.timezone,
        timezones: w.timezones,
        utcOffset: w.utcOffset,
        sendAt: w.sendAt,
        recipients: w.readers,
        sent: 0,
        failed: 0,
        skipped: 0,
        status: 'waiting' as const,
        reason: null,
      }));
    }
    // A wave goes out before the ledger is complete (its rows are written while it sends): it is
    // sent once the ledger is complete and none of its rows is open.
    return stored.map((w) => ({
      timezone: w.timezone,
      timezones: w.timezones,
      utcOffset: w.utcOffset,
      sendAt: w.sendAt,
      recipients: w.recipients,
      sent: w.sent,
      failed: w.failed,
      skipped: w.skipped,
      status:
        w.status === 'skipped'
          ? 'skipped'
          : w.status === 'sending' && w.open === 0 && d.recipients !== null
            ? 'sent'
            : (ended ?? w.status),
      reason: w.reason,
    }));
  }

  /** Subject and preheader as sent (or as they would be, with the articles it would carry now). */
  private voiceView(d: DigestRow, articles: IssueArticle[]): { subject: string | null; preheader: string | null } {
    const voice = voiceOf(d);
    if (articles.length === 0) return { subject: d.subject ?? d.subject_given, preheader: d.preheader };
    const titles = articles.map((a) => a.title);
    return {
      subject: d.subject ?? digestSubject(voice, { newsletterName: d.newsletter_name, titles, date: d.send_at }),
      preheader: issuePreheader(voice, titles),
    };
  }

  async list(slug: string | undefined, limit: number): Promise<DigestListItem[]> {
    return this.repo.list(this.ds, slug ?? null, Math.min(Math.max(limit, 1), 200));
  }

  /** The HTML exactly as a reader sees it (with a sample reader's personal parts). */
  async preview(id: string, topics?: string): Promise<string> {
    const d = await this.found(id);
    if (topics !== undefined) return this.previewForTopics(d, topics);
    let issue =
      d.html_template && d.text_template && d.subject
        ? { subject: d.subject, html: d.html_template, text: d.text_template }
        : null;
    if (!issue) {
      const articles = await this.repo.issueArticles(this.ds, d, this.config.digest.maxArticles);
      if (articles.length === 0)
        throw new ConflictException('Nothing to preview: there is no new article for this digest');
      issue = await this.renderer.renderIssue(
        d.newsletter_name,
        articles,
        d.send_at,
        voiceOf(d),
        null,
        'strict',
        issueLinks(d),
      );
    }
    return this.samplePersonal(
      `preview:${d.id}:${d.html_template ? 'final' : Date.now()}`,
      d.newsletter_slug,
      issue,
      d.id,
    );
  }

  /**
   * The variant a reader with these topics (comma-separated) gets: the same article order and
   * copy as the digest's own variants (rendered here, not stored).
   */
  private async previewForTopics(d: DigestRow, raw: string): Promise<string> {
    const given = raw
      .split(',')
      .map(topicKey)
      .filter((t) => t.length > 0 && t.length <= 50)
      .slice(0, 20);
    const articles =
      d.status === 'scheduled'
        ? await this.repo.issueArticles(this.ds, d, this.config.digest.maxArticles)
        : await this.repo.articles(this.ds, d.id);
    if (articles.length === 0)
      throw new ConflictException('Nothing to preview: there is no new article for this digest');
    const issueTopics = new Set(articles.flatMap((a) => a.topics.map(topicKey)));
    const mine = [...new Set(given.filter((t) => issueTopics.has(t)))].sort();
    const ids = variantArticles(d.personalize, articles, mine);
    const byId = new Map(articles.map((a) => [a.id, a]));
    const list = ids.flatMap((i) => byId.get(i) ?? []);
    const personal = d.personalize === 'off' || mine.length === 0 ? null : { mode: d.personalize, topics: mine };
    const issue = await this.renderer.renderIssue(
      d.newsletter_name,
      list,
      d.send_at,
      voiceOf(d),
      personal,
      'strict',
      issueLinks(d),
    );
    return this.samplePersonal(`preview:${d.id}:${Date.now()}:${mine.join(',')}`, d.newsletter_slug, issue, d.id);
  }

  /** The issue's variants: the reader topics each was made for and how many readers got it. */
  async variants(id: string): Promise<{ variant: number; topics: string[]; readers: number }[]> {
    const d = await this.found(id);
    return (await this.repo.variants(this.ds, d.id)).map(({ variant, topics, readers }) => ({
      variant,
      topics,
      readers,
    }));
  }

  async sendTest(id: string, to: unknown): Promise<{ status: 'queued' }> {
    const d = await this.found(id);
    const check = normalizeEmail(to);
    if (!check.ok) throw new BadRequestException([check.reason.replace(/^email/, 'to')]);
    await this.ds.transaction((em) =>
      this.outbox.add(em, { type: 'digest.test-requested', payload: { digestId: d.id, to: check.email } }),
    );
    return { status: 'queued' };
  }

  /** No mail leaves after this returns, beyond messages already handed to SMTP. */
  async cancel(id: string): Promise<{ id: string; status: DigestRow['status'] }> {
    const d = await this.found(id);
    if (!(await this.repo.cancel(this.ds, d.id, 'cancelled by an administrator')))
      throw new ConflictException(`Digest ${id} is already ${d.status} and cannot be cancelled`);
    return { id: d.id, status: 'cancelled' };
  }

  /** The answer's `next` are the newsletter-zone times, for a local schedule too. */
  async setSchedule(
    slug: string,
    cron: string,
    timezone: string,
    delivery: 'newsletter' | 'local' = 'newsletter',
  ): Promise<{ cron: string; timezone: string; delivery: 'newsletter' | 'local'; next: string[] }> {
    assertCron(cron, timezone);
    const n = await this.newsletter(slug);
    await this.ds.transaction(async (em) => {
      await this.schedules.set(em, n.id, cron.trim(), timezone, delivery);
      await this.outbox.add(em, { type: 'schedule.changed', payload: { newsletterId: n.id } });
    });
    return { cron: cron.trim(), timezone, delivery, next: nextRuns(cron.trim(), timezone, 3) };
  }

  async removeSchedule(slug: string): Promise<void> {
    const n = await this.newsletter(slug);
    await this.ds.transaction(async (em) => {
      await this.schedules.clear(em, n.id);
      await this.outbox.add(em, { type: 'schedule.changed', payload: { newsletterId: n.id } });
    });
  }
}

export function nextRuns(cron: string, timezone: string, count: number): string[] {
  const it = CronExpressionParser.parse(cron, { tz: timezone });
  return Array.from({ length: count }, () => it.next().toISOString() ?? '');
}
