import {
  Body,
  Controller,
  Get,
  NotFoundException,
  Param,
  Post,
  Query,
  Req,
  Res,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IssueArticle } from '#digests/digest-renderer.service.js';
import { type DigestStats, DigestStatsRepository } from '#digests/digest-stats.repository.js';
import { checkVoice } from '#digests/digest-voice.js';
import { DigestsService, type DigestProgress, MAX_COMPOSED } from '#digests/digests.service.js';
import { describeSchedule, localInputValue, timeZones, zonedLocalToUtc } from '#digests/weekly-schedule.js';
import { AudienceCountRepository } from '#subscriptions/audience-count.repository.js';
import { NewslettersService, type NewsletterView } from '#subscriptions/newsletters.service.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import {
  badRequestMessage,
  fields,
  type FormErrors,
  newsletterSlug,
  notice,
  queryString,
  sendPage,
  staffOf,
} from './console-forms.js';
import { field } from './console-http.js';
import { ConsolePagesService } from './console-pages.service.js';
import { StaffGuard } from './staff.guard.js';

const NOTICES: Record<string, string> = {
  sending: 'The digest is on its way: the worker is sending it now.',
  scheduled: 'Digest scheduled.',
  'send-now': 'Sending now instead of at the scheduled time.',
  'test-sent': 'Test copy queued: it arrives within seconds.',
  cancelled: 'Digest cancelled: no further mail goes out.',
};

/** What a preview frame may do: show the mail (inline styles, remote images) and nothing else. */
const PREVIEW_CSP = [
  "default-src 'none'",
  'img-src https: http: data:',
  "style-src 'unsafe-inline' https:",
  'font-src https: data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'self'",
  'sandbox allow-popups allow-popups-to-escape-sandbox',
].join('; ');

const OPEN_STATUSES = new Set(['scheduled', 'sending']);

function digestId(raw: string): string {
  if (!/^[1-9]\d{0,17}$/.test(raw)) throw new NotFoundException('There is no such digest.');
  return raw;
}

interface ComposeItem extends IssueArticle {
  id: string;
  checked: boolean;
  position: number;
}

interface ComposeValues {
  /** Nothing until the marketer picks: sending now is never the default. */
  when: 'now' | 'later' | '';
  sendAt: string;
  timezone: string;
  /** The editor's voice, as typed (see digest-voice.ts). */
  subject: string;
  preheader: string;
  intro: string;
}

/** The preview URL of a draft: its articles in order and the editor's voice. */
function draftPreviewSrc(
  slug: string,
  chosen: string[],
  v: { subject: string; preheader: string; intro: string },
): string {
  const q = new URLSearchParams({ newsletter: slug, articles: chosen.join(',') });
  if (v.subject) q.set('subject', v.subject);
  if (v.preheader) q.set('preheader', v.preheader);
  if (v.intro) q.set('intro', v.intro);
  return `/admin/digests/preview?${q.toString()}`;
}

/**
 * Digests: the list, compose (the planner's candidates, dropped or reordered), previews exactly as
 * sent, a test copy, send now or at a time, cancel, and a live progress bar while sending.
 */
@ApiExcludeController()
@Controller('admin/digests')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleDigestsController {
  constructor(
    private readonly digests: DigestsService,
    private readonly newsletters: NewslettersService,
    private readonly pages: ConsolePagesService,
    private readonly audience: AudienceCountRepository,
    private readonly stats: DigestStatsRepository,
  ) {}

  /** Each newsletter's schedule zone (console times of its digests are shown in it), by slug. */
  private async zones(): Promise<Map<string, string>> {
    return new Map((await this.newsletters.list()).map((n) => [n.slug, n.schedule?.timezone ?? 'UTC']));
  }

  @Get()
  async list(
    @Query('newsletter') newsletter: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const all = await this.newsletters.list();
    const slug = all.find((n) => n.slug === queryString(newsletter))?.slug;
    const digests = await this.digests.list(slug, 50);
    await sendPage(
      reply,
      200,
      this.pages.render(
        'digests',
        { title: 'Digests', staff: staffOf(req), section: 'digests' },
        {
          digests: digests.map((d) => ({ ...d, zone: all.find((n) => n.slug === d.newsletter)?.schedule?.timezone })),
          newsletters: all.map((n) => ({ slug: n.slug, name: n.name, selected: n.slug === slug })),
          filtered: slug !== undefined,
        },
      ),
    );
  }

  @Get('new')
  async compose(
    @Query('newsletter') raw: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const slug = queryString(raw);
    if (!slug) {
      await this.chooseNewsletter(req, reply);
      return;
    }
    const n = await this.newsletters.get(newsletterSlug(slug));
    const { articles } = await this.digests.candidates(n.slug);
    const items = articles.map((a, i) => ({ ...a, checked: true, position: i + 1 }));
    const timezone = n.schedule?.timezone ?? 'UTC';
    const inAnHour = new Date(Math.ceil((Date.now() + 3_600_000) / 3_600_000) * 3_600_000);
    await this.composePage(req, reply, 200, n, items, {
      when: '',
      sendAt: localInputValue(inAnHour, timezone),
      timezone,
      subject: '',
      preheader: '',
      intro: '',
    });
  }

  /**
   * The compose form: `action` is `preview` (show the chosen articles in this order), `send` (the
   * confirmation page: "Send … to N readers … now?"), `send-confirmed` (its button: sends now) or
   * `schedule` (at sendAt, a wall-clock time in `timezone`).
   */
  @Post()
  async create(@Body() body: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const n = await this.newsletters.get(newsletterSlug(field(body, 'newsletter')));
    const offered = fields(body, 'offered').filter((id) => /^[1-9]\d{0,17}$/.test(id));
    const checked = new Set(fields(body, 'article'));
    const order = offered
      .map((id, i) => {
        const pos = Number(field(body, `position-${id}`));
        return { id, pos: Number.isFinite(pos) ? pos : i + 1, i };
      })
      .sort((a, b) => a.pos - b.pos || a.i - b.i)
      .map((x) => x.id);
    const chosen = order.filter((id) => checked.has(id));
    const action = field(body, 'action');
    const values: ComposeValues = {
      when:
        action === 'schedule' || field(body, 'when') === 'later'
          ? 'later'
          : action === 'send' || field(body, 'when') === 'now'
            ? 'now'
            : '',
      sendAt: field(body, 'sendAt'),
      timezone: field(body, 'timezone') || 'UTC',
      subject: field(body, 'subject'),
      preheader: field(body, 'preheader'),
      intro: field(body, 'intro'),
    };
    const errors: FormErrors = {};
    const voice = checkVoice(values);
    if ('errors' in voice)
      for (const e of voice.errors) errors[e.split(' ')[0]] = e.charAt(0).toUpperCase() + e.slice(1);
    if (chosen.length === 0) errors.articles = 'Choose at least one article';
    if (chosen.length > MAX_COMPOSED) errors.articles = `A digest carries at most ${MAX_COMPOSED} articles`;
    let sendAt: string | undefined;
    if (action === 'schedule') {
      if (!timeZones().includes(values.timezone)) errors.timezone = 'Choose a time zone from the list';
      else {
        const at = zonedLocalToUtc(values.sendAt, values.timezone);
        if (!at) errors.sendAt = 'Enter a date and a time';
        else if (at.getTime() <= Date.now()) errors.sendAt = 'Choose a time in the future, or send now';
        else sendAt = at.toISOString();
      }
    }
    if (action === 'send' && Object.keys(errors).length === 0) {
      // Nothing is sent from the compose form itself: first the count, then a deliberate click.
      const articles = await this.digests.articlesByIds(order);
      await this.confirmSendPage(req, reply, n.name, n.slug, {
        issue: `this digest (${chosen.length} ${chosen.length === 1 ? 'article' : 'articles'})`,
        action: '/admin/digests',
        back: null,
        hidden: [
          { name: 'newsletter', value: n.slug },
          ...articles.flatMap((a, i) => [
            { name: 'offered', value: a.id },
            { name: `position-${a.id}`, value: String(i + 1) },
            ...(checked.has(a.id) ? [{ name: 'article', value: a.id }] : []),
          ]),
          { name: 'when', value: 'now' },
          { name: 'subject', value: values.subject },
          { name: 'preheader', value: values.preheader },
          { name: 'intro', value: values.intro },
        ],
      });
      return;
    }
    if ((action === 'send-confirmed' || action === 'schedule') && Object.keys(errors).length === 0) {
      try {
        const { id } = await this.digests.create(n.slug, sendAt, { articleIds: chosen }, values);
        await reply.redirect(`/admin/digests/${id}?notice=${action === 'schedule' ? 'scheduled' : 'sending'}`, 303);
        return;
      } catch (err) {
        const message = badRequestMessage(err);
        if (message === null) throw err;
        if (/^sendAt/.test(message)) errors.sendAt = message;
        else errors.articles = message;
      }
    }
    const articles = await this.digests.articlesByIds(order);
    const items = articles.map((a, i) => ({ ...a, checked: checked.has(a.id), position: i + 1 }));
    await this.composePage(req, reply, Object.keys(errors).length === 0 ? 200 : 400, n, items, values, errors);
  }

  /** A draft's HTML (`articles`: ids in order), for the compose page's preview frames. */
  @Get('preview')
  async previewDraft(@Query() query: Record<string, unknown>, @Res() reply: FastifyReply): Promise<void> {
    const slug = newsletterSlug(queryString(query.newsletter));
    const ids = queryString(query.articles)
      .split(',')
      .filter((x) => x !== '');
    const html = await this.digests.previewDraft(slug, ids, {
      subject: queryString(query.subject),
      preheader: queryString(query.preheader),
      intro: queryString(query.intro),
    });
    await this.sendPreview(reply, html);
  }

  @Get(':id')
  async show(
    @Param('id') raw: string,
    @Query('notice') key: unknown,
    @Query('topics') topics: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.digestPage(req, reply, 200, digestId(raw), {
      notice: notice(NOTICES, key),
      topics: queryString(topics).slice(0, 500),
    });
  }

  /** The digest's HTML exactly as sent (or as it would be), for its preview frames. */
  @Get(':id/preview')
  async preview(@Param('id') raw: string, @Query('topics') topics: unknown, @Res() reply: FastifyReply): Promise<void> {
    const given = queryString(topics);
    await this.sendPreview(reply, await this.digests.preview(digestId(raw), given ? given.slice(0, 500) : undefined));
  }

  /** The progress bar's figures (polled every second by the digest page). */
  @Get(':id/progress')
  async progress(@Param('id') raw: string, @Res() reply: FastifyReply): Promise<void> {
    const p = await this.digests.progress(digestId(raw));
    await reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(p);
  }

  @Post(':id/test')
  async test(
    @Param('id') raw: string,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const id = digestId(raw);
    const to = field(body, 'to').trim();
    try {
      await this.digests.sendTest(id, to);
    } catch (err) {
      const message = badRequestMessage(err);
      if (message === null) throw err;
      await this.digestPage(req, reply, 400, id, { testErrors: { to: message }, testTo: to });
      return;
    }
    await reply.redirect(`/admin/digests/${id}?notice=test-sent`, 303);
  }

  /** "Send digest #12 to N readers of Spine-health now?": the page behind the digest's "Send now". */
  @Get(':id/send')
  async confirmSendNow(
    @Param('id') raw: string,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const d = await this.digests.get(digestId(raw));
    if (d.status !== 'scheduled') {
      await reply.redirect(`/admin/digests/${d.id}`, 303);
      return;
    }
    await this.confirmSendPage(req, reply, d.newsletterName, d.newsletter, {
      issue: `digest #${d.id}${d.subject ? ` “${d.subject}”` : ''}`,
      action: `/admin/digests/${d.id}/send`,
      back: `/admin/digests/${d.id}`,
      hidden: [],
    });
  }

  @Post(':id/send')
  async sendNow(@Param('id') raw: string, @Res() reply: FastifyReply): Promise<void> {
    const id = digestId(raw);
    await this.digests.sendNow(id);
    await reply.redirect(`/admin/digests/${id}?notice=send-now`, 303);
  }

  @Get(':id/cancel')
  async confirmCancel(@Param('id') raw: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const d = await this.digests.get(digestId(raw));
    if (!OPEN_STATUSES.has(d.status)) {
      await reply.redirect(`/admin/digests/${d.id}`, 303);
      return;
    }
    await sendPage(
      reply,
      200,
      this.pages.render(
        'digest-cancel',
        { title: `Cancel digest ${d.id}`, staff: staffOf(req), section: 'digests' },
        { digest: d },
      ),
    );
  }

  @Post(':id/cancel')
  async cancel(@Param('id') raw: string, @Res() reply: FastifyReply): Promise<void> {
    const id = digestId(raw);
    await this.digests.cancel(id);
    await reply.redirect(`/admin/digests/${id}?notice=cancelled`, 303);
  }

  /** The confirmation step before any send: the issue, the newsletter and how many readers get it now. */
  private async confirmSendPage(
    req: FastifyRequest,
    reply: FastifyReply,
    newsletterName: string,
    slug: string,
    opts: { issue: string; action: string; back: string | null; hidden: { name: string; value: string }[] },
  ): Promise<void> {
    const recipients = await this.audience.activeRecipients(slug);
    const readers = `${recipients.toLocaleString('en-US')} ${recipients === 1 ? 'reader' : 'readers'}`;
    await sendPage(
      reply,
      200,
      this.pages.render(
        'digest-send',
        { title: `Send ${opts.issue} now?`, staff: staffOf(req), section: 'digests' },
        {
          ...opts,
          newsletterName,
          recipients,
          readers,
          question: `Send ${opts.issue} to ${readers} of ${newsletterName} now?`,
        },
      ),
    );
  }

  private async sendPreview(reply: FastifyReply, html: string): Promise<void> {
    await reply
      .header('content-security-policy', PREVIEW_CSP)
      .header('x-frame-options', 'SAMEORIGIN')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(html);
  }

  private async chooseNewsletter(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const all = await this.newsletters.list();
    await sendPage(
      reply,
      200,
      this.pages.render(
        'digest-compose',
        { title: 'Compose a digest', staff: staffOf(req), section: 'digests' },
        { choose: true, newsletters: all },
      ),
    );
  }

  private async composePage(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    n: NewsletterView,
    items: ComposeItem[],
    values: ComposeValues,
    errors: FormErrors = {},
  ): Promise<void> {
    const chosen = items.filter((i) => i.checked).map((i) => i.id);
    const previewSrc =
      chosen.length > 0 && chosen.length <= MAX_COMPOSED ? draftPreviewSrc(n.slug, chosen, values) : null;
    await sendPage(
      reply,
      status,
      this.pages.render(
        'digest-compose',
        { title: `Compose a digest of ${n.name}`, staff: staffOf(req), section: 'digests' },
        {
          newsletter: n,
          scheduleWords: n.schedule ? describeSchedule(n.schedule.cron, n.schedule.timezone) : null,
          items,
          chosenCount: chosen.length,
          previewSrc,
          values,
          later: values.when === 'later',
          now: values.when === 'now',
          zones: timeZones().map((z) => ({ value: z, selected: z === values.timezone })),
          errors,
          hasErrors: Object.keys(errors).length > 0,
        },
      ),
    );
  }

  private async digestPage(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    id: string,
    vars: { notice?: string; testErrors?: FormErrors; testTo?: string; topics?: string },
  ): Promise<void> {
    const d = await this.digests.get(id);
    const topics = vars.topics ?? '';
    const variants = (await this.digests.variants(id)).map((v) => ({
      ...v,
      label: v.topics.length ? v.topics.join(', ') : 'everyone else',
      href: `/admin/digests/${d.id}${v.topics.length ? `?topics=${encodeURIComponent(v.topics.join(','))}` : ''}#preview-heading`,
      current: v.topics.join(',') === topics,
    }));
    const zone = (await this.zones()).get(d.newsletter) ?? 'UTC';
    const progress: DigestProgress = await this.digests.progress(id);
    // What it did: once it started (a scheduled digest has nothing to count yet).
    const stats = d.status === 'scheduled' ? null : await this.stats.forDigest(id);
    const open = OPEN_STATUSES.has(d.status);
    // Poll while it sends, or when it is due within the minute.
    const live = d.status === 'sending' || (d.status === 'scheduled' && d.sendAt.getTime() - Date.now() < 60_000);
    await sendPage(
      reply,
      status,
      this.pages.render(
        'digest',
        { title: `Digest ${d.id} · ${d.newsletterName}`, staff: staffOf(req), section: 'digests' },
        {
          ...vars,
          digest: d,
          zone,
          progress,
          progressText: progressText(progress),
          eta: progress.etaSeconds === null ? '—' : duration(progress.etaSeconds),
          live,
          open,
          scheduled: d.status === 'scheduled',
          canPreview: d.articles.length > 0,
          variants: variants.length > 1 ? variants : null,
          topics,
          previewSrc: `/admin/digests/${d.id}/preview${topics ? `?topics=${encodeURIComponent(topics)}` : ''}`,
          testTo: vars.testTo ?? staffOf(req).email,
          stats: stats && statsView(stats),
        },
      ),
    );
  }
}

/** A share (0.3333) as the console writes it: "33.3 %". */
export function percentText(share: number): string {
  return `${(share * 100).toLocaleString('en-US', { maximumFractionDigits: 1 })} %`;
}

/** The digest page's figures: the stats with the words and labels the tables show. */
function statsView(s: DigestStats) {
  return {
    ...s,
    clickRateText: percentText(s.clickRate),
    variants: s.variants.map((v) => ({
      ...v,
      label: v.topics.length ? v.topics.join(', ') : 'everyone else',
    })),
  };
}

export function progressText(p: DigestProgress): string {
  // A digest that had nobody to send to is not "100 %": say so.
  if (p.recipients === 0 && p.status !== 'scheduled' && p.status !== 'sending')
    return 'No recipients: nobody was sent this digest';
  return `${p.percent} %: ${p.done} of ${p.recipients} done (${p.sent} sent, ${p.failed} failed, ${p.remaining} remaining)`;
}

export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${seconds % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
