import { Controller, Get, NotFoundException, Param, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SubscriptionStatsRepository } from '../../../../libs/subscriptions/src/subscription-stats.repository.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { CONSOLE_SECTIONS, ConsolePagesService } from './console-pages.service.js';
import { StaffGuard } from './staff.guard.js';

/** Where a marketer can do it today, for the sections whose pages are still to come. */
const API_HINTS: Record<string, { route: string; what: string }> = {
  newsletters: { route: 'GET /v1/newsletters', what: 'newsletters, their guides, feeds and schedules' },
  articles: { route: 'GET /v1/articles', what: 'articles' },
  digests: { route: 'POST /v1/newsletters/:slug/digests', what: 'digests' },
  subscribers: { route: 'GET /v1/subscribers', what: 'subscribers' },
  suppressions: { route: 'POST /v1/webhooks/generic', what: 'suppressions' },
};

/** The console's home page, and an honest page for the sections not built yet. */
@ApiExcludeController()
@Controller('admin')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleOverviewController {
  constructor(
    private readonly stats: SubscriptionStatsRepository,
    private readonly pages: ConsolePagesService,
  ) {}

  @Get()
  async overview(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const newsletters = await this.stats.countsByNewsletter();
    const totals = newsletters.reduce(
      (t, n) => ({
        active: t.active + n.active,
        pending: t.pending + n.pending,
        unsubscribed: t.unsubscribed + n.unsubscribed,
      }),
      { active: 0, pending: 0, unsubscribed: 0 },
    );
    await this.send(
      reply,
      this.pages.render(
        'overview',
        { title: 'Overview', staff: req.staff, section: 'overview' },
        { newsletters, totals },
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
    await this.send(
      reply,
      this.pages.render(
        'section-pending',
        { title: section.label, staff: req.staff, section: section.id },
        { label: section.label, hint },
      ),
    );
  }

  private async send(reply: FastifyReply, html: string): Promise<void> {
    await reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
  }
}
