import { Controller, Get, Param, Query, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import Handlebars from 'handlebars';
import type { FunnelRow } from '#subscriptions/funnel.repository.js';
import { FunnelService } from '#subscriptions/funnel.service.js';
import { NewslettersService } from '#subscriptions/newsletters.service.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import { newsletterSlug, sendPage, staffOf } from './console-forms.js';
import { ConsolePagesService } from './console-pages.service.js';
import { StaffGuard } from './staff.guard.js';

/** The periods the page offers, in days; anything else in `?days=` falls back to the default. */
export const FUNNEL_PERIODS = [7, 30, 90] as const;
const DEFAULT_DAYS = 30;
/** Sources drawn in the chart (the most sign-ups first); the table lists every one. */
export const CHART_SOURCES = 10;

const esc = (s: string): string => Handlebars.Utils.escapeExpression(s);
const fmt = (n: number): string => n.toLocaleString('en-US');
const signups = (n: number): string => `${fmt(n)} sign-up${n === 1 ? '' : 's'}`;

/** A source as people read it: no scheme, no `www.`, no trailing slash; cut to `max` characters. */
export function sourceLabel(source: string | null, max = 80): string {
  if (source === null) return 'No source recorded';
  const short =
    source
      .replace(/^https?:\/\//i, '')
      .replace(/^www\./i, '')
      .replace(/\/$/, '') || source;
  return short.length > max ? `${short.slice(0, max - 1)}…` : short;
}

/** Of `part` in `whole`, as a whole percentage ('—' when there is no whole). */
function percent(part: number, whole: number): string {
  return whole > 0 ? `${Math.round((part / whole) * 100)}%` : '—';
}

/**
 * Drawing sizes, as in line-chart.ts: the SVG scales to its card and its text with it, so each size
 * is drawn about as wide as the card it shows in (`wide` from a tablet up, `narrow` on a phone).
 */
const SIZES = {
  wide: { W: 760, valueRoom: 110, font: 13, labelChars: 100 },
  narrow: { W: 300, valueRoom: 104, font: 13, labelChars: 36 },
} as const;

export type FunnelChartSize = keyof typeof SIZES;

/**
 * Horizontal bars per source: sign-ups (outlined, on top) and still active (solid, below), each
 * with its number written beside it, so colour is never the only cue. Inline SVG with a title and a
 * description for screen readers; every text is escaped here and the caller embeds it unescaped.
 */
export function funnelChartSvg(title: string, rows: FunnelRow[], size: FunnelChartSize = 'wide'): string {
  const { W, valueRoom, font, labelChars } = SIZES[size];
  const shown = rows.slice(0, CHART_SOURCES);
  const bar = 14;
  const group = font + 6 + bar + 4 + bar + 16;
  const H = Math.max(group, shown.length * group) + 4;
  const plotW = W - valueRoom;
  const max = Math.max(1, ...shown.map((r) => r.signups));
  const width = (v: number) => Math.round((v / max) * plotW * 10) / 10;
  const id = `funnel-chart${size === 'wide' ? '' : `-${size}`}`;
  const desc =
    shown.length === 0
      ? 'No sign-ups in this period.'
      : `${shown.length === rows.length ? `All ${rows.length}` : `The ${shown.length} of ${rows.length}`} sources with the most sign-ups: ` +
        shown
          .map((r) => `${sourceLabel(r.source, 200)}, ${signups(r.signups)} and ${fmt(r.activeNow)} still active`)
          .join('; ') +
        '.';
  const groups = shown
    .map((r, i) => {
      const y0 = i * group + 2;
      const labelY = y0 + font;
      const signY = labelY + 6;
      const activeY = signY + bar + 4;
      const sw = width(r.signups);
      const aw = width(r.activeNow);
      return (
        `<g><title>${esc(r.source ?? 'No source recorded')}</title>` +
        `<text x="0" y="${labelY}" font-size="${font}" font-weight="600" fill="#1b2733">${esc(sourceLabel(r.source, labelChars))}</text>` +
        `<rect x="0.5" y="${signY + 0.5}" width="${Math.max(sw - 1, 0)}" height="${bar - 1}" rx="2" fill="#e3e9ee" stroke="#6b7785" stroke-width="1"/>` +
        `<text x="${sw + 6}" y="${signY + bar - 3}" font-size="${font}" fill="#4a5866">${esc(signups(r.signups))}</text>` +
        (aw > 0 ? `<rect x="0" y="${activeY}" width="${aw}" height="${bar}" rx="2" fill="#0b6e4f"/>` : '') +
        `<text x="${aw + 6}" y="${activeY + bar - 3}" font-size="${font}" fill="#4a5866">${esc(fmt(r.activeNow))} active</text>` +
        `</g>`
      );
    })
    .join('');
  return (
    `<svg class="${size === 'wide' ? 'chart' : `chart-${size}`}" id="${id}" viewBox="0 0 ${W} ${H}" width="100%" preserveAspectRatio="xMinYMin meet" role="img" ` +
    `aria-labelledby="${id}-title ${id}-desc" xmlns="http://www.w3.org/2000/svg">` +
    `<title id="${id}-title">${esc(title)}</title><desc id="${id}-desc">${esc(desc)}</desc>` +
    groups +
    `</svg>`
  );
}

/** `?days=` as one of the offered periods. */
function periodOf(raw: unknown): number {
  const n = typeof raw === 'string' && /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  return (FUNNEL_PERIODS as readonly number[]).includes(n) ? n : DEFAULT_DAYS;
}

/** A newsletter's signup funnel per source: which article pages bring readers who stay. */
@ApiExcludeController()
@Controller('admin/newsletters')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleFunnelController {
  constructor(
    private readonly funnel: FunnelService,
    private readonly newsletters: NewslettersService,
    private readonly pages: ConsolePagesService,
  ) {}

  @Get(':slug/funnel')
  async show(
    @Param('slug') slug: string,
    @Query('days') rawDays: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const n = await this.newsletters.get(newsletterSlug(slug));
    const days = periodOf(rawDays);
    const since = new Date(Date.now() - days * 86_400_000);
    const rows = await this.funnel.bySource(n.slug, since);
    const total = (k: 'signups' | 'confirmed' | 'guideDownloads' | 'activeNow') => rows.reduce((t, r) => t + r[k], 0);
    const totals = {
      signups: total('signups'),
      confirmed: total('confirmed'),
      guideDownloads: total('guideDownloads'),
      activeNow: total('activeNow'),
    };
    const chartTitle = `${n.name}: sign-ups and readers still active per source, last ${days} days`;
    await sendPage(
      reply,
      200,
      this.pages.render(
        'funnel',
        { title: `${n.name}: sign-ups by source`, staff: staffOf(req), section: 'newsletters' },
        {
          newsletter: n,
          days,
          since,
          periods: FUNNEL_PERIODS.map((d) => ({ days: d, current: d === days })),
          totals: {
            ...totals,
            confirmedRate: percent(totals.confirmed, totals.signups),
            guideRate: percent(totals.guideDownloads, totals.signups),
            activeRate: percent(totals.activeNow, totals.signups),
          },
          // Two drawings, one shown per width by the page's CSS.
          chart: funnelChartSvg(chartTitle, rows) + funnelChartSvg(chartTitle, rows, 'narrow'),
          chartNote:
            rows.length > CHART_SOURCES
              ? `The chart shows the ${CHART_SOURCES} sources with the most sign-ups; the table lists all ${rows.length}.`
              : null,
          rows: rows.map((r) => ({
            ...r,
            label: r.source ?? 'No source recorded',
            confirmedRate: percent(r.confirmed, r.signups),
            guideRate: percent(r.guideDownloads, r.signups),
            activeRate: percent(r.activeNow, r.signups),
          })),
        },
      ),
    );
  }
}
