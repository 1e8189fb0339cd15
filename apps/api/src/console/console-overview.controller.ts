import { Controller, Get, NotFoundException, Param, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AudienceStatsRepository, OVERVIEW_WEEKS } from '#subscriptions/audience-stats.repository.js';
import { NewslettersService } from '#subscriptions/newsletters.service.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { sendPage, staffOf } from './console-forms.js';
import { CONSOLE_SECTIONS, ConsolePagesService } from './console-pages.service.js';
import { lineChartSvg } from './line-chart.js';
import { StaffGuard } from './staff.guard.js';

/** Where a marketer can do it today, for the sections whose pages are still to come. */
const API_HINTS: Record<string, { route: string; what: string }> = {
  newsletters: { route: 'GET /v1/newsletters', what: 'newsletters, their guides, feeds and schedules' },
  articles: { route: 'GET /v1/articles', what: 'articles' },
  digests: { route: 'POST /v1/newsletters/:slug/digests', what: 'digests' },
  subscribers: { route: 'GET /v1/subscribers', what: 'subscribers' },
  suppressions: { route: 'POST /v1/webhooks/generic', what: 'suppressions' },
};

const WEEK_MS = 7 * 86_400_000;

function weekLabel(d: Date): string {
  return d.toLocaleDateString('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });
}

/** The console's home page, and an honest page for the sections not built yet. */
@ApiExcludeController()
@Controller('admin')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleOverviewController {
  constructor(
    private readonly stats: AudienceStatsRepository,
    private readonly pages: ConsolePagesService,
    private readonly newsletterList: NewslettersService,
  ) {}

  @Get()
  async overview(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const [trends, weeks, lastDigests, all] = await Promise.all([
      this.stats.trends(),
      this.stats.weeks(),
      this.stats.lastDigests(10),
      this.newsletterList.list(),
    ]);
    // Digest times in their newsletter's schedule zone, as on the digest pages.
    const digests = lastDigests.map((d) => ({
      ...d,
      zone: all.find((n) => n.name === d.newsletter)?.schedule?.timezone,
    }));
    const now = Date.now();
    const labels = Array.from({ length: OVERVIEW_WEEKS }, (_, i) =>
      i === OVERVIEW_WEEKS - 1 ? 'now' : weekLabel(new Date(now - (OVERVIEW_WEEKS - 1 - i) * WEEK_MS)),
    );
    const series = (weekly: number[]) => weekly.map((value, i) => ({ label: labels[i], value }));
    const newsletters = trends.map((n) => {
      const change = n.active - (n.weekly[0] ?? 0);
      return {
        ...n,
        change,
        changeText: `${change > 0 ? '+' : change < 0 ? '−' : '±'}${Math.abs(change).toLocaleString('en-US')}`,
        // Two drawings, one shown per width by the page's CSS (see line-chart.ts).
        chart:
          lineChartSvg(n.slug, `${n.name}: active subscribers per week`, series(n.weekly)) +
          lineChartSvg(n.slug, `${n.name}: active subscribers per week`, series(n.weekly), 'narrow'),
        points: n.weekly.map((value, i) => ({ label: labels[i], value })),
      };
    });
    const sum = (k: 'active' | 'pending' | 'unsubscribes' | 'bounces' | 'complaints'): number =>
      trends.reduce((t, n) => t + n[k], 0);
    const totals = {
      active: sum('active'),
      pending: sum('pending'),
      unsubscribes: sum('unsubscribes'),
      bounces: weeks.reduce((t, w) => t + w.bounces, 0),
      complaints: weeks.reduce((t, w) => t + w.complaints, 0),
    };
    const activity = weeks.map((w) => ({ ...w, label: weekLabel(w.weekStart) }));
    const hasActivity = weeks.some((w) => w.signups + w.confirmations + w.unsubscribes + w.bounces + w.complaints > 0);
    await sendPage(
      reply,
      200,
      this.pages.render(
        'overview',
        { title: 'Overview', staff: staffOf(req), section: 'overview' },
        {
          newsletters,
          totals,
          activity,
          hasActivity,
          digests,
          weeks: OVERVIEW_WEEKS,
          hasAudience: trends.some((n) => n.weekly.some((v) => v > 0) || n.pending > 0 || n.unsubscribes > 0),
        },
      ),
    );
  }

  /**
   * `/admin/<section>` for a menu entry whose page is not built yet. A static route added later
   * for the same path takes precedence (Fastify prefers static routes), so this needs no removal.
   */
  @Get(':section')
  async section(@Param('section') id: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const section = CONSOLE_SECTIONS.find((s) => s.id === id);
    const hint = API_HINTS[id];
    if (!section || !hint) throw new NotFoundException('There is no console page at this address.');
    await sendPage(
      reply,
      200,
      this.pages.render(
        'section-pending',
        { title: section.label, staff: staffOf(req), section: section.id },
        { label: section.label, hint },
      ),
    );
  }
}
