import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { CronExpressionParser } from 'cron-parser';
import { type DataSource, type EntityManager, QueryFailedError } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { Guide, Newsletter } from '#db/entities/index.js';
import { OutboxRepository } from '#queue/outbox.repository.js';
import { NewsletterCatalog } from './newsletter-catalog.service.js';
import { NewslettersRepository } from './newsletters.repository.js';
import { subjectTemplateError } from './subject-template.js';

export interface NewsletterInput {
  slug?: string;
  name?: string;
  /** null clears an optional field (the console's empty inputs); the JSON API never sends null. */
  description?: string | null;
  fromName?: string | null;
  fromEmail?: string | null;
  guide?: string | null;
  feedUrl?: string | null;
  /** 1–365 (validated by the DTO); default 7. */
  lookbackDays?: number;
  /** The digests' subject template (see subject-template.ts); null or empty: the built-in one. */
  subjectTemplate?: string | null;
  /** off, order (default) or only (validated by the DTO). */
  personalize?: 'off' | 'order' | 'only';
  /** Public archive, web version and RSS of its issues (default true). */
  archive?: boolean;
  /** Tracked article links in its digests (default true). */
  tracking?: boolean;
  isDefault?: boolean;
  /** One of SMTP_ROUTES; null: SMTP_URL. */
  smtpRoute?: string | null;
  schedule?: { cron: string; timezone: string; delivery?: 'newsletter' | 'local' };
}

export interface NewsletterView {
  slug: string;
  name: string;
  description: string | null;
  fromName: string | null;
  fromEmail: string | null;
  guide: string | null;
  feedUrl: string | null;
  lookbackDays: number;
  subjectTemplate: string | null;
  personalize: 'off' | 'order' | 'only';
  archive: boolean;
  tracking: boolean;
  isDefault: boolean;
  smtpRoute: string | null;
  schedule: { cron: string; timezone: string; delivery: 'newsletter' | 'local' } | null;
  createdAt: Date;
  updatedAt: Date;
}

export function assertCron(cron: string, timezone: string): void {
  const fields = cron.trim().split(/\s+/);
  if (fields.length < 5 || fields.length > 6) {
    throw new BadRequestException(['schedule.cron must have 5 fields (minute hour day-of-month month day-of-week)']);
  }
  try {
    CronExpressionParser.parse(cron, { tz: timezone });
  } catch (err) {
    throw new BadRequestException([
      `schedule.cron is not a valid cron expression: ${err instanceof Error ? err.message : String(err)}`,
    ]);
  }
}

@Injectable()
export class NewslettersService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly newsletters: NewslettersRepository,
    private readonly outbox: OutboxRepository,
    private readonly catalog: NewsletterCatalog,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** The names a newsletter's `smtpRoute` may take (SMTP_ROUTES), for the console's choice list. */
  smtpRoutes(): string[] {
    return [...this.config.smtp.routes.keys()];
  }

  private async view(em: EntityManager, n: Newsletter): Promise<NewsletterView> {
    const guide = n.guideId ? await em.getRepository(Guide).findOne({ where: { id: n.guideId } }) : null;
    return {
      slug: n.slug,
      name: n.name,
      description: n.description,
      fromName: n.fromName,
      fromEmail: n.fromEmail,
      guide: guide?.slug ?? null,
      feedUrl: n.feedUrl,
      lookbackDays: n.lookbackDays,
      subjectTemplate: n.subjectTemplate,
      personalize: n.personalize,
      archive: n.archive,
      tracking: n.tracking,
      isDefault: n.isDefault,
      smtpRoute: n.smtpRoute,
      schedule:
        n.scheduleCron && n.scheduleTimezone
          ? { cron: n.scheduleCron, timezone: n.scheduleTimezone, delivery: n.scheduleDelivery }
          : null,
      createdAt: n.createdAt,
      updatedAt: n.updatedAt,
    };
  }

  async list(): Promise<NewsletterView[]> {
    const all = await this.ds.getRepository(Newsletter).find({ order: { name: 'ASC' } });
    return Promise.all(all.map((n) => this.view(this.ds.manager, n)));
  }

  /** The guides a newsletter can offer (the console's choice list). */
  async guides(): Promise<{ slug: string; title: string }[]> {
    const all = await this.ds.getRepository(Guide).find({ order: { title: 'ASC' } });
    return all.map((g) => ({ slug: g.slug, title: g.title }));
  }

  async get(slug: string): Promise<NewsletterView> {
    const n = await this.ds.getRepository(Newsletter).findOne({ where: { slug } });
    if (!n) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
    return this.view(this.ds.manager, n);
  }

  private async apply(em: EntityManager, n: Newsletter, input: NewsletterInput): Promise<void> {
    if (input.name !== undefined) n.name = input.name;
    if (input.description !== undefined) n.description = input.description;
    if (input.fromName !== undefined) n.fromName = input.fromName;
    if (input.fromEmail !== undefined) n.fromEmail = input.fromEmail;
    if (input.feedUrl !== undefined && input.feedUrl !== n.feedUrl) {
      // Another feed: the old one's validators would get a 304 from it and its error is not its own.
      n.feedUrl = input.feedUrl;
      n.feedEtag = null;
      n.feedLastModified = null;
      n.feedError = null;
    }
    if (input.lookbackDays !== undefined) {
      if (!Number.isInteger(input.lookbackDays) || input.lookbackDays < 1 || input.lookbackDays > 365)
        throw new BadRequestException(['lookbackDays must be between 1 and 365']);
      n.lookbackDays = input.lookbackDays;
    }
    if (input.subjectTemplate !== undefined) {
      const template = input.subjectTemplate?.trim() || null;
      const error = template === null ? null : subjectTemplateError(template);
      if (error) throw new BadRequestException([error]);
      n.subjectTemplate = template;
    }
    if (input.personalize !== undefined) {
      if (!['off', 'order', 'only'].includes(input.personalize))
        throw new BadRequestException(['personalize must be one of off, order, only']);
      n.personalize = input.personalize;
    }
    if (input.smtpRoute === null) n.smtpRoute = null;
    else if (input.smtpRoute !== undefined) {
      if (!this.config.smtp.routes.has(input.smtpRoute)) {
        const known = this.smtpRoutes();
        throw new BadRequestException([
          known.length === 0
            ? 'smtpRoute must be null: no SMTP_ROUTES are configured'
            : `smtpRoute must be one of the SMTP_ROUTES: ${known.join(', ')}`,
        ]);
      }
      n.smtpRoute = input.smtpRoute;
    }
    if (input.archive !== undefined) n.archive = input.archive;
    if (input.tracking !== undefined) n.tracking = input.tracking;
    if (input.guide === null) n.guideId = null;
    else if (input.guide !== undefined) {
      const g = await em.getRepository(Guide).findOne({ where: { slug: input.guide } });
      if (!g) throw new BadRequestException([`guide "${input.guide}" does not exist`]);
      n.guideId = g.id;
    }
    if (input.schedule !== undefined) {
      assertCron(input.schedule.cron, input.schedule.timezone);
      n.scheduleCron = input.schedule.cron.trim();
      n.scheduleTimezone = input.schedule.timezone;
      n.scheduleDelivery = input.schedule.delivery ?? 'newsletter';
    }
    if (input.isDefault === true) {
      await this.newsletters.clearDefaultExcept(em, n.slug);
      n.isDefault = true;
    } else if (input.isDefault === false) {
      n.isDefault = false;
    }
  }

  async create(input: NewsletterInput & { slug: string; name: string }): Promise<NewsletterView> {
    const view = await this.writeOnce(`Newsletter "${input.slug}" already exists`, async (em) => {
      const repo = em.getRepository(Newsletter);
      if (await repo.findOne({ where: { slug: input.slug } })) {
        throw new ConflictException(`Newsletter "${input.slug}" already exists`);
      }
      const n = repo.create({ slug: input.slug, name: input.name, isDefault: false });
      await this.apply(em, n, input);
      const saved = await repo.save(n);
      if (input.schedule) await this.outbox.add(em, { type: 'schedule.changed', payload: { newsletterId: saved.id } });
      return this.view(em, saved);
    });
    this.catalog.forget(); // the subscribe path sees the change at once
    return view;
  }

  async update(slug: string, input: NewsletterInput): Promise<NewsletterView> {
    const view = await this.writeOnce(
      `Newsletter "${slug}" was changed by another request at the same time: try again`,
      async (em) => {
        const repo = em.getRepository(Newsletter);
        const n = await repo.findOne({ where: { slug }, lock: { mode: 'pessimistic_write' } });
        if (!n) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
        if (input.slug !== undefined && input.slug !== slug) throw new BadRequestException(['slug cannot be changed']);
        await this.apply(em, n, input);
        const saved = await repo.save(n);
        if (input.schedule)
          await this.outbox.add(em, { type: 'schedule.changed', payload: { newsletterId: saved.id } });
        return this.view(em, saved);
      },
    );
    this.catalog.forget(); // the subscribe path sees the change at once
    return view;
  }

  /**
   * One transaction; a unique index that a concurrent request filled first (the same slug, or a
   * second default) is a 409, not a 500.
   */
  private async writeOnce<T>(conflict: string, work: (em: EntityManager) => Promise<T>): Promise<T> {
    try {
      return await this.ds.transaction(work);
    } catch (err) {
      if (err instanceof QueryFailedError && (err.driverError as { code?: string }).code === '23505')
        throw new ConflictException(conflict);
      throw err;
    }
  }
}
