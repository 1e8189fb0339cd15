import { Body, Controller, Get, Param, Post, Query, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DigestStatsRepository, type IssueTrendPoint, TREND_ISSUES } from '#digests/digest-stats.repository.js';
import { DigestsService } from '#digests/digests.service.js';
import {
  describeSchedule,
  nextSendTimes,
  parseWeeklyForm,
  timeZones,
  WEEKDAYS,
  weeklyOf,
  type WeeklyScheduleErrors,
} from '#digests/weekly-schedule.js';
import { NewslettersService, type NewsletterView } from '#subscriptions/newsletters.service.js';
import { UpdateNewsletterDto } from '../admin/dto/newsletter.dto.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import {
  badRequestMessage,
  dtoErrors,
  type FormErrors,
  newsletterSlug,
  notice,
  sendPage,
  staffOf,
} from './console-forms.js';
import { field } from './console-http.js';
import { percentText } from './console-digests.controller.js';
import { ConsolePagesService } from './console-pages.service.js';
import { type ChartPoint, lineChartSvg } from './line-chart.js';
import { StaffGuard } from './staff.guard.js';

const NOTICES: Record<string, string> = {
  saved: 'Newsletter saved.',
  scheduled: 'Schedule saved. The worker picks it up within seconds.',
  unscheduled: 'Schedule removed: no weekly digest goes out until you set one again.',
};

const DETAIL_FIELDS = [
  'name',
  'description',
  'fromName',
  'fromEmail',
  'guide',
  'feedUrl',
  'subjectTemplate',
  'smtpRoute',
] as const;
type DetailField = (typeof DETAIL_FIELDS)[number];

/** The form's two switches (checkboxes: an unchecked one sends nothing). */
interface Switches {
  archive: boolean;
  tracking: boolean;
}

/** A trend chart in both drawings (wide and narrow, one shown per width by the page's CSS), with its own description. */
function trendChart(id: string, title: string, desc: string, points: ChartPoint[]): string {
  return (['wide', 'narrow'] as const).map((size) => lineChartSvg(id, title, points, size, () => desc)).join('');
}

/** The newsletter page's "what worked": two charts over the last issues and the table behind them. */
function trendView(name: string, issues: IssueTrendPoint[]) {
  const tracked = issues.filter((i) => i.tracking);
  const pct = (share: number) => Math.round(share * 1000) / 10;
  const clicks = tracked.map((i) => ({ label: `#${i.id}`, value: pct(i.clickRate) }));
  const unsubscribes = issues.map((i) => ({ label: `#${i.id}`, value: i.unsubscribed }));
  const span = (list: { label: string }[]) => `between issue ${list[0].label} and issue ${list[list.length - 1].label}`;
  const clickDesc =
    clicks.length === 0
      ? 'No issue was sent with tracked links.'
      : `Click rate from ${clicks[0].value} % to ${clicks[clicks.length - 1].value} % ${span(clicks)}` +
        ` (${clicks.length} tracked ${clicks.length === 1 ? 'issue' : 'issues'}; highest ${Math.max(...clicks.map((c) => c.value))} %).`;
  const unsubDesc =
    unsubscribes.length === 0
      ? 'No data.'
      : `From ${unsubscribes[0].value} to ${unsubscribes[unsubscribes.length - 1].value} unsubscribes per issue ${span(unsubscribes)}` +
        ` (${unsubscribes.reduce((t, u) => t + u.value, 0)} in all).`;
  return {
    count: issues.length,
    tracked: tracked.length,
    clickChart: trendChart('trend-clicks', `${name}: click rate per issue (%)`, clickDesc, clicks),
    unsubscribeChart: trendChart('trend-unsubscribes', `${name}: unsubscribes per issue`, unsubDesc, unsubscribes),
    issues: issues.map((i) => ({ ...i, clickRateText: i.tracking ? percentText(i.clickRate) : null })),
  };
}

/** Newsletters: name, sender, guide, feed and digest subject, and the weekly schedule as a day, a time and a zone. */
@ApiExcludeController()
@Controller('admin/newsletters')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleNewslettersController {
  constructor(
    private readonly newsletters: NewslettersService,
    private readonly digests: DigestsService,
    private readonly pages: ConsolePagesService,
    private readonly stats: DigestStatsRepository,
  ) {}

  @Get()
  async list(@Query('notice') key: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const list = (await this.newsletters.list()).map((n) => ({
      ...n,
      scheduleWords: n.schedule ? describeSchedule(n.schedule.cron, n.schedule.timezone) : null,
      nextSend: n.schedule ? nextSendTimes(n.schedule.cron, n.schedule.timezone, 1)[0] : null,
    }));
    await sendPage(
      reply,
      200,
      this.pages.render(
        'newsletters',
        { title: 'Newsletters', staff: staffOf(req), section: 'newsletters' },
        { newsletters: list, notice: notice(NOTICES, key) },
      ),
    );
  }

  @Get(':slug')
  async show(
    @Param('slug') slug: string,
    @Query('notice') key: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const n = await this.newsletters.get(newsletterSlug(slug));
    await this.page(req, reply, 200, n, { notice: notice(NOTICES, key) });
  }

  /** Name, description, sender, guide, feed: checked with the admin API's own rules. */
  @Post(':slug')
  async save(
    @Param('slug') slug: string,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const n = await this.newsletters.get(newsletterSlug(slug));
    const values = Object.fromEntries(DETAIL_FIELDS.map((f) => [f, field(body, f).trim()])) as Record<
      DetailField,
      string
    >;
    // Empty optional inputs clear the field; the name is required.
    const present = Object.fromEntries(
      DETAIL_FIELDS.filter((f) => f === 'name' || values[f] !== '').map((f) => [f, values[f]]),
    );
    // The switches only when the form showed them (`switches`): a post without them changes neither.
    const shown = field(body, 'switches') === '1';
    const switches: Switches = shown
      ? { archive: field(body, 'archive') === 'on', tracking: field(body, 'tracking') === 'on' }
      : { archive: n.archive, tracking: n.tracking };
    // The route only when the form showed its choice (`routeShown`): a post without it keeps the route.
    const routeShown = field(body, 'routeShown') === '1';
    if (!routeShown) delete present.smtpRoute;
    const errors = await dtoErrors(UpdateNewsletterDto, present);
    if (Object.keys(errors).length === 0) {
      const orNull = (v: string) => (v === '' ? null : v);
      try {
        await this.newsletters.update(n.slug, {
          name: values.name,
          description: orNull(values.description),
          fromName: orNull(values.fromName),
          fromEmail: orNull(values.fromEmail),
          guide: orNull(values.guide),
          feedUrl: orNull(values.feedUrl),
          subjectTemplate: orNull(values.subjectTemplate),
          ...(routeShown ? { smtpRoute: orNull(values.smtpRoute) } : {}),
          ...(shown ? switches : {}),
        });
        await reply.redirect(`/admin/newsletters/${n.slug}?notice=saved`, 303);
        return;
      } catch (err) {
        const message = badRequestMessage(err);
        if (message === null) throw err;
        if (/^guide/.test(message)) errors.guide = message;
        else if (/^subjectTemplate/.test(message)) errors.subjectTemplate = message;
        else if (/^smtpRoute/.test(message)) errors.smtpRoute = message;
        else errors.form = message;
      }
    }
    await this.page(req, reply, 400, n, { errors, values, switches });
  }

  /** The human control: day of the week (or every day), HH:MM and an IANA zone → cron + zone. */
  @Post(':slug/schedule')
  async schedule(
    @Param('slug') slug: string,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const n = await this.newsletters.get(newsletterSlug(slug));
    const input = {
      day: field(body, 'day'),
      time: field(body, 'time'),
      timezone: field(body, 'timezone'),
      delivery: field(body, 'delivery') === 'local' ? 'local' : 'newsletter',
    };
    const parsed = parseWeeklyForm(input);
    if (!parsed.ok) {
      await this.page(req, reply, 400, n, { scheduleErrors: parsed.errors, scheduleValues: input });
      return;
    }
    await this.digests.setSchedule(
      n.slug,
      parsed.cron,
      parsed.timezone,
      input.delivery === 'local' ? 'local' : 'newsletter',
    );
    await reply.redirect(`/admin/newsletters/${n.slug}?notice=scheduled`, 303);
  }

  @Get(':slug/schedule/remove')
  async confirmRemove(
    @Param('slug') slug: string,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const n = await this.newsletters.get(newsletterSlug(slug));
    if (!n.schedule) {
      await reply.redirect(`/admin/newsletters/${n.slug}`, 303);
      return;
    }
    await sendPage(
      reply,
      200,
      this.pages.render(
        'newsletter-schedule-remove',
        { title: `Remove the schedule of ${n.name}`, staff: staffOf(req), section: 'newsletters' },
        { newsletter: n, scheduleWords: describeSchedule(n.schedule.cron, n.schedule.timezone) },
      ),
    );
  }

  @Post(':slug/schedule/remove')
  async remove(@Param('slug') slug: string, @Res() reply: FastifyReply): Promise<void> {
    const n = await this.newsletters.get(newsletterSlug(slug));
    await this.digests.removeSchedule(n.slug);
    await reply.redirect(`/admin/newsletters/${n.slug}?notice=unscheduled`, 303);
  }

  private async page(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    n: NewsletterView,
    vars: {
      notice?: string;
      errors?: FormErrors;
      values?: Record<string, string>;
      switches?: Switches;
      scheduleErrors?: WeeklyScheduleErrors;
      scheduleValues?: { day: string; time: string; timezone: string; delivery: string };
    },
  ): Promise<void> {
    const weekly = n.schedule ? weeklyOf(n.schedule.cron) : null;
    const sv = vars.scheduleValues ?? {
      day: weekly ? String(weekly.day) : '1',
      time: weekly?.time ?? '09:00',
      timezone: n.schedule?.timezone ?? 'UTC',
      delivery: n.schedule?.delivery ?? 'newsletter',
    };
    const days = [
      { value: 'daily', label: 'Every day' },
      ...WEEKDAYS.map((label, i) => ({ value: String(i), label })),
    ].map((d) => ({ ...d, selected: d.value === sv.day }));
    const zones = timeZones().map((z) => ({ value: z, selected: z === sv.timezone }));
    const [guides, trend] = await Promise.all([this.newsletters.guides(), this.stats.newsletterTrend(n.slug)]);
    const values = vars.values ?? {
      name: n.name,
      description: n.description ?? '',
      fromName: n.fromName ?? '',
      fromEmail: n.fromEmail ?? '',
      guide: n.guide ?? '',
      feedUrl: n.feedUrl ?? '',
      subjectTemplate: n.subjectTemplate ?? '',
      smtpRoute: n.smtpRoute ?? '',
    };
    // The route choice: the configured routes, and the newsletter's own if it is no longer one of them.
    const routeNames = this.newsletters.smtpRoutes();
    if (n.smtpRoute && !routeNames.includes(n.smtpRoute)) routeNames.push(n.smtpRoute);
    await sendPage(
      reply,
      status,
      this.pages.render(
        'newsletter',
        { title: n.name, staff: staffOf(req), section: 'newsletters' },
        {
          ...vars,
          newsletter: n,
          values,
          switches: vars.switches ?? { archive: n.archive, tracking: n.tracking },
          trend: trendView(n.name, trend),
          trendIssues: TREND_ISSUES,
          zone: n.schedule?.timezone ?? 'UTC',
          guides: guides.map((g) => ({ ...g, selected: g.slug === values.guide })),
          smtpRoutes: routeNames.map((name) => ({ name, selected: name === values.smtpRoute })),
          schedule: n.schedule
            ? {
                ...n.schedule,
                words: describeSchedule(n.schedule.cron, n.schedule.timezone),
                custom: weekly === null,
                next: nextSendTimes(n.schedule.cron, n.schedule.timezone, 3),
              }
            : null,
          scheduleValues: sv,
          days,
          zones,
        },
      ),
    );
  }
}
